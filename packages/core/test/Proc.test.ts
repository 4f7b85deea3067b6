// Process identity, through /proc (Linux) and through ps (macOS and other systems: ps answers on Linux too).
import { spawn } from "node:child_process"
import { describe, expect, it } from "vitest"
import { cpuTimeMs, isAlive, parsePsLine, type ProcSource, refOf } from "../src/internal/Proc.js"

const NO_SUCH_PID = 2 ** 22 + 12345

describe.each<ProcSource>(["proc", "ps"])("process identity (%s)", (source) => {
  it("a live process is itself; the same pid with another start time, or a pid nobody has, is not", () => {
    const self = refOf(process.pid, source)!
    expect(isAlive(self, source)).toBe(true)
    expect(isAlive({ pid: self.pid, startTime: `${self.startTime}1` }, source)).toBe(false)
    expect(refOf(NO_SUCH_PID, source)).toBeUndefined()
    expect(refOf(-1, source)).toBeUndefined()
  })

  it("an exited process is not alive, and its start time told it apart while it ran", async () => {
    const child = spawn("sleep", ["30"])
    const ref = refOf(child.pid!, source)!
    expect(isAlive(ref, source)).toBe(true)
    const exited = new Promise((resolve) => child.once("exit", resolve))
    child.kill("SIGKILL")
    await exited
    expect(isAlive(ref, source)).toBe(false)
  })

  it("CPU time grows with work and is undefined for a process that is gone", { timeout: 40_000 }, () => {
    const before = cpuTimeMs(process.pid, source)!
    // ps counts whole seconds, and on a loaded machine a second of CPU takes longer than a second:
    // work until it counts one more (or 30 s pass: then CPU time does not grow, and the test fails).
    const deadline = Date.now() + 30_000
    while (cpuTimeMs(process.pid, source)! <= before && Date.now() < deadline) {
      const until = Date.now() + 200
      while (Date.now() < until) Math.sqrt(Math.random())
    }
    expect(cpuTimeMs(process.pid, source)!).toBeGreaterThan(before)
    expect(cpuTimeMs(NO_SUCH_PID, source)).toBeUndefined()
  })
})

describe("ps output", () => {
  it("reads macOS's and procps's lines: state letter, a five-word start, CPU time with days", () => {
    expect(parsePsLine("Ss   Mon Nov 30 11:00:17 2026     0:00.05\n")).toEqual({ state: "S", startTime: "Mon Nov 30 11:00:17 2026", cpuMs: 50 })
    expect(parsePsLine("R+ Tue Dec  1 09:05:03 2026 1-02:03:04")).toEqual({ state: "R", startTime: "Tue Dec 1 09:05:03 2026", cpuMs: (86_400 + 7384) * 1000 })
    expect(parsePsLine("")).toBeUndefined()
  })
})

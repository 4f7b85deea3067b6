import { describe, expect, it } from "vitest"
import { Effect, Exit } from "effect"
import { InvalidOptions, mergeEnv, resolveBoxOptions, resolveExecOptions } from "@boxlite/core"

const fieldOf = async (effect: Effect.Effect<unknown, InvalidOptions>) => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons[0]
  return reason && "error" in reason ? (reason.error as InvalidOptions).field : "defect"
}

describe("box options", () => {
  it("applies the reference's defaults", async () => {
    expect(await Effect.runPromise(resolveBoxOptions({}))).toEqual({
      image: "python:slim", name: undefined, cpus: 1, memoryMib: 512, diskSizeGb: undefined, workingDir: undefined, env: [], user: undefined, autoRemove: true, readyTimeoutMs: 60_000
    })
  })

  it("accepts env as a record or as pairs", async () => {
    expect((await Effect.runPromise(resolveBoxOptions({ env: { A: "1" } }))).env).toEqual([["A", "1"]])
    expect((await Effect.runPromise(resolveBoxOptions({ env: [["A", "1"], ["B", "2"]] }))).env).toEqual([["A", "1"], ["B", "2"]])
  })

  it.each([
    [{ cpus: 0 }, "cpus"], [{ cpus: 10_000 }, "cpus"], [{ memoryMib: 127 }, "memoryMib"], [{ memoryMib: 65537 }, "memoryMib"],
    [{ image: " " }, "image"], [{ workingDir: "x" }, "workingDir"], [{ env: [["", "v"]] }, "env"], [{ env: { "A=B": "v" } }, "env"],
    [{ autoRemove: "yes" }, "autoRemove"], [{ user: "a b" }, "user"], [{ diskSizeGb: 0 }, "diskSizeGb"], [{ readyTimeoutMs: 0 }, "readyTimeoutMs"], [{ volumes: [] }, "volumes"]
  ])("%j is refused naming %s", async (options, field) => {
    expect(await fieldOf(resolveBoxOptions(options as never))).toBe(field)
  })

  it("exec options name their field under exec.", async () => {
    expect(await fieldOf(resolveExecOptions({ timeoutMs: 1.5 }))).toBe("exec.timeoutMs")
    expect(await fieldOf(resolveExecOptions({ cwd: "/" } as never))).toBe("exec.cwd")
  })

  it("merges env layers, later ones winning", () => {
    expect(mergeEnv([["PATH", "/bin"], ["A", "1"]], [["A", "2"]], [["B", "3"]])).toEqual([["PATH", "/bin"], ["A", "2"], ["B", "3"]])
  })
})

// The launch protocol: what one end encodes the other decodes to the same thing, errors included.
import { Exit } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import type { Readable } from "node:stream"
import { describe, expect, it } from "vitest"
import { BootError, BoxNotFound, BoxStateError, HypervisorUnavailable, InvalidOptions, SnapshotError, StorageError } from "../src/Errors.js"
import { decodeCommand, decodeReport, encodeCommand, encodeReport, fromWire, type SupervisorCommand, toWire, type WireError } from "../src/supervisor/Protocol.js"

const bootFailure = (message: string): WireError => ({ _tag: "BootError", problem: message, consoleTail: "" })

/** Through the pipe and back: encoded by the supervisor, decoded and rebuilt by the launcher. */
const roundTrip = (error: unknown) => {
  const line = encodeReport({ ok: false, error: toWire(error, bootFailure) })
  const report = decodeReport(line.trimEnd())
  if (!Exit.isSuccess(report) || report.value.ok) throw new Error(`not a failure report: ${line}`)
  return fromWire(report.value.error)
}

describe("launch protocol", () => {
  it("a command crosses unchanged", () => {
    const command: SupervisorCommand = {
      boxId: "01ABC",
      launcher: { pid: 42, startTime: "1234" },
      owned: true,
      logMaxBytes: 1024,
      driver: "qemu",
      guest: { kernel: "/k", initrd: "/i", cmdline: "console=ttyS0" }
    }
    const line = encodeCommand(command)
    expect(line.endsWith("\n")).toBe(true)
    expect(line.trimEnd()).not.toContain("\n")
    expect(decodeCommand(line.trimEnd())).toEqual(Exit.succeed(command))
  })

  it("a command that is not the protocol is refused", () => {
    expect(Exit.isFailure(decodeCommand("not json"))).toBe(true)
    expect(Exit.isFailure(decodeCommand(JSON.stringify({ boxId: "x" })))).toBe(true)
    expect(Exit.isFailure(decodeCommand(JSON.stringify({ boxId: "x", launcher: { pid: "1", startTime: "" }, owned: true, driver: "q", guest: { kernel: "", initrd: "", cmdline: "" } })))).toBe(true)
  })

  it("a report that is not the protocol is refused", () => {
    expect(Exit.isFailure(decodeReport(JSON.stringify({ ok: false, error: { _tag: "Nonsense", message: "m" } })))).toBe(true)
    expect(Exit.isFailure(decodeReport(JSON.stringify({ ok: "yes" })))).toBe(true)
    expect(decodeReport(JSON.stringify({ ok: true }))).toEqual(Exit.succeed({ ok: true }))
  })

  it("InvalidOptions keeps its class, field and message", () => {
    const sent = new InvalidOptions("ports", "host port tcp/127.0.0.1:80 is already in use")
    const got = roundTrip(sent)
    expect(got).toBeInstanceOf(InvalidOptions)
    expect((got as InvalidOptions).field).toBe("ports")
    expect(got.message).toBe(sent.message)
  })

  it("BootError keeps its console tail and message", () => {
    const sent = new BootError("box x failed to boot: no agent", "[ 0.1] Kernel panic\nend")
    const got = roundTrip(sent)
    expect(got).toBeInstanceOf(BootError)
    expect((got as BootError).consoleTail).toBe(sent.consoleTail)
    expect(got.message).toBe(sent.message)
    const bare = roundTrip(new BootError("no console", ""))
    expect(bare.message).toBe("no console")
  })

  it("every other supervisor error keeps its class and fields", () => {
    const errors = [
      new HypervisorUnavailable("no qemu"),
      new StorageError({ message: "disk full" }),
      new BoxNotFound("01XYZ"),
      new SnapshotError("incompatible", "saved by another QEMU"),
      new BoxStateError("box x is being started by another process")
    ]
    for (const sent of errors) {
      const got = roundTrip(sent)
      expect(got.constructor).toBe(sent.constructor)
      expect({ ...got, message: got.message }).toEqual({ ...sent, message: sent.message })
    }
  })

  it("a failure that is no BoxliteError takes the fallback", () => {
    const got = roundTrip(new TypeError("undefined is not a function"))
    expect(got).toBeInstanceOf(BootError)
    expect(got.message).toBe("undefined is not a function")
  })
})

describe("a supervisor process", () => {
  it("answers a line that is no command with a BootError report on fd 3, and exits 1", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-proto-"))
    try {
      const program = createRequire(import.meta.url).resolve("@boxlite/core/supervisor-program")
      const child = spawn(process.execPath, [program, home, "no-such-driver"], { stdio: ["pipe", "ignore", "pipe", "pipe"] })
      let text = ""
      ;(child.stdio[3] as Readable).on("data", (d: Buffer) => (text += d.toString()))
      child.stdin!.write(`${JSON.stringify({ boxId: "x" })}\n`)
      const code = await new Promise<number | null>((resolve) => child.once("exit", resolve))
      expect(code).toBe(1)
      const report = decodeReport(text.trimEnd())
      expect(Exit.isSuccess(report)).toBe(true)
      const error = Exit.isSuccess(report) && !report.value.ok ? fromWire(report.value.error) : undefined
      expect(error).toBeInstanceOf(BootError)
      expect(error?.message).toMatch(/no valid command/)
      // It touched nothing of the home.
      expect(fs.readdirSync(home)).toEqual([])
    } finally {
      fs.rmSync(home, { recursive: true, force: true })
    }
  })
})

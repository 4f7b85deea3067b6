// The reference's shapes that need a VM: signals, resize, execution ids, box info, list order,
// disk sizes, and output read half way that must never hang wait().
import { Boxlite, BoxStateError, InteractiveBox, SimpleBox } from "boxlite"
import type { Box, Execution } from "boxlite"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BUSYBOX, PYTHON, boxDirs, qemuProcessesUnder, tempHome } from "./helpers.js"

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
let box: Box

beforeAll(async () => {
  box = await runtime.create({ image: BUSYBOX })
  await box.start()
})
afterAll(async () => {
  await runtime.close()
  expect(qemuProcessesUnder(home)).toEqual([])
  fs.rmSync(home, { recursive: true, force: true })
})

/** Output much larger than the flow-control window, so an unread stream blocks the command. */
const BIG = ["sh", "-c", "head -c 2097152 /dev/zero; head -c 2097152 /dev/zero >&2; echo done"] as const
const big = (): Promise<Execution> => box.exec(BIG[0], [BIG[1], BIG[2]])

describe("exec results and handles", () => {
  it("a command ended by a signal: exitCode 128+n and the signal's name", async () => {
    const result = await (await box.exec("sh", ["-c", "kill -USR1 $$"])).wait()
    expect(result).toEqual({ exitCode: 138, signal: "SIGUSR1" })
  })

  it("each execution has its own id (a ULID)", async () => {
    const [a, b] = [await box.exec("true"), await box.exec("true")]
    expect(a.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/)
    expect(a.id).not.toBe(b.id)
    await Promise.all([a.wait(), b.wait()])
  })

  it("resize() of a command without a terminal is a BoxStateError", async () => {
    const execution = await box.exec("sleep", ["1"])
    await expect(execution.resize(30, 100)).rejects.toBeInstanceOf(BoxStateError)
    await execution.wait()
  })
})

describe("output read half way never hangs wait()", () => {
  it("bytes() taken and never iterated", async () => {
    const execution = await big()
    execution.stdout().bytes()
    execution.stderr().bytes()
    expect((await execution.wait()).exitCode).toBe(0)
  })

  it("one chunk read by hand, then the iterator abandoned", async () => {
    const execution = await big()
    const first = await execution.stdout().bytes()[Symbol.asyncIterator]().next()
    expect(first.done).toBe(false)
    expect((await execution.wait()).exitCode).toBe(0)
  })

  it("break out of for-await over bytes, and over lines", async () => {
    const execution = await box.exec("sh", ["-c", "yes line | head -n 500000; yes err | head -n 500000 >&2"])
    for await (const chunk of execution.stdout().bytes()) if (chunk.length > 0) break
    for await (const line of execution.stderr()) if (line === "err") break
    expect((await execution.wait()).exitCode).toBe(0)
  })

  it("stdout read to the end beside wait() while stderr was taken and left: both return, stdout whole", async () => {
    const execution = await big()
    execution.stderr().bytes()
    const readAll = async () => {
      let bytes = 0
      for await (const chunk of execution.stdout().bytes()) bytes += chunk.length
      return bytes
    }
    const [bytes, result] = await Promise.all([readAll(), execution.wait()])
    expect(bytes).toBe(2 * 1024 * 1024 + "done\n".length)
    expect(result.exitCode).toBe(0)
  })

  it("a reader that keeps reading while wait() runs loses nothing", async () => {
    const execution = await big()
    const [stdout, stderr, result] = await Promise.all([execution.stdout().text(), execution.stderr().text(), execution.wait()])
    expect(stdout.length).toBe(2 * 1024 * 1024 + 5)
    expect(stderr.length).toBe(2 * 1024 * 1024)
    expect(result.exitCode).toBe(0)
  })
})

describe("runtime and box info", () => {
  it("info() names the accelerator and the agent transport", async () => {
    const info = await box.info()
    expect(["kvm", "tcg"]).toContain(info.accelerator)
    expect(info.accelerator).toBe((await runtime.info()).hypervisor.accelerator)
    expect(info.transport).toBe("virtio-serial")
  })

  it("list() is newest first", async () => {
    const a = await runtime.create({ image: BUSYBOX, name: "parity-older" })
    const b = await runtime.create({ image: BUSYBOX, name: "parity-newer" })
    const ids = (await runtime.list()).map((i) => i.id)
    expect(ids.indexOf(b.id)).toBeLessThan(ids.indexOf(a.id))
    expect(ids.indexOf(a.id)).toBeLessThan(ids.indexOf(box.id))
    await Promise.all([a.remove(), b.remove()])
  })

  it("a box of a closed runtime rejects with BoxStateError", async () => {
    const other = new Boxlite({ homeDir: home })
    const handle = await other.create({ image: BUSYBOX })
    await other.close()
    await expect(handle.info()).rejects.toBeInstanceOf(BoxStateError)
    await runtime.remove(handle.id)
  })
})

describe("disk sizes", () => {
  it("diskSizeGb: 1 (the documented minimum) holds python:slim: the box's disk is 1 GiB", async () => {
    const small = await runtime.create({ image: PYTHON, diskSizeGb: 1 })
    try {
      const df = await small.exec("df", ["-k", "/"])
      const sizeKb = Number((await df.stdout().text()).trim().split("\n")[1]!.trim().split(/\s+/)[1])
      expect(sizeKb).toBeGreaterThan(900 * 1024)
      expect(sizeKb).toBeLessThanOrEqual(1024 * 1024)
      const py = await small.exec("python3", ["-c", "print(6*7)"])
      expect((await py.stdout().text()).trim()).toBe("42")
    } finally {
      await small.remove()
    }
  })

  it("an ephemeral disk leaves about 1 GiB free beyond the image", async () => {
    const df = await box.exec("df", ["-k", "/"])
    const availKb = Number((await df.stdout().text()).trim().split("\n")[1]!.trim().split(/\s+/)[3])
    expect(availKb).toBeGreaterThan(900 * 1024)
  })

  it("nothing is left behind but the shared box", () => {
    expect(boxDirs(home)).toEqual([box.id])
  })
})

describe("BOXLITE_LOG=debug", () => {
  it("logs each step of create, start, exec and stop with its duration", () => {
    const script = `
      import { Boxlite } from "boxlite"
      const runtime = new Boxlite({ homeDir: process.argv[1] })
      const box = await runtime.create({ image: process.argv[2] })
      await box.start()
      await (await box.exec("true")).wait()
      await box.stop()
      await runtime.close()`
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script, tempHome(), BUSYBOX], {
      env: { ...process.env, BOXLITE_LOG: "debug" }, encoding: "utf8", timeout: 120_000
    })
    expect(run.status).toBe(0)
    for (const step of ["image resolved", "root filesystem ready", "box disk created", "create", "boot \\(supervisor report\\)", "start", "exec started", "exec exited", "stop"]) {
      expect(run.stderr).toMatch(new RegExp(`message=("${step}"|${step}) .*ms=\\d+`))
    }
  })
})

describe("SimpleBox has id, info() and metrics(), like Box", () => {
  it("id after start (BoxStateError before), info() of that box, metrics() of the running VM", async () => {
    await using simple = new SimpleBox({ image: BUSYBOX, runtime })
    expect(() => simple.id).toThrow(BoxStateError)
    expect((await simple.exec("echo", "hi")).stdout).toBe("hi\n")
    const info = await simple.info()
    expect(info.id).toBe(simple.id)
    expect(info.status).toBe("running")
    const metrics = await simple.metrics()
    expect(metrics.cpuTimeMs).toBeGreaterThan(0)
    expect(metrics.memoryUsageBytes).toBeGreaterThan(0)
  })
})

describe("InteractiveBox has id, info() and metrics() too", () => {
  it("the same box behind all three", async () => {
    await using interactive = new InteractiveBox({ image: BUSYBOX, runtime })
    expect(() => interactive.id).toThrow(BoxStateError)
    const info = await interactive.info()
    expect(info.id).toBe(interactive.id)
    expect((await interactive.metrics()).cpuTimeMs).toBeGreaterThan(0)
  })
})

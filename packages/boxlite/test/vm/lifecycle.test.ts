import { afterAll, describe, expect, it } from "vitest"
import { BootError, Boxlite, BoxStateError, HypervisorUnavailable, ImageError, ImageNotFound, InvalidOptions, SimpleBox } from "boxlite"
import { SupervisorEntry, vmPlatform } from "boxlite/effect"
import { Boxlite as BoxliteOn } from "@boxlite/core/promise"
import { Layer } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { boxDirs, BUSYBOX, pathWithout, PYTHON, qemuProcessesUnder, tempHome } from "./helpers.js"

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
afterAll(() => runtime.close())

const expectNothingLeft = () => {
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
}

describe("box lifecycle", () => {
  it("SimpleBox runs Python and `await using` stops and removes the box", async () => {
    let id: string | undefined
    {
      await using box = new SimpleBox({ image: PYTHON, runtime })
      const result = await box.exec("python", "-c", "import sys; print('Hello from BoxLite!'); print(sys.version_info[0], file=sys.stderr)")
      expect(result).toEqual({ exitCode: 0, stdout: "Hello from BoxLite!\n", stderr: "3\n" })
      id = (await box.start()).id
      expect(boxDirs(home)).toEqual([id])
    }
    expect(await runtime.list()).toEqual([])
    expectNothingLeft()
  }, 300_000)

  it("stop without autoRemove keeps the box, stopped; remove deletes it", async () => {
    const box = await runtime.create({ image: BUSYBOX, autoRemove: false, name: "keeper" })
    await (await box.exec("true")).wait()
    await box.stop()
    expect((await box.info()).status).toBe("stopped")
    expect((await runtime.list()).map((b) => [b.name, b.status])).toEqual([["keeper", "stopped"]])
    expect(qemuProcessesUnder(home)).toEqual([])
    const again = await runtime.create({ image: BUSYBOX, name: "keeper" }).catch((e: unknown) => e)
    expect(again).toBeInstanceOf(BoxStateError)
    await runtime.remove("keeper")
    expectNothingLeft()
  })

  it("a failed boot reports the tail of the guest console and leaves no QEMU", async () => {
    const box = await runtime.create({ image: BUSYBOX })
    // A disk without a filesystem: the agent cannot mount the root and says so on the console.
    const disk = path.join(home, "boxes", box.id, "disk.qcow2")
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", disk, "64M"])
    const error = await box.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BootError)
    expect((error as BootError).consoleTail).toMatch(/boxlite-agent/)
    expect(await box.info()).toMatchObject({ status: "failed", reason: expect.stringMatching(/failed to boot/) })
    expect(qemuProcessesUnder(home)).toEqual([])
    await box.remove()
    expectNothingLeft()
  })

  it("a guest that does not answer in time is a BootError naming readyTimeoutMs", async () => {
    const box = await runtime.create({ image: BUSYBOX, readyTimeoutMs: 50 })
    const error = await box.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BootError)
    expect(String(error)).toMatch(/readyTimeoutMs/)
    expect(qemuProcessesUnder(home)).toEqual([])
    expect((await box.info()).status).toBe("failed")
    await box.remove()
    expectNothingLeft()
  })

  it("a supervisor that dies on load is a BootError with its stderr; the box is failed, not stuck starting", async () => {
    const broken = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bl-sup-")), "supervisor.mjs")
    fs.writeFileSync(broken, "throw new Error('this supervisor is broken')\n")
    const platform = Layer.merge(vmPlatform(), Layer.succeed(SupervisorEntry, { module: broken }))
    const other = new BoxliteOn({ homeDir: home }, platform)
    try {
      const box = await other.create({ image: BUSYBOX, autoRemove: false })
      const error = await box.start().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(BootError)
      expect(String(error)).toMatch(/exited before the box ran[\s\S]*this supervisor is broken/)
      expect(await box.info()).toMatchObject({ status: "failed", reason: expect.stringMatching(/exited before the box ran/) })
      await box.remove()
    } finally {
      await other.close()
    }
    expectNothingLeft()
  })
})

describe("bad input: typed errors, nothing left behind", () => {
  it.each([
    [{ cpus: 0 }, "cpus"],
    [{ cpus: 1.5 }, "cpus"],
    [{ memoryMib: 64 }, "memoryMib"],
    [{ memoryMib: 70000 }, "memoryMib"],
    [{ workingDir: "relative/dir" }, "workingDir"],
    [{ env: { "A=B": "x" } }, "env"],
    [{ memoryMB: 512 }, "memoryMB"],
    [{ name: "bad name!" }, "name"]
  ])("%j -> InvalidOptions naming %s", async (options, field) => {
    const error = await runtime.create({ image: BUSYBOX, ...(options as object) }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidOptions)
    expect((error as InvalidOptions).field).toBe(field)
    expect(String(error)).toContain(field)
    expectNothingLeft()
  })

  it("invalid exec options -> InvalidOptions naming the field", async () => {
    await using box = new SimpleBox({ image: BUSYBOX, runtime })
    const error = await box.exec("true", { timeoutMs: -5 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidOptions)
    expect((error as InvalidOptions).field).toBe("exec.timeoutMs")
  })

  it("a missing layout -> ImageNotFound naming it", async () => {
    const error = await runtime.create({ image: "oci:/nonexistent/layout:latest" }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ImageNotFound)
    expect(String(error)).toContain("/nonexistent/layout")
    expectNothingLeft()
  })

  it("a missing tag -> ImageNotFound listing the tags there are", async () => {
    const error = await runtime.create({ image: BUSYBOX.replace(/:latest$/, ":nope") }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ImageNotFound)
    expect(String(error)).toMatch(/no image tagged "nope".*latest/)
    expectNothingLeft()
  })

  it("a corrupt layout -> ImageError naming the blob", async () => {
    const layout = fs.mkdtempSync(path.join(home, "layout-"))
    fs.cpSync(BUSYBOX.slice(4, -":latest".length), layout, { recursive: true })
    const index = JSON.parse(fs.readFileSync(path.join(layout, "index.json"), "utf8"))
    const manifest = index.manifests[0].digest.slice(7)
    fs.appendFileSync(path.join(layout, "blobs/sha256", manifest), " ")
    const error = await runtime.create({ image: `oci:${layout}:latest` }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ImageError)
    expect(String(error)).toMatch(new RegExp(`manifest blob sha256:${manifest} is corrupt`))
    fs.rmSync(layout, { recursive: true })
    expectNothingLeft()
  })

  it("QEMU absent -> HypervisorUnavailable saying what to install, and the SimpleBox leaves nothing", async () => {
    const savedPath = process.env["PATH"]
    process.env["PATH"] = pathWithout(/^qemu-system-/)
    try {
      const box = new SimpleBox({ image: BUSYBOX, runtime: new Boxlite({ homeDir: home }) })
      const error = await box.exec("true").catch((e: unknown) => e)
      expect(error).toBeInstanceOf(HypervisorUnavailable)
      expect(String(error)).toMatch(/apt-get install qemu-system/)
    } finally {
      process.env["PATH"] = savedPath
    }
    expectNothingLeft()
  })
})

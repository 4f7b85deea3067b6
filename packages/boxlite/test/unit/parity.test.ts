// Shapes of the reference that need no VM: option keys checked at construction, a closed runtime.
import { Boxlite, BoxliteError, BoxStateError, BrowserBox, CodeBox, ComputerBox, InteractiveBox, InvalidOptions, SimpleBox, version } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-parity-"))
afterAll(() => fs.rmSync(home, { recursive: true, force: true }))

const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (e) {
    return e
  }
  throw new Error("did not throw")
}

describe("misspelt options are InvalidOptions at construction, naming the key and what it meant", () => {
  it.each([
    ["memory_mib", "memoryMib"],
    ["home_dir", undefined],
    ["cpu", "cpus"],
    ["autoremove", "autoRemove"],
    ["working_dir", "workingDir"]
  ])("new SimpleBox({ %s })", (key, meant) => {
    const e = thrown(() => new SimpleBox({ [key]: 1 } as never))
    expect(e).toBeInstanceOf(InvalidOptions)
    expect((e as InvalidOptions).field).toBe(key)
    if (meant) expect((e as Error).message).toContain(`did you mean "${meant}"`)
  })

  it.each([
    ["InteractiveBox", (o: object) => new InteractiveBox(o as never)],
    ["CodeBox", (o: object) => new CodeBox(o as never)],
    ["BrowserBox", (o: object) => new BrowserBox(o as never)],
    ["ComputerBox", (o: object) => new ComputerBox(o as never)]
  ])("new %s({ memory_mib }) too, and its own options pass", (_, make) => {
    const e = thrown(() => make({ memory_mib: 512 }))
    expect(e).toBeInstanceOf(InvalidOptions)
    expect((e as Error).message).toContain(`did you mean "memoryMib"`)
  })

  it("each box's own options are not unknown keys", () => {
    expect(() => new CodeBox({ packageIndex: "http://127.0.0.1:1/simple/", memoryMib: 256 })).not.toThrow()
    expect(() => new BrowserBox({ browser: "firefox", startTimeoutMs: 1000, memoryMib: 256 })).not.toThrow()
    expect(() => new ComputerBox({ width: 800, height: 600, memoryMib: 1024 })).not.toThrow()
  })

  it("new Boxlite({ home_dir }) names homeDir", () => {
    const e = thrown(() => new Boxlite({ home_dir: home } as never))
    expect(e).toBeInstanceOf(InvalidOptions)
    expect((e as InvalidOptions).field).toBe("home_dir")
    expect((e as Error).message).toContain(`did you mean "homeDir"`)
  })

  it("a wholly unknown key lists the known ones", () => {
    expect((thrown(() => new SimpleBox({ flavour: "x" } as never)) as Error).message).toMatch(/known: image, name, cpus/)
  })
})

describe("a closed runtime", () => {
  it("rejects every later call with a BoxliteError subclass (BoxStateError)", async () => {
    const runtime = new Boxlite({ homeDir: home })
    await runtime.list()
    await runtime.close()
    for (const call of [() => runtime.list(), () => runtime.info(), () => runtime.get("nope"), () => runtime.create({}), () => runtime.images.list()]) {
      const e = await call().then(() => undefined, (e: unknown) => e)
      expect(e).toBeInstanceOf(BoxStateError)
      expect(e).toBeInstanceOf(BoxliteError)
      expect((e as Error).message).toMatch(/runtime is closed/)
    }
  })
})

it("exports the package version", () => {
  const pkg = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
  expect(version).toBe(pkg.version)
  expect(version).toMatch(/^\d+\.\d+\.\d+/)
})

// Finding a driver by name: built-ins, packages, module files, and what is not a driver.
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { driverModule, HypervisorUnavailable, Hypervisor, layerOf, loadDriver } from "../src/index.js"

const moduleFile = (source: string): string => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bl-plugin-")), "driver.mjs")
  fs.writeFileSync(file, source)
  return file
}

describe("loadDriver", () => {
  it("maps the built-in names to their packages, an absolute path to a file URL, and leaves package names alone", () => {
    expect(driverModule("qemu")).toBe("@boxlite/driver-qemu")
    expect(driverModule("kvm")).toBe("@boxlite/driver-kvm")
    expect(driverModule("hvf")).toBe("@boxlite/driver-hvf")
    expect(driverModule("@acme/boxlite-driver")).toBe("@acme/boxlite-driver")
    expect(driverModule("/opt/drivers/x.mjs")).toBe("file:///opt/drivers/x.mjs")
  })

  it("loads a module that exports `driver`, whose layer makes its Hypervisor", async () => {
    const file = moduleFile(`export const driver = { name: "x", make: () => ({ name: "x", made: true }) }`)
    const plugin = await loadDriver(file)
    expect(plugin.name).toBe("x")
    const service = await Effect.runPromise(Effect.provide(Hypervisor.use(Effect.succeed), layerOf(plugin)))
    expect(service).toMatchObject({ name: "x", made: true })
  })

  it("a name that does not load, or a module without `driver`, is HypervisorUnavailable naming it", async () => {
    const missing = await loadDriver("@acme/no-such-driver").catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(HypervisorUnavailable)
    expect((missing as Error).message).toMatch(/driver "@acme\/no-such-driver" cannot be loaded/)
    const notADriver = await loadDriver(moduleFile(`export const something = 1`)).catch((e: unknown) => e)
    expect(notADriver).toBeInstanceOf(HypervisorUnavailable)
    expect((notADriver as Error).message).toMatch(/does not export `driver`/)
  })

  it("asks the importer (a bundle answers for the drivers it holds) and says how to install a missing built-in", async () => {
    const asked: Array<string> = []
    const plugin = await loadDriver("qemu", async (specifier) => {
      asked.push(specifier)
      return { driver: { name: "qemu", make: () => ({}) } }
    })
    expect(asked).toEqual(["@boxlite/driver-qemu"])
    expect(plugin.name).toBe("qemu")
    const error = await loadDriver("hvf", () => Promise.reject(new Error("Cannot find package"))).catch((e: unknown) => e)
    expect((error as Error).message).toMatch(/npm install @boxlite\/driver-hvf/)
  })
})

describe("layerOf", () => {
  it("is a Layer of the Hypervisor service", () => {
    expect(Layer.isLayer(layerOf({ name: "x", make: () => ({}) as never }))).toBe(true)
  })
})

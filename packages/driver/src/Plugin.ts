/**
 * How a driver package is found. A driver is an npm package (or a module file) that exports
 * `driver: DriverPlugin`. The runtime names it once (`new Boxlite({ driver })`), records it with
 * each box, and each box's supervisor process imports it again to boot that box, so the name
 * must be importable from the boxlite package (a dependency of the program, or a file URL).
 */
import { Layer } from "effect"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { HypervisorUnavailable } from "./Errors.js"
import { Hypervisor } from "./Hypervisor.js"

export interface DriverPlugin {
  /** Same as the driver's `Hypervisor.name`: what loads it (a built-in's short name, the package name, or an absolute path). */
  readonly name: string
  /** The driver for this host; probing (binaries, accelerators) happens lazily, in `info` and `start`. */
  readonly make: () => Hypervisor["Service"]
}

/** The drivers that ship with BoxLite, by their short names. */
export const BUILTIN_DRIVERS: Readonly<Record<string, string>> = {
  qemu: "@boxlite/driver-qemu",
  kvm: "@boxlite/driver-kvm",
  hvf: "@boxlite/driver-hvf"
}

/** What `import()` takes for a driver name: a built-in's package, a package name, or a file URL for an absolute path. */
export const driverModule = (name: string): string => BUILTIN_DRIVERS[name] ?? (path.isAbsolute(name) ? pathToFileURL(name).href : name)

const isPlugin = (value: unknown): value is DriverPlugin =>
  typeof value === "object" && value !== null && typeof (value as DriverPlugin).name === "string" && typeof (value as DriverPlugin).make === "function"

/**
 * Imports the driver `name` (see driverModule). `importer` does the import, so that a bundle can
 * answer for the drivers it contains and import() resolves from the right place.
 */
export const loadDriver = async (
  name: string,
  importer: (specifier: string) => Promise<unknown> = (specifier) => import(specifier)
): Promise<DriverPlugin> => {
  const specifier = driverModule(name)
  let loaded: unknown
  try {
    loaded = await importer(specifier)
  } catch (e) {
    const hint = BUILTIN_DRIVERS[name] ? `; install it: npm install ${specifier}` : ""
    throw new HypervisorUnavailable(`driver "${name}" cannot be loaded from ${specifier}: ${(e as Error).message}${hint}`)
  }
  const plugin = (loaded as { driver?: unknown } | undefined)?.driver
  if (!isPlugin(plugin)) throw new HypervisorUnavailable(`driver "${name}" (${specifier}) does not export \`driver\` ({ name, make })`)
  return plugin
}

/** The Hypervisor of a plugin, made when the layer is built. */
export const layerOf = (plugin: DriverPlugin): Layer.Layer<Hypervisor> => Layer.sync(Hypervisor, plugin.make)

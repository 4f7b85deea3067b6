/**
 * The composition root: the only place that picks a driver. QEMU ships in this package (and in
 * the supervisor bundle); `kvm`, `hvf` and third-party drivers are imported by name
 * (loadDriver). The guest kernel and initramfs are the ones the @boxlite/guest package built.
 */
import {
  type DriverImporter, GuestArtifacts, Hypervisor, HypervisorUnavailable, loadDriver, SupervisorEntry
} from "@boxlite/core"
import * as Qemu from "@boxlite/driver-qemu"
import { guestArtifacts } from "@boxlite/guest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"

export const guestLayer: Layer.Layer<GuestArtifacts> = Layer.succeed(GuestArtifacts, {
  files: Effect.try({
    try: () => guestArtifacts(),
    catch: (e) => new HypervisorUnavailable(`the guest kernel and initramfs are missing: ${(e as Error).message}`)
  })
})

/** QEMU from this package (bundled with the supervisor); any other driver imported from where this package is installed. */
export const importDriver: DriverImporter = (specifier) => specifier === "@boxlite/driver-qemu" ? Promise.resolve(Qemu) : import(specifier)

/** The default driver: `$BOXLITE_DRIVER`, else `qemu`. */
export const defaultDriver = (): string => process.env["BOXLITE_DRIVER"] || "qemu"

/** The driver `name` (see loadDriver); one that cannot be loaded is HypervisorUnavailable, naming it. */
export const driverLayer = (name: string = defaultDriver()): Layer.Layer<Hypervisor, HypervisorUnavailable> =>
  Layer.effect(Hypervisor)(Effect.tryPromise({
    try: () => loadDriver(name, importDriver).then((plugin) => plugin.make()),
    catch: (e) => e instanceof HypervisorUnavailable ? e : new HypervisorUnavailable(`driver "${name}": ${(e as Error).message}`)
  }))

/** A driver plus the built guest: what boxes boot on. */
export const vmPlatform = (driver?: string): Layer.Layer<Hypervisor | GuestArtifacts, HypervisorUnavailable> => Layer.mergeAll(driverLayer(driver), guestLayer)

/**
 * Supervisors run `supervisor.js` of this package as the single file `npm run build` bundles it
 * into: Node loads it in ~0.3 s instead of ~0.8 s for the module graph, and that load is on
 * every box's start path. (After a `tsc`-only build the bundle is stale: rebuild with `npm run
 * build`.) Without a bundle, the module graph.
 */
const supervisorModule = (): string => {
  const bundle = fileURLToPath(new URL("./supervisor.bundle.js", import.meta.url))
  return fs.existsSync(bundle) ? bundle : fileURLToPath(new URL("./supervisor.js", import.meta.url))
}

export const supervisorLayer: Layer.Layer<SupervisorEntry> = Layer.sync(SupervisorEntry, () => ({ module: supervisorModule() }))

/** What `new Boxlite({ driver })` runs on (default: defaultDriver()). */
export const defaultPlatform = (driver?: string): Layer.Layer<Hypervisor | GuestArtifacts | SupervisorEntry, HypervisorUnavailable> =>
  Layer.mergeAll(vmPlatform(driver), supervisorLayer)

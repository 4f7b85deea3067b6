/**
 * The composition root: the only place that picks a driver. Today that is QEMU with the guest
 * kernel and initramfs built by the @boxlite/guest package.
 */
import { GuestArtifacts, type Hypervisor, HypervisorUnavailable, SupervisorEntry } from "@boxlite/core"
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

/** QEMU plus the built guest: what a box's supervisor process runs on. */
export const vmPlatform = (): Layer.Layer<Hypervisor | GuestArtifacts> => Layer.mergeAll(Qemu.layer(), guestLayer)

/**
 * Supervisors run `supervisor.js` of this package, which boots on `vmPlatform()`, as the single
 * file `npm run build` bundles it into: Node loads it in ~0.3 s instead of ~0.8 s for the module
 * graph, and that load is on every box's start path. (After a `tsc`-only build the bundle is
 * stale: rebuild with `npm run build`.) Without a bundle, the module graph.
 */
const supervisorModule = (): string => {
  const bundle = fileURLToPath(new URL("./supervisor.bundle.js", import.meta.url))
  return fs.existsSync(bundle) ? bundle : fileURLToPath(new URL("./supervisor.js", import.meta.url))
}

export const supervisorLayer: Layer.Layer<SupervisorEntry> = Layer.sync(SupervisorEntry, () => ({ module: supervisorModule() }))

/** What `Boxlite.default()` runs on. */
export const defaultPlatform = (): Layer.Layer<Hypervisor | GuestArtifacts | SupervisorEntry> => Layer.mergeAll(vmPlatform(), supervisorLayer)

/**
 * The composition root: the only place that picks a driver. Today that is QEMU with the guest
 * kernel and initramfs built by the @boxlite/guest package.
 */
import { GuestArtifacts, type Hypervisor, HypervisorUnavailable } from "@boxlite/core"
import * as Qemu from "@boxlite/driver-qemu"
import { guestArtifacts } from "@boxlite/guest"
import { Effect, Layer } from "effect"

export const guestLayer: Layer.Layer<GuestArtifacts> = Layer.succeed(GuestArtifacts, {
  files: Effect.try({
    try: () => guestArtifacts(),
    catch: (e) => new HypervisorUnavailable(`the guest kernel and initramfs are missing: ${(e as Error).message}`)
  })
})

/** QEMU plus the built guest: what `Boxlite.default()` runs on. */
export const defaultPlatform = (): Layer.Layer<Hypervisor | GuestArtifacts> => Layer.mergeAll(Qemu.layer(), guestLayer)

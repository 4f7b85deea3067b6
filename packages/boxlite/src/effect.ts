/**
 * The Effect face: services, layers and tagged errors. `layer({ driver })` is the Runtime on a
 * driver (default `$BOXLITE_DRIVER`, else QEMU) with the built guest and this package's supervisor.
 */
import { type HypervisorUnavailable, type OpenError, Runtime, type RuntimeOptions } from "@boxlite/core"
import * as Core from "@boxlite/core"
import type { Layer } from "effect"
import { Layer as L } from "effect"
import { defaultPlatform } from "./Platform.js"

export * from "@boxlite/core"
export { BrowserBoxEffect as BrowserBox, SimpleBoxEffect as SimpleBox } from "@boxlite/boxes"
export { CodeBoxEffect as CodeBox } from "@boxlite/boxes"
export { ComputerBoxEffect as ComputerBox } from "@boxlite/boxes"
export { defaultDriver, defaultPlatform, driverLayer, guestLayer, importDriver, supervisorLayer, vmPlatform } from "./Platform.js"

/** The Runtime of `options.homeDir` on `options.driver`. */
export const layer = (options?: RuntimeOptions): Layer.Layer<Runtime, OpenError | HypervisorUnavailable> =>
  Core.layer(options).pipe(L.provide(defaultPlatform(options?.driver)))

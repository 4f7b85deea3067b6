/**
 * The Effect face: services, layers and tagged errors. `layer()` is the Runtime on the default
 * platform; `Runtime.layer` + your own Hypervisor layer swaps the driver (and a supervisor
 * module that runs `runSupervisorMain` on that layer, given as `SupervisorEntry`).
 */
import { type OpenError, Runtime, type RuntimeOptions } from "@boxlite/core"
import * as Core from "@boxlite/core"
import type { Layer } from "effect"
import { Layer as L } from "effect"
import { defaultPlatform } from "./Platform.js"

export * from "@boxlite/core"
export { BrowserBoxEffect as BrowserBox, SimpleBoxEffect as SimpleBox } from "@boxlite/boxes"
export { CodeBoxEffect as CodeBox } from "@boxlite/boxes"
export { ComputerBoxEffect as ComputerBox } from "@boxlite/boxes"
export { defaultPlatform, guestLayer, supervisorLayer, vmPlatform } from "./Platform.js"

/** The Runtime of `options.homeDir` on QEMU. */
export const layer = (options?: RuntimeOptions): Layer.Layer<Runtime, OpenError> => Core.layer(options).pipe(L.provide(defaultPlatform()))

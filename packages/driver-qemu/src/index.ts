/** The QEMU Hypervisor driver and its layer. */
export { layer, make, qemuArgs, type QemuDriverOptions, type VmSockets } from "./QemuDriver.js"
/** Command lines of the helper processes (passt, virtiofsd), for tests and diagnosis. */
export { passtArgs, virtiofsdArgv } from "./internal/helpers.js"
/** Accelerator probing: KVM only where it can really run a guest, else TCG (or HVF on macOS). */
export * from "./Accelerator.js"

/** The QEMU Hypervisor driver and its layer. */
export { layer, make, qemuArgs, type QemuDriverOptions } from "./QemuDriver.js"
/** Accelerator probing: KVM only where it can really run a guest, else TCG (or HVF on macOS). */
export * from "./Accelerator.js"

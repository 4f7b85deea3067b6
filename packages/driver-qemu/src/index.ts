/** The QEMU Hypervisor driver and its layer. */
export { layer, make, qemuArgs, type QemuDriverOptions, type VmSockets } from "./QemuDriver.js"
/** Command lines of the helper processes (passt, virtiofsd), for tests and diagnosis. */
export { passtArgs, probeVirtiofsdUser, virtiofsdArgv, type VirtiofsdUser } from "./internal/helpers.js"
/** The seccomp program virtiofsd runs under (no setuid/setgid bits, no device nodes), for tests. */
export { virtiofsdFilter } from "./internal/seccomp.js"
/** The relay behind each UDP forward of a box without host-loopback access, for tests and diagnosis. */
export { relaySourceAddress, startUdpRelay, type UdpRelay, type UdpRelayOptions } from "./internal/udpRelay.js"
/** Accelerator probing: KVM only where it can really run a guest, else TCG (or HVF on macOS). */
export * from "./Accelerator.js"

/** The QEMU Hypervisor driver and its layer. */
export { layer, make, qemuArgs, type QemuDriverOptions, type VmSockets } from "./QemuDriver.js"
/** Command lines of the helper processes (virtiofsd), for tests and diagnosis. */
export { probeVirtiofsdUser, virtiofsdArgv, type VirtiofsdUser } from "./internal/helpers.js"
/** The network: passt and pasta's command lines and the egress policy's nftables ruleset. */
export { egressRuleset, hostAddresses, innerPorts, passtArgs, pastaArgs, resolveEntries } from "./internal/network.js"
/** The seccomp program virtiofsd runs under (no setuid/setgid bits, no device nodes), for tests. */
export { virtiofsdFilter } from "./internal/seccomp.js"
/** Accelerator probing: KVM only where it can really run a guest, else TCG (or HVF on macOS). */
export * from "./Accelerator.js"

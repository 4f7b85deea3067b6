/** The QEMU Hypervisor driver and its layer. */
export {
  CAPABILITIES, descriptorsFor, driver, layer, make, qemuArgs, type QemuDriverOptions, SANDBOX, TASKS_PER_VM, tcgCacheMib, type VmDescriptors, vmLimits, VMM_OVERHEAD_MIB
} from "./QemuDriver.js"
/** The VMM jail (bubblewrap, setpriv, prlimit) and per-VM cgroups, for tests and diagnosis. */
export { boxUid, deviceGroups, jailArgv, type JailSpec, type JailTools, type JailUser } from "./internal/jail.js"
export { type BoxCgroup, type CgroupLimits, type Cgroups, probeCgroups } from "./internal/cgroup.js"
export { CONSOLE_TAIL_BYTES, TailBuffer } from "./internal/console.js"
/** Command lines of the helper processes (virtiofsd), for tests and diagnosis. */
export { probeVirtiofsdUser, virtiofsdArgv, type VirtiofsdUser } from "./internal/helpers.js"
/** The network: passt and pasta's command lines and the egress policy's nftables ruleset. */
export { egressRuleset, GUEST_NETWORK, hostAddresses, innerPorts, passtArgs, pastaArgs, resolveEntries } from "./internal/network.js"
/** The seccomp program virtiofsd runs under (no setuid/setgid bits, no device nodes), for tests. */
export { virtiofsdFilter } from "./internal/seccomp.js"
/** Saving and restoring VM state (QEMU's migration stream), for tests. */
export { deviceModel, signatureDifference, StateReceiver, stateSignature } from "./internal/state.js"
/** Accelerator probing: KVM only where it can really run a guest, else TCG (or HVF on macOS). */
export * from "./Accelerator.js"
/**
 * Building blocks another Linux driver reuses (driver-kvm): the jail and its probe, helper
 * processes (virtiofsd, passt), the console reader, the network plan.
 */
export { hostRootLayout, probeJail } from "./internal/jail.js"
export { type Helper, startHelper, stopHelper, VIRTIOFSD, VIRTIOFSD_FD } from "./internal/helpers.js"
export { readConsole } from "./internal/console.js"
export { findPasst, hasExplicitPolicy, type NetworkPlan, type PasstBuild, probeNamespace, startNetwork, type StartedNetwork } from "./internal/network.js"
export { findOnPath } from "./internal/which.js"

/** The QEMU Hypervisor driver and its layer. */
export {
  descriptorsFor, layer, make, qemuArgs, type QemuDriverOptions, SANDBOX, TASKS_PER_VM, TCG_TB_MIB, type VmDescriptors, vmLimits, VMM_OVERHEAD_MIB
} from "./QemuDriver.js"
/** The VMM jail (bubblewrap, setpriv, prlimit) and per-VM cgroups, for tests and diagnosis. */
export { boxUid, deviceGroups, jailArgv, type JailSpec, type JailTools, type JailUser } from "./internal/jail.js"
export { type BoxCgroup, type CgroupLimits, type Cgroups, probeCgroups } from "./internal/cgroup.js"
export { CONSOLE_TAIL_BYTES, TailBuffer } from "./internal/console.js"
/** Command lines of the helper processes (passt, virtiofsd), for tests and diagnosis. */
export { passtArgs, probeVirtiofsdUser, virtiofsdArgv, type VirtiofsdUser } from "./internal/helpers.js"
/** The relay behind each UDP forward of a box without host-loopback access, for tests and diagnosis. */
export { relaySourceAddress, startUdpRelay, type UdpRelay, type UdpRelayOptions } from "./internal/udpRelay.js"
/** Accelerator probing: KVM only where it can really run a guest, else TCG (or HVF on macOS). */
export * from "./Accelerator.js"

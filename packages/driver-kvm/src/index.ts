/** The cloud-hypervisor driver (Linux KVM): its Hypervisor, layer and plugin. */
export { CAPABILITIES, driver, hasVhostUser, type KvmDriverOptions, layer, make, TASKS_PER_VM, VMM_OVERHEAD_MIB } from "./KvmDriver.js"
/** KVM probing by ioctls (API version, extensions, a probe guest that tells PVM from hardware virtualization). */
export * from "./KvmProbe.js"
/** What is sent to cloud-hypervisor: its command line and the vm.create body, for tests and diagnosis. */
export { AGENT_VSOCK_PORT, cloudHypervisorArgs, FD, GUEST_CID, kernelCmdline, runFiles, type VmConfig, vmConfig } from "./internal/vmConfig.js"

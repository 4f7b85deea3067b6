/** The vfkit driver (macOS, Apple Silicon) and its layer. */
export { CAPABILITIES, CONFINEMENT, driver, fileTail, type HvfDriverOptions, layer, make } from "./VfkitDriver.js"
/** vfkit's command line and the guest network of vmnet's NAT, for tests and diagnosis. */
export { AGENT_VSOCK_PORT, type BootFiles, GUEST_NETWORK, kernelCmdline, macOf, refusal, type VfkitPaths, vfkitArgs } from "./internal/args.js"
/** Host probing: Hypervisor.framework, vfkit, an arm64 guest kernel. */
export { findVfkit, kernelProblem, probeHvSupport, readGuestDir } from "./internal/host.js"
/** The agent's stream through vfkit's vsock proxy. */
export { AgentStream } from "./internal/agent.js"

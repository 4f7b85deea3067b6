/**
 * The seam for VMMs: QEMU today (packages/driver-qemu), cloud-hypervisor and vfkit later.
 * A driver boots a VM from a VmSpec and hands back the guest agent's byte stream; everything
 * above (protocol, boxes, state) is the same whatever runs the VM.
 */
import { Context, type Effect, type Scope } from "effect"
import type { Duplex } from "node:stream"
import type { BootError, HypervisorUnavailable } from "./Errors.js"
import type { Egress } from "./Options.js"

export interface PortForward {
  readonly protocol: "tcp" | "udp"
  /** Host address to bind; 127.0.0.1 unless the user said otherwise. */
  readonly hostIp: string
  /** Concrete host port (the runtime has already replaced 0 with a free port). */
  readonly hostPort: number
  readonly guestPort: number
}

export interface VmNetwork {
  /** Let the guest reach services on the host's loopback through the gateway. Default false. */
  readonly allowHostLoopback: boolean
  readonly ports: ReadonlyArray<PortForward>
  /** Where the guest may connect, enforced on the host (BoxOptions.network); absent = the defaults. */
  readonly egress?: Egress
}

export interface VmVolume {
  /** virtiofs tag the guest mounts (`v0`, `v1`, ...). */
  readonly tag: string
  /** The host directory or file shared with the guest, for messages: the driver serves `fd`. */
  readonly hostPath: string
  /**
   * An O_PATH descriptor of that directory or file, opened without following symlinks and
   * checked against what the box was created with: the driver shares this object and looks
   * up no path again. The caller closes it once the VM has stopped.
   */
  readonly fd: number
  /** `fd` is a single file, shared under this name; the guest sees nothing else of its directory. */
  readonly file?: string
  /** Enforced by the host: the guest cannot write even if it remounts read-write. */
  readonly readOnly: boolean
}

/**
 * Fixed addresses of the guest side of the user-mode network; the agent configures them. The
 * MTU is passt's: with the usual 1500, forwarded TCP runs at half the speed and passt truncates
 * UDP datagrams over 1472 bytes to their first fragment.
 */
export const GUEST_NETWORK = { address: "10.0.2.15", prefixLength: 24, gateway: "10.0.2.2", dns: "10.0.2.3", mtu: 65520 } as const

export interface VmSpec {
  readonly boxId: string
  /** The box's directory: the driver keeps its sockets and the console log here. */
  readonly dir: string
  readonly kernel: string
  readonly initrd: string
  readonly cmdline: string
  /** The box's root disk (qcow2). */
  readonly rootDisk: string
  readonly cpus: number
  readonly memoryMib: number
  /** NAT networking with port forwards; undefined = no network device at all. */
  readonly network: VmNetwork | undefined
  readonly volumes: ReadonlyArray<VmVolume>
}

export interface VmExit {
  readonly code: number | null
  readonly signal: string | null
}

export interface Vm {
  /** Process id of the VMM. */
  readonly pid: number
  /** The guest agent's channel (virtio-serial, vsock, ...), already connected. */
  readonly agent: Duplex
  /** Resolves when the VMM process has exited. */
  readonly exited: Promise<VmExit>
  /** The last `bytes` of the guest console. */
  readonly consoleTail: (bytes?: number) => Promise<string>
  /** Ends the VMM at once. */
  readonly kill: () => void
}

export interface HypervisorInfo {
  readonly driver: string
  /** `kvm`, `hvf` or `tcg`. */
  readonly accelerator: string
  /** Why this accelerator (e.g. why not KVM). */
  readonly reason: string
}

export class Hypervisor extends Context.Service<Hypervisor, {
  readonly info: Effect.Effect<HypervisorInfo, HypervisorUnavailable>
  /** Boots a VM; closing the scope kills it (if still running) and waits for its exit. */
  readonly start: (spec: VmSpec) => Effect.Effect<Vm, HypervisorUnavailable | BootError, Scope.Scope>
}>()("@boxlite/core/Hypervisor") {}

export interface GuestFiles {
  readonly kernel: string
  readonly initrd: string
  /** The base kernel command line; drivers append what their machine needs. */
  readonly cmdline: string
}

/** Where the guest kernel and initramfs (with the agent) are; fails if they are not built. */
export class GuestArtifacts extends Context.Service<GuestArtifacts, {
  readonly files: Effect.Effect<GuestFiles, HypervisorUnavailable>
}>()("@boxlite/core/GuestArtifacts") {}

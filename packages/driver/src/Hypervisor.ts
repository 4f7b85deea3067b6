/**
 * The seam for VMMs: QEMU (packages/driver-qemu), cloud-hypervisor (driver-kvm), vfkit
 * (driver-hvf), or a driver of your own. A driver boots a VM from a VmSpec and hands back the
 * guest agent's byte stream; everything above (protocol, boxes, state) is the same whatever
 * runs the VM. It says what it can do (DriverCapabilities) and the runtime asks nothing else.
 */
import { Context, type Effect, type Scope } from "effect"
import type { Duplex } from "node:stream"
import type { Egress } from "./Egress.js"
import type { BootError, HypervisorUnavailable, SnapshotError } from "./Errors.js"

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
 * The guest side of a driver's NAT network, as the guest agent configures it: the driver's
 * user-mode network (passt, vfkit's NAT) answers at `gateway` and `dns`.
 */
export interface GuestNetwork {
  readonly address: string
  readonly prefixLength: number
  readonly gateway: string
  readonly dns: string
  readonly mtu: number
}

/** How a root disk is stored: a qcow2 overlay of the image's raw base, or a raw copy of it (cloned where the file system can). */
export type DiskFormat = "qcow2" | "raw"

/** What a driver can do; the runtime refuses, naming the option, what it cannot. */
export interface DriverCapabilities {
  /** Root disk formats it boots, preferred first. */
  readonly diskFormats: ReadonlyArray<DiskFormat>
  /** A NAT network (VmSpec.network); without it, only boxes with `network: "none"`. */
  readonly network: boolean
  /** Host port forwards into the guest (VmNetwork.ports). */
  readonly portForwards: boolean
  /** Enforces `network.allow` / `network.deny` outside the guest (VmNetwork.egress). */
  readonly egressPolicy: boolean
  /** Shares host directories and files (VmSpec.volumes, virtiofs). */
  readonly volumes: boolean
  /** Pause, resume, save and restore (Vm.control, VmSpec.restore): snapshots, suspend, warm starts. */
  readonly snapshots: boolean
  /** How the host reaches the guest agent. */
  readonly agentTransport: "virtio-serial" | "vsock"
}

export interface VmSpec {
  readonly boxId: string
  /** The box's directory: the driver keeps the console log here. */
  readonly dir: string
  readonly kernel: string
  readonly initrd: string
  readonly cmdline: string
  /** The box's root disk. */
  readonly rootDisk: string
  /** Its format, one of the driver's `capabilities.diskFormats`; qcow2 when absent. */
  readonly rootDiskFormat?: DiskFormat
  /**
   * The read-only raw image rootDisk is an overlay of, when it is one. Given by the caller
   * rather than read from the overlay's header: the VMM writes that header, and a path it
   * planted there must not make the driver open a host file for the next boot.
   */
  readonly rootDiskBase?: string
  /**
   * Read-only qcow2 layers between rootDiskBase and rootDisk, lowest first: the disk of the
   * snapshot a box was cloned from. Given by the caller for the same reason as rootDiskBase.
   */
  readonly rootDiskLayers?: ReadonlyArray<string>
  /** Start from saved state (VmControl.saveState) instead of booting; the rest of the spec must match the saved VM's. */
  readonly restore?: SavedState
  readonly cpus: number
  readonly memoryMib: number
  /** NAT networking with port forwards; undefined = no network device at all. */
  readonly network: VmNetwork | undefined
  readonly volumes: ReadonlyArray<VmVolume>
  /**
   * Cap of the guest console log `<dir>/console.log`, in bytes; when full it moves to
   * `console.log.1` (one rotated file, so at most twice this on disk). Default
   * CONSOLE_LOG_MAX_BYTES.
   */
  readonly consoleLogMaxBytes?: number
}

/** The default cap of a guest console log (VmSpec.consoleLogMaxBytes): 1 MiB. */
export const CONSOLE_LOG_MAX_BYTES = 1024 * 1024

/** A VM's memory and device state in a file, as VmControl.saveState wrote it. */
export interface SavedState {
  readonly file: string
  readonly bytes: number
  /** Of the file: a restore checks it, and a damaged file is a SnapshotError, not a corrupted guest. */
  readonly sha256: string
  /** What must be the same to restore it (VMM version, machine, devices, guest kernel and initramfs), as the driver wrote it. */
  readonly signature: string
}

/** Pausing and saving a running VM, for drivers that can. */
export interface VmControl {
  /** Stops the vCPUs; memory and devices stay as they are. */
  readonly pause: () => Promise<void>
  readonly resume: () => Promise<void>
  /** Writes the paused VM's memory (its non-zero pages) and device state to `file` (created 0600); the VM stays paused. */
  readonly saveState: (file: string) => Promise<SavedState>
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
  /** Undefined when the driver cannot pause or save VMs. */
  readonly control?: VmControl
}

export interface HypervisorInfo {
  readonly driver: string
  /** `kvm`, `hvf` or `tcg`. */
  readonly accelerator: string
  /** Why this accelerator (e.g. why not KVM). */
  readonly reason: string
  /** How the host reaches the guest agent: `virtio-serial`, `vsock`. */
  readonly transport: string
  /** How the driver confines each VMM process, for drivers that say. */
  readonly confinement?: VmmConfinement
}

/** What confines a VMM process beyond the VM itself (see the driver's README). */
export interface VmmConfinement {
  /** Whom the VMM runs as, e.g. "a dedicated uid per box" or "this user in a user namespace". */
  readonly user: string
  /** What enforces each VM's memory, task and CPU-weight limits: a cgroup version, or nothing. */
  readonly cgroup: "v2" | "v1" | "none"
  /** Why a layer is missing (e.g. no cgroup delegation), when one is. */
  readonly degraded?: string
}

export class Hypervisor extends Context.Service<Hypervisor, {
  /**
   * Recorded with each box it runs, and what that box's supervisor loads again (loadDriver):
   * a built-in's short name (`qemu`), else the package name (or absolute module path) that exports it.
   */
  readonly name: string
  readonly capabilities: DriverCapabilities
  /** The addresses the guest agent configures when the box has a network. */
  readonly guestNetwork: GuestNetwork
  readonly info: Effect.Effect<HypervisorInfo, HypervisorUnavailable>
  /**
   * Boots a VM, or restores it (spec.restore: a state this driver saved; one it cannot load is a
   * SnapshotError); closing the scope kills it (if still running) and waits for its exit.
   */
  readonly start: (spec: VmSpec) => Effect.Effect<Vm, HypervisorUnavailable | BootError | SnapshotError, Scope.Scope>
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

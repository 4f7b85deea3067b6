/**
 * What the driver asks of cloud-hypervisor: its command line (only the API socket and its seccomp
 * policy) and the VmConfig it PUTs to /api/v1/vm.create (field names: the published
 * vmm/src/api/openapi/cloud-hypervisor.yaml). The whole machine goes through vm.create rather
 * than command-line flags: one JSON document, typed here, that the API validates as a unit and
 * answers with an error body the driver can report.
 */
import type { VmSpec } from "@boxlite/driver"
import * as path from "node:path"

/** Guest context id of the VM's vsock device (3 is the first a guest may have). */
export const GUEST_CID = 3
/** The vsock port the guest agent listens on (`boxlite.vsock=` on the kernel command line). */
export const AGENT_VSOCK_PORT = 1024

/**
 * Descriptors cloud-hypervisor inherits for the box's files, opened by the driver and named
 * `/proc/self/fd/N` in the VmConfig: the jailed VMM sees none of the box's directories.
 */
export const FD = { jailInfo: 3, kernel: 4, initrd: 5, disk: 6 } as const

/** The sockets in a VM's run directory. */
export const runFiles = (runDir: string) => ({
  api: path.join(runDir, "api.sock"),
  vsock: path.join(runDir, "vsock.sock"),
  /** In a directory of its own: passt may run as another user (nobody), which must be able to create it. */
  netDir: path.join(runDir, "net"),
  net: path.join(runDir, "net", "passt.sock"),
  fs: (i: number) => path.join(runDir, `fs${i}.sock`)
})

/** cloud-hypervisor's arguments: the REST socket, and its seccomp filters (the default, said explicitly). */
export const cloudHypervisorArgs = (runDir: string): Array<string> => ["--api-socket", `path=${runFiles(runDir).api}`, "--seccomp", "true"]

/**
 * The base command line, with what this machine needs: the console on the 8250 UART at ttyS0
 * (`serial: Tty`), its devices on virtio-pci, the agent on vsock.
 */
export const kernelCmdline = (base: string): string => {
  const words = base.split(/\s+/).filter((w) => w !== "")
  if (!words.some((w) => w.startsWith("console="))) words.push("console=ttyS0")
  return [...words, `boxlite.vsock=${AGENT_VSOCK_PORT}`, "boxlite.virtio=pci"].join(" ")
}

/** The subset of the API's VmConfig this driver sends. */
export interface VmConfig {
  readonly payload: { readonly kernel: string; readonly initramfs: string; readonly cmdline: string }
  readonly cpus: { readonly boot_vcpus: number; readonly max_vcpus: number }
  readonly memory: { readonly size: number; readonly shared: boolean }
  readonly disks: ReadonlyArray<{ readonly path: string; readonly image_type: "Raw" | "Qcow2"; readonly backing_files?: boolean; readonly readonly: boolean }>
  readonly net?: ReadonlyArray<{ readonly vhost_user: true; readonly vhost_socket: string; readonly vhost_mode: "Client"; readonly num_queues: number; readonly queue_size: number }>
  readonly fs?: ReadonlyArray<{ readonly tag: string; readonly socket: string; readonly num_queues: number; readonly queue_size: number }>
  readonly vsock: { readonly cid: number; readonly socket: string }
  readonly rng: { readonly src: string }
  readonly balloon: { readonly size: number; readonly free_page_reporting: boolean }
  readonly serial: { readonly mode: "Tty" }
  readonly console: { readonly mode: "Off" }
}

export const vmConfig = (spec: VmSpec, runDir: string): VmConfig => {
  const files = runFiles(runDir)
  const qcow2 = (spec.rootDiskFormat ?? "qcow2") === "qcow2"
  return {
    payload: { kernel: `/proc/self/fd/${FD.kernel}`, initramfs: `/proc/self/fd/${FD.initrd}`, cmdline: kernelCmdline(spec.cmdline) },
    cpus: { boot_vcpus: spec.cpus, max_vcpus: spec.cpus },
    // vhost-user back ends (virtiofsd, passt) map the guest's RAM: shared only when there is one.
    memory: { size: spec.memoryMib * 1024 * 1024, shared: spec.volumes.length > 0 || spec.network !== undefined },
    // An overlay's header names its raw base: cloud-hypervisor opens it only with backing_files.
    disks: [qcow2 ? { path: `/proc/self/fd/${FD.disk}`, image_type: "Qcow2", backing_files: true, readonly: false } : { path: `/proc/self/fd/${FD.disk}`, image_type: "Raw", readonly: false }],
    ...(spec.network ? { net: [{ vhost_user: true, vhost_socket: files.net, vhost_mode: "Client", num_queues: 2, queue_size: 256 }] } : {}),
    ...(spec.volumes.length > 0 ? { fs: spec.volumes.map((v, i) => ({ tag: v.tag, socket: files.fs(i), num_queues: 1, queue_size: 1024 })) } : {}),
    vsock: { cid: GUEST_CID, socket: files.vsock },
    rng: { src: "/dev/urandom" },
    // The guest hands back the pages it frees, as under QEMU (virtio-balloon free page reporting).
    balloon: { size: 0, free_page_reporting: true },
    serial: { mode: "Tty" },
    console: { mode: "Off" }
  }
}

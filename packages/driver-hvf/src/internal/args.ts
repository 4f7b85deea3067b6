/**
 * vfkit's command line for a box (doc/usage.md of crc-org/vfkit). Pure, so that tests check it
 * exactly; the checks that a box can be expressed at all are in `refusal`.
 */
import type { GuestNetwork, VmSpec } from "@boxlite/driver"
import { createHash } from "node:crypto"

/** The vsock port the guest agent listens on (the guest reads `boxlite.vsock=` from its command line). */
export const AGENT_VSOCK_PORT = 1024

/**
 * VZNATNetworkDeviceAttachment is vmnet's "shared" mode: every VM on the Mac on one bridge
 * (bridge100), the host at 192.168.64.1 answering DHCP and DNS. That subnet is the default, not
 * a constant: /Library/Preferences/SystemConfiguration/com.apple.vmnet.plist (Shared_Net_Address)
 * moves it, and it moves to 192.168.65.0/24 and up when another tool already holds bridge100.
 * The agent configures a static address (it has no DHCP client), chosen high in the subnet,
 * away from the leases bootpd hands out from .2 upwards. Limits in the README (Network).
 */
export const GUEST_NETWORK: GuestNetwork = { address: "192.168.64.250", prefixLength: 24, gateway: "192.168.64.1", dns: "192.168.64.1", mtu: 1500 }

/** Where vfkit's sockets are, in the driver's short-lived run directory. */
export interface VfkitPaths {
  /** REST API (`--restful-uri unix://...`). */
  readonly rest: string
  /** Unix socket vfkit listens on and proxies to the guest's vsock port AGENT_VSOCK_PORT. */
  readonly agent: string
}

/** The guest files vfkit boots (the spec's, or the arm64 guest of BOXLITE_HVF_GUEST). */
export interface BootFiles {
  readonly kernel: string
  readonly initrd: string
  readonly cmdline: string
}

/**
 * A stable, locally administered unicast MAC per box: bootpd and the guest's neighbours see the
 * same machine on every boot (VZ picks a random one otherwise).
 */
export const macOf = (boxId: string): string => {
  const bytes = createHash("sha256").update(boxId).digest().subarray(0, 6)
  bytes[0] = (bytes[0]! & 0xfc) | 0x02
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":")
}

/**
 * What the guest kernel needs beyond the guest's own command line: the console on the virtio
 * console (VZ's serial port is a virtio-console port: hvc0; the later console= wins /dev/console),
 * the agent on vsock, and virtio-pci first (every VZ device is PCI).
 */
export const kernelCmdline = (base: string): string => `${base} console=hvc0 boxlite.vsock=${AGENT_VSOCK_PORT} boxlite.virtio=pci`.trim()

export const vfkitArgs = (spec: VmSpec, boot: BootFiles, paths: VfkitPaths, consoleLog: string): Array<string> => [
  "--cpus", String(spec.cpus),
  "--memory", String(spec.memoryMib),
  // The command line is quoted: vfkit splits this option at commas outside double quotes.
  "--bootloader", `linux,kernel=${boot.kernel},initrd=${boot.initrd},cmdline="${kernelCmdline(boot.cmdline)}"`,
  // First virtio-blk: the guest's /dev/vda.
  "--device", `virtio-blk,path=${spec.rootDisk}`,
  // `connect`: vfkit listens on the unix socket and, per connection, dials the guest's vsock
  // port; the driver connects like to cloud-hypervisor's socket. (`listen` would make the guest
  // dial the host, and the agent listens.)
  "--device", `virtio-vsock,port=${AGENT_VSOCK_PORT},socketURL=${paths.agent},connect`,
  // vfkit writes the console itself: stdio needs a terminal (it sets raw mode on stdin).
  "--device", `virtio-serial,logFilePath=${consoleLog}`,
  // Entropy from the host: the guest has no other source early in boot.
  "--device", "virtio-rng",
  ...(spec.network ? ["--device", `virtio-net,nat,mac=${macOf(spec.boxId)}`] : []),
  ...spec.volumes.flatMap((volume) => ["--device", `virtio-fs,sharedDir=${volume.hostPath},mountTag=${volume.tag}`]),
  "--restful-uri", `unix://${paths.rest}`
]

/**
 * Why this box cannot run on vfkit, or undefined. `kind` says which error: `snapshot` for a
 * restore (SnapshotError), else a BootError.
 */
export const refusal = (spec: VmSpec, boot: BootFiles, paths: VfkitPaths, consoleLog: string): { kind: "boot" | "snapshot"; message: string } | undefined => {
  const refuse = (message: string) => ({ kind: "boot" as const, message })
  if (spec.restore) return { kind: "snapshot", message: "the hvf driver cannot restore saved VMs (vfkit saves no VM state)" }
  if ((spec.rootDiskFormat ?? "qcow2") !== "raw") return refuse(`the hvf driver boots raw disks only (Virtualization.framework has no qcow2); ${spec.rootDisk} is ${spec.rootDiskFormat ?? "qcow2"}`)
  if ((spec.rootDiskLayers ?? []).length > 0) return refuse("the hvf driver boots raw disks only: a disk layered on a snapshot's cannot be given to vfkit")
  if (spec.network && spec.network.ports.length > 0) return refuse("the hvf driver cannot forward host ports (vfkit's NAT has no port forwarding)")
  const egress = spec.network?.egress
  if (egress && (egress.allow !== undefined || egress.deny.length > 0)) return refuse("the hvf driver cannot enforce network allow/deny rules")
  for (const volume of spec.volumes) {
    if (volume.file !== undefined) {
      return refuse(`volume ${volume.hostPath}: the hvf driver shares directories only (vfkit's virtio-fs has no single-file share); mount its directory instead`)
    }
    if (volume.readOnly) {
      return refuse(`volume ${volume.hostPath}: the hvf driver cannot make a share read-only on the host (vfkit's virtio-fs is always read-write), and a read-only mount inside the guest is no protection`)
    }
  }
  // vfkit splits --device options at every comma, and --bootloader's at commas outside quotes.
  const given = [boot.kernel, boot.initrd, spec.rootDisk, consoleLog, paths.agent, paths.rest, ...spec.volumes.map((v) => v.hostPath)]
  const comma = given.find((p) => p.includes(","))
  if (comma) return refuse(`${comma}: vfkit cannot take a path with a comma`)
  const tag = spec.volumes.find((v) => /[,"]/.test(v.tag))
  if (tag) return refuse(`volume tag ${tag.tag}: vfkit cannot take a comma or quote in a tag`)
  if (boot.cmdline.includes("\"")) return refuse("the guest's kernel command line has a double quote, which vfkit's --bootloader cannot carry")
  return undefined
}

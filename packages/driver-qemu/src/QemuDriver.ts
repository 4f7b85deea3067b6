/**
 * The QEMU driver: boots a box as a `microvm` (x86_64) or `virt` (aarch64) machine with direct
 * kernel boot, its disk on virtio-blk and the agent channel on a virtio-serial port.
 */
import {
  BootError, CONSOLE_LOG_MAX_BYTES, type DiskFormat, type DriverCapabilities, type DriverPlugin, Hypervisor, HypervisorUnavailable, makeRunDir, openDescriptors, type SavedState, SnapshotError, type Vm,
  outputTail, type OutputTail, type VmControl, type VmExit, type VmmConfinement, type VmSpec
} from "@boxlite/driver"
import { Effect, Layer } from "effect"
import { spawn, type StdioOptions } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { Duplex, Writable } from "node:stream"
import { type AcceleratorChoice, chooseAccelerator, probeHost } from "./Accelerator.js"
import { type Cgroups, probeCgroups } from "./internal/cgroup.js"
import { hostTscKhz } from "./internal/cmdline.js"
import { readConsole, type TailBuffer } from "./internal/console.js"
import {
  connectToHelper,
  type Helper,
  probeVirtiofsdUser,
  startHelper,
  stopHelper,
  VIRTIOFSD,
  VIRTIOFSD_FD,
  virtiofsdArgv,
  type VirtiofsdUser
} from "./internal/helpers.js"
import { BOX_UID_FIRST, boxUid, deviceGroups, hostRootLayout, jailArgv, type JailTools, type JailUser, probeJail } from "./internal/jail.js"
import { findPasst, GUEST_NETWORK, hasExplicitPolicy, type NetworkPlan, probeNamespace, startNetwork, type StartedNetwork } from "./internal/network.js"
import { Qmp } from "./internal/qmp.js"
import { deviceModel, restoreState, sha256Of, stateSignature, StateReceiver } from "./internal/state.js"
import { virtiofsdFilter } from "./internal/seccomp.js"
import { findOnPath } from "./internal/which.js"

export interface QemuDriverOptions {
  /** The qemu-system binary; default `qemu-system-x86_64` or `qemu-system-aarch64` from PATH. */
  readonly binary?: string
  /** How long QEMU may take to start (until its monitor greets the driver). Default 10 s. */
  readonly connectTimeoutMs?: number
  /**
   * The root disk format of new boxes: `qcow2` (an overlay of the image's base: instant, small)
   * or `raw` (a copy of the base, cloned on file systems that share blocks: btrfs, XFS, APFS;
   * no qcow2 layer under the guest's I/O, but no snapshots). Default `$BOXLITE_QEMU_DISK`, else qcow2.
   */
  readonly diskFormat?: DiskFormat
}

const MACHINE: Record<string, { binary: string; machine: string; install: string }> = {
  x64: { binary: "qemu-system-x86_64", machine: "microvm,x-option-roms=off", install: "apt-get install qemu-system-x86 qemu-utils" },
  arm64: { binary: "qemu-system-aarch64", machine: "virt", install: "apt-get install qemu-system-arm qemu-utils" }
}

/**
 * The descriptors QEMU inherits, by their number in QEMU: it opens no path of the box (the
 * jailed QEMU could not), everything comes as an open descriptor.
 */
export interface VmDescriptors {
  /** Socketpair end of the agent's virtio-serial port. */
  readonly agent: number
  /** Socketpair end of the guest console (the driver reads the other end). */
  readonly console: number
  /** Socketpair end of a QMP monitor: its greeting says QEMU is up. */
  readonly monitor: number
  readonly kernel: number
  readonly initrd: number
  /** The root disk (qcow2 overlay), open read-write. */
  readonly disk: number
  /** Its raw base (spec.rootDiskBase), open read-only. */
  readonly base: number | undefined
  /** QEMU's end of passt's socketpair, when the VM has a network. */
  readonly network: number | undefined
  /** An O_PATH descriptor of the driver's listening socket that saved state is sent to (`migrate unix:/proc/self/fd/N`). */
  readonly stateSocket: number
  /** The saved state to restore (spec.restore), open read-only. */
  readonly incoming: number | undefined
  /** spec.rootDiskLayers, open read-only, lowest first. */
  readonly layers: ReadonlyArray<number>
  /** A connected socket to each volume's virtiofsd, in spec.volumes order. */
  readonly volumes: ReadonlyArray<number>
}

/** QEMU's seccomp policy: no obsolete syscalls, no setuid & co, no fork/exec, no resource or scheduler changes. */
export const SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

/**
 * TCG's translation cache, in MiB. QEMU's default is 1 GiB, filled as guest code is
 * translated (566 MB after one Chromium start): bounded, the VMM's memory is predictable and
 * its cgroup limit tight; a full cache is flushed and refilled with what runs. The pages a
 * box once filled stay resident, so the bound scales with the guest: 64 MiB up to 512 MiB of
 * RAM (a Python run is as fast as with 256, 1.7x slower with 32), 256 from 2 GiB (Chromium).
 */
export const tcgCacheMib = (memoryMib: number) => Math.min(256, Math.max(64, Math.floor(memoryMib / 8)))

/**
 * What the guest kernel needs to know of the machine: microvm's console is its one 8250 UART,
 * it has no PCI bus to scan and no i8042 keyboard controller to probe; virt's console is a PL011.
 */
const machineCmdline = (machine: string): string =>
  machine.startsWith("microvm") ? "console=ttyS0 8250.nr_uarts=1 pci=off i8042.noaux i8042.nokbd" : "console=ttyAMA0"

export const qemuArgs = (spec: VmSpec, machine: string, accel: AcceleratorChoice, fds: VmDescriptors): Array<string> => {
  const tsc = accel.accelerator === "tcg" && machine.startsWith("microvm") ? hostTscKhz() : undefined
  // tsc=reliable: the guest's clocksource watchdog judges the TSC against jiffies, which lag
  // whenever the host is busy and the vCPU waits; it then marked the TSC unstable (8 guests of
  // 10 under load) and fell back to jiffies and a periodic 250 Hz tick.
  const cmdline = [machineCmdline(machine), spec.cmdline, tsc ? `tsc_early_khz=${tsc} tsc=reliable` : ""].filter(Boolean).join(" ")
  // vhost-user devices need guest RAM the daemon can map, and modern virtio-mmio: only then.
  const shared = spec.volumes.length > 0
  // The disk's nodes spelled out: QEMU opens no backing file named in the overlay's header.
  const base = fds.base === undefined
    ? []
    : ["-add-fd", `fd=${fds.base},set=1`, "-blockdev", "driver=file,node-name=base-file,filename=/dev/fdset/1,read-only=on",
      "-blockdev", "driver=raw,node-name=base,file=base-file,read-only=on"]
  // A clone's chain: base <- the snapshot's disk (read-only) <- the box's overlay.
  const layers = fds.layers.flatMap((fd, i) => [
    "-add-fd", `fd=${fd},set=${10 + i}`, "-blockdev", `driver=file,node-name=layer${i}-file,filename=/dev/fdset/${10 + i},read-only=on`,
    "-blockdev", `driver=qcow2,node-name=layer${i},file=layer${i}-file,backing=${i === 0 ? (fds.base === undefined ? "null" : "base") : `layer${i - 1}`},read-only=on`
  ])
  const backing = fds.layers.length > 0 ? `layer${fds.layers.length - 1}` : fds.base === undefined ? "null" : "base"
  return [
    // No PIT once the guest is told the TSC's rate (it calibrates with nothing else then): left
    // in its reset mode, its channel 0 woke QEMU's main loop 36 times a second in idle boxes.
    "-M", [machine, ...(tsc ? ["pit=off"] : []), ...(shared ? ["memory-backend=mem"] : [])].join(","),
    "-accel", accel.accelerator === "tcg" ? `tcg,tb-size=${tcgCacheMib(spec.memoryMib)}` : accel.accelerator,
    // ARAT (the local APIC timer keeps running when idle) lets the guest kernel stop its tick
    // when idle: without it, on microvm (no HPET to fall back on) it ticks 250 times a second.
    ...(accel.accelerator !== "tcg" ? ["-cpu", "host"] : machine.startsWith("microvm") ? ["-cpu", "qemu64,+arat"] : []),
    "-m", `${spec.memoryMib}M`,
    ...(shared ? ["-object", `memory-backend-memfd,id=mem,size=${spec.memoryMib}M,share=on`, "-global", "virtio-mmio.force-legacy=false"] : []),
    "-smp", String(spec.cpus),
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    ...(process.platform === "linux" ? ["-sandbox", SANDBOX] : []),
    "-chardev", `socket,id=qmp,fd=${fds.monitor}`, "-mon", "chardev=qmp,mode=control",
    "-chardev", `socket,id=con0,fd=${fds.console}`, "-serial", "chardev:con0",
    // /proc/self/fd/N reopens the file the descriptor is open on, whatever its directory's mode.
    "-kernel", `/proc/self/fd/${fds.kernel}`, "-initrd", `/proc/self/fd/${fds.initrd}`, "-append", cmdline,
    ...base,
    ...layers,
    "-add-fd", `fd=${fds.disk},set=2`,
    "-blockdev", "driver=file,node-name=disk-file,filename=/dev/fdset/2,discard=unmap",
    "-blockdev", spec.rootDiskFormat === "raw" ? "driver=raw,node-name=root,file=disk-file,discard=unmap" : `driver=qcow2,node-name=root,file=disk-file,backing=${backing},discard=unmap`,
    "-device", "virtio-blk-device,drive=root",
    "-device", "virtio-serial-device",
    "-chardev", `socket,id=agent,fd=${fds.agent}`,
    "-device", "virtserialport,chardev=agent,name=boxlite.agent",
    // The guest hands back the pages it frees (in 2 MiB blocks): QEMU discards them.
    "-device", "virtio-balloon-device,free-page-reporting=on",
    ...(fds.network === undefined
      ? []
      : ["-netdev", `stream,id=n0,server=off,addr.type=fd,addr.str=${fds.network}`, "-device", "virtio-net-device,netdev=n0"]),
    ...spec.volumes.flatMap((volume, i) => [
      "-chardev", `socket,id=vfs${i},fd=${fds.volumes[i]}`,
      "-device", `vhost-user-fs-device,chardev=vfs${i},tag=${volume.tag}`
    ]),
    // The state comes once the driver has checked it was saved by this QEMU for this machine.
    ...(fds.incoming === undefined ? [] : ["-incoming", "defer"])
  ]
}

/** Device state and stream framing beyond the guest's RAM in a saved state (a few MB are seen). */
const STATE_SLACK_BYTES = 64 * 1024 * 1024

/** Where each descriptor sits in QEMU (spawn's stdio index is the child's descriptor number). */
const FD = { agent: 3, console: 4, monitor: 5, jailInfo: 6, kernel: 7, initrd: 8, base: 9, disk: 10, network: 11, stateSocket: 12, incoming: 13, layers: 14 } as const

export const descriptorsFor = (spec: VmSpec): VmDescriptors => {
  const layers = (spec.rootDiskLayers ?? []).map((_, i) => FD.layers + i)
  return {
    agent: FD.agent, console: FD.console, monitor: FD.monitor, kernel: FD.kernel, initrd: FD.initrd, disk: FD.disk,
    base: spec.rootDiskBase === undefined ? undefined : FD.base,
    network: spec.network ? FD.network : undefined,
    stateSocket: FD.stateSocket,
    incoming: spec.restore ? FD.incoming : undefined,
    layers,
    volumes: spec.volumes.map((_, i) => FD.layers + layers.length + i)
  }
}

/**
 * Per-VM limits. Memory: the guest's RAM, TCG's translation cache and VMM_OVERHEAD_MIB for
 * QEMU itself. Tasks: QEMU's block I/O pool (up to 64 threads), a thread per vCPU, its ~8
 * fixed threads (main, RCU, monitor...) and bwrap, twice over. CPU weight: 100 per vCPU, so
 * under contention a box gets a share in proportion to its vCPUs.
 */
export const VMM_OVERHEAD_MIB = 192
export const TASKS_PER_VM = 128
export const vmLimits = (spec: VmSpec, accel: AcceleratorChoice) => ({
  memoryBytes: (spec.memoryMib + (accel.accelerator === "tcg" ? tcgCacheMib(spec.memoryMib) : 0) + VMM_OVERHEAD_MIB) * 1024 * 1024,
  pids: TASKS_PER_VM + spec.cpus,
  cpuWeight: Math.min(10_000, 100 * spec.cpus)
})
/** QEMU's descriptors: ~20 plus ~6 per volume were measured; the cap bounds what a runaway VMM pins in the kernel. */
const NOFILE = 1024

interface Confinement {
  /** undefined off Linux: no jail there. */
  readonly tools: JailTools | undefined
  readonly cgroups: Cgroups | undefined
  readonly info: VmmConfinement
}

/** Everything: qcow2 overlays (or raw disks), passt NAT with forwards and an egress policy, virtiofs, save and restore. */
export const CAPABILITIES: DriverCapabilities = {
  diskFormats: ["qcow2", "raw"],
  network: true,
  portForwards: true,
  egressPolicy: true,
  volumes: true,
  snapshots: true,
  agentTransport: "virtio-serial"
}

export const make = (options: QemuDriverOptions = {}): Hypervisor["Service"] => {
  const diskFormat = options.diskFormat ?? (process.env["BOXLITE_QEMU_DISK"] || "qcow2")
  const badDiskFormat = diskFormat !== "qcow2" && diskFormat !== "raw"
    ? new HypervisorUnavailable(`BOXLITE_QEMU_DISK must be qcow2 or raw (got "${diskFormat}")`)
    : undefined
  const capabilities: DriverCapabilities = diskFormat === "raw" ? { ...CAPABILITIES, diskFormats: ["raw", "qcow2"] } : CAPABILITIES
  const host = MACHINE[process.arch]
  const isRoot = process.getuid?.() === 0
  let choice: AcceleratorChoice | undefined
  const accelerator = Effect.suspend(() => {
    if (choice) return Effect.succeed(choice)
    try {
      choice = chooseAccelerator(probeHost())
    } catch (e) {
      return Effect.fail(new HypervisorUnavailable((e as Error).message))
    }
    const chosen = choice
    return Effect.as(chosen.accelerator === "tcg" ? Effect.logWarning(`boxlite: using QEMU TCG: ${chosen.reason}`) : Effect.logInfo(`boxlite: using QEMU ${chosen.accelerator}`), chosen)
  })
  let probedUser: VirtiofsdUser | undefined
  const virtiofsdUser = Effect.suspend(() => {
    if (probedUser) return Effect.succeed(probedUser)
    try {
      const choice = probeVirtiofsdUser(isRoot)
      probedUser = choice.user
      return Effect.as(choice.warning ? Effect.logWarning(`boxlite: ${choice.warning}`) : Effect.void, choice.user)
    } catch (e) {
      return Effect.fail(new HypervisorUnavailable((e as Error).message))
    }
  })
  // Probed once: which passt, and whether it can run behind the egress policy; each
  // shortcoming is logged once, the first time a box wants a network.
  let plan: NetworkPlan | undefined
  const networkPlan = Effect.suspend(() => {
    if (plan) return Effect.succeed(plan)
    const build = findPasst()
    if (!build) return Effect.fail(new HypervisorUnavailable("networking needs passt; on Debian/Ubuntu: apt-get install passt (or scripts/build-passt.sh for a current one)"))
    const support = probeNamespace(build, isRoot)
    const chosen: NetworkPlan = { build, namespace: support.ok ? support : undefined, isRoot, reason: support.reason }
    plan = chosen
    return Effect.as(Effect.all([
      build.current ? Effect.void : Effect.logWarning(`boxlite: ${build.passt} is passt from before 2024: a guest server that speaks first (SMTP, MySQL, VNC, FTP) waits for the client's first byte through a port forward, and UDP forwards are refused; scripts/build-passt.sh builds a current one (or set BOXLITE_PASST)`),
      support.ok ? Effect.void : Effect.logWarning(`boxlite: the egress policy cannot be enforced: ${support.reason}. Boxes with network allow/deny rules are refused; other boxes reach every address passt can, the host's own included`)
    ]), chosen)
  })
  const binary = Effect.suspend(() => {
    if (!host) return Effect.fail(new HypervisorUnavailable(`the QEMU driver does not support ${process.arch} hosts`))
    const found = findOnPath(options.binary ?? host.binary)
    return found ? Effect.succeed(found) : Effect.fail(new HypervisorUnavailable(`QEMU (${options.binary ?? host.binary}) is not installed or not on PATH; on Debian/Ubuntu: ${host.install}`))
  })
  // Probed once: no bwrap is an error (the jail is not optional), no cgroup one warning.
  let confined: Confinement | undefined
  const confinement = Effect.suspend(() => {
    if (confined) return Effect.succeed(confined)
    if (process.platform !== "linux") {
      const reason = `no VMM jail on ${process.platform} (bubblewrap, seccomp and cgroups are Linux's)`
      confined = { tools: undefined, cgroups: undefined, info: { user: "this user", cgroup: "none", degraded: reason } }
      return Effect.as(Effect.logWarning(`boxlite: ${reason}`), confined)
    }
    let tools: JailTools
    try {
      tools = probeJail(isRoot ? { uid: BOX_UID_FIRST, gid: BOX_UID_FIRST, groups: [] } : undefined)
    } catch (e) {
      return Effect.fail(new HypervisorUnavailable((e as Error).message))
    }
    const cgroups = probeCgroups()
    const user = isRoot ? "a uid of its own per box (0x70000000-0x70ffffff), in a user namespace" : "this user, in a user namespace"
    if (typeof cgroups !== "string") {
      confined = { tools, cgroups, info: { user, cgroup: cgroups.version } }
      return Effect.succeed(confined)
    }
    confined = { tools, cgroups: undefined, info: { user, cgroup: "none", degraded: `no cgroup limits: ${cgroups}` } }
    return Effect.as(Effect.logWarning(`boxlite: VMs run without memory, task and CPU-weight limits: ${cgroups}`), confined)
  })

  /** Whom QEMU runs as (undefined: this non-root user) and which device nodes it gets. */
  const jailUserFor = (spec: VmSpec, accel: AcceleratorChoice) =>
    Effect.suspend((): Effect.Effect<{ user: JailUser | undefined; devices: Array<string> }, HypervisorUnavailable> => {
      const devices = accel.accelerator === "kvm" ? ["/dev/kvm"] : []
      if (!isRoot) return Effect.succeed({ user: undefined, devices })
      const kvm = accel.accelerator === "kvm" ? fs.statSync("/dev/kvm") : undefined
      const groups = kvm ? deviceGroups(kvm.mode, kvm.gid) : []
      if (!groups) {
        return Effect.fail(new HypervisorUnavailable(
          "/dev/kvm is usable by root only, and QEMU runs as an unprivileged uid: give it a group (udev: KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"), or BOXLITE_ACCEL=tcg"
        ))
      }
      const uid = boxUid(spec.boxId)
      return Effect.succeed({ user: { uid, gid: uid, groups }, devices })
    })

  const start = (spec: VmSpec) =>
    Effect.gen(function*() {
      if (badDiskFormat) return yield* badDiskFormat
      const qemu = yield* binary
      const accel = yield* accelerator
      const confine = yield* confinement
      const { user, devices } = yield* jailUserFor(spec, accel)
      if (spec.volumes.length > 0 && !fs.existsSync(VIRTIOFSD)) {
        return yield* new HypervisorUnavailable(`volumes need ${VIRTIOFSD}; on Debian/Ubuntu: ${host!.install}`)
      }
      if (spec.volumes.length > 0 && !findOnPath("bwrap")) {
        return yield* new HypervisorUnavailable("volumes need bwrap (virtiofsd's sandbox); on Debian/Ubuntu: apt-get install bubblewrap")
      }
      const daemonUser = spec.volumes.length > 0 ? yield* virtiofsdUser : undefined
      const netPlan = spec.network ? yield* networkPlan : undefined
      if (spec.network && netPlan && !netPlan.namespace && hasExplicitPolicy(spec.network)) {
        return yield* new HypervisorUnavailable(`network allow/deny rules cannot be enforced on this host: ${netPlan.reason}`)
      }
      if (spec.network && netPlan && !netPlan.build.current && spec.network.ports.some((p) => p.protocol === "udp")) {
        return yield* new HypervisorUnavailable(`UDP port forwards need passt from 2024 on (${netPlan.build.passt} loses the replies): run scripts/build-passt.sh or set BOXLITE_PASST`)
      }
      const cannotStart = (e: unknown) => new BootError(`box ${spec.boxId} cannot start: ${(e as Error).message}`, "")
      const limits = vmLimits(spec, accel)
      // Released last, the VM gone. A cgroup still busy after removeDir's retries stays, empty,
      // and the box's next start takes it back.
      const cgroup = confine.cgroups && (yield* Effect.acquireRelease(
        Effect.try({ try: () => confine.cgroups!.create(spec.boxId, limits), catch: cannotStart }),
        (cg) => Effect.promise(() => cg.remove().catch(() => undefined))
      ))
      // Short paths: unix socket names are limited to 108 bytes, wherever the home is.
      const runDir = yield* Effect.acquireRelease(
        Effect.sync(() => makeRunDir(spec.boxId)),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const setpriv = process.platform === "linux" ? findOnPath("setpriv") : undefined
      const helpers: Array<Helper> = []
      yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all(helpers.map(stopHelper))))
      const files = yield* Effect.acquireRelease(Effect.try({ try: () => openFiles(spec), catch: cannotStart }), (f) => Effect.sync(f.close))
      const receiver = yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => StateReceiver.listen(runDir, user), catch: cannotStart }),
        (r) => Effect.sync(() => r.close())
      )
      const volumeSockets: Array<net.Socket> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => volumeSockets.forEach((s) => s.destroy())))
      yield* Effect.tryPromise({
        try: async () => {
          const rootLayout = hostRootLayout()
          const filter = virtiofsdFilter()
          const daemons = spec.volumes.map(async (volume, i) => {
            const socket = path.join(runDir, `fs${i}.sock`)
            const stage = path.join(runDir, `fs${i}.d`)
            fs.mkdirSync(stage)
            const argv = virtiofsdArgv(socket, volume, daemonUser!, stage, rootLayout)
            // Descriptors VIRTIOFSD_FD.seccomp (a pipe we write the program to) and .source.
            const daemon = startHelper(`virtiofsd for ${volume.hostPath}`, argv, setpriv, ["pipe", volume.fd])
            ;(daemon.process.stdio[VIRTIOFSD_FD.seccomp] as Writable | null)?.end(filter)
            helpers.push(daemon)
            // QEMU gets the connected socket, not the path: it needs no run directory. The
            // vhost-user front end speaks first, so nothing is read here meanwhile.
            volumeSockets[i] = await connectToHelper(daemon, socket, 10_000)
          })
          await Promise.all(daemons)
        },
        catch: cannotStart
      })
      const network = spec.network && (yield* Effect.tryPromise({
        try: () => startNetwork(spec.network!, netPlan!, helpers),
        catch: (e) => new BootError(`box ${spec.boxId} cannot start its network: ${(e as Error).message}`, "")
      }))
      const args = qemuArgs(spec, host!.machine, accel, descriptorsFor(spec))
      const argv = confine.tools
        ? jailArgv(confine.tools, {
          user,
          devices,
          // A QEMU installed outside /usr: its binary (its libraries and firmware must be under /usr).
          readOnly: fs.realpathSync(qemu).startsWith("/usr/") ? [] : [fs.realpathSync(qemu)],
          rlimits: { nofile: NOFILE, nproc: limits.pids },
          cgroupProcs: cgroup?.procs ?? [],
          infoFd: FD.jailInfo
        }, qemu, args)
        : [qemu, ...args]
      const vm = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => launch({
            argv, jailed: confine.tools !== undefined, files, volumes: volumeSockets, network, helpers, receiver,
            restore: spec.restore,
            stateMaxBytes: spec.memoryMib * 1024 * 1024 + STATE_SLACK_BYTES,
            // Hashed while QEMU starts and loads: it is checked before the guest runs.
            restoreHash: spec.restore && silenced(sha256Of(spec.restore.file)),
            signature: (qemuVersion) => stateSignature(spec, deviceModel(args), accel.accelerator, qemuVersion),
            consoleLog: path.join(spec.dir, "console.log"), consoleLogMaxBytes: spec.consoleLogMaxBytes ?? CONSOLE_LOG_MAX_BYTES,
            connectTimeoutMs: options.connectTimeoutMs ?? 10_000
          }),
          // launch rejects with BootError or SnapshotError; anything else (spawn throwing) becomes a BootError.
          catch: (e) => e instanceof BootError || e instanceof SnapshotError ? e : cannotStart(e)
        }),
        (vm) => Effect.promise(async () => {
          vm.kill()
          await vm.exited
        })
      )
      // The VM's helpers and cgroup are useless without it: when it ends, so do they.
      void vm.exited.then(() => {
        helpers.forEach((h) => void stopHelper(h))
        void cgroup?.remove().catch(() => undefined)
      })
      return vm
    })

  return Hypervisor.of({
    name: "qemu",
    capabilities,
    guestNetwork: GUEST_NETWORK,
    info: Effect.gen(function*() {
      if (badDiskFormat) return yield* badDiskFormat
      yield* binary
      const a = yield* accelerator
      const c = yield* confinement
      return { driver: "qemu", accelerator: a.accelerator, reason: a.reason, transport: "virtio-serial", confinement: c.info }
    }),
    start
  })
}

interface OpenFiles {
  readonly kernel: number
  readonly initrd: number
  readonly base: number | undefined
  readonly disk: number
  readonly layers: ReadonlyArray<number>
  readonly incoming: number | undefined
  /** Closes this process's copies (QEMU keeps its own); idempotent. */
  readonly close: () => void
}

/** The box's files, opened here so that the jailed QEMU, which cannot see them, gets descriptors. */
const openFiles = (spec: VmSpec): OpenFiles => {
  const { O_RDONLY, O_RDWR, O_NOFOLLOW } = fs.constants
  return openDescriptors((open) => ({
    kernel: open(spec.kernel, O_RDONLY),
    initrd: open(spec.initrd, O_RDONLY),
    base: spec.rootDiskBase === undefined ? undefined : open(spec.rootDiskBase, O_RDONLY),
    // The box's own disk is never a symlink.
    disk: open(spec.rootDisk, O_RDWR | O_NOFOLLOW),
    layers: (spec.rootDiskLayers ?? []).map((layer) => open(layer, O_RDONLY | O_NOFOLLOW)),
    incoming: spec.restore ? open(spec.restore.file, O_RDONLY | O_NOFOLLOW) : undefined
  }))
}

/** A promise whose rejection is handled by whoever awaits it later, not reported as unhandled meanwhile. */
const silenced = <A>(promise: Promise<A>): Promise<A> => {
  promise.catch(() => undefined)
  return promise
}

/** passt or pasta says why it stopped (e.g. a port it cannot bind) among notices that are no error. */
const complaint = (helper: Helper): string =>
  helper.stderr().split("\n").filter((line) => !/^Failed to send \d+ bytes to syslog$|^Don't run as root|^Started as root/.test(line)).join("\n").trim()

interface Launch {
  readonly argv: ReadonlyArray<string>
  /** Run in the jail (jailArgv): bwrap reports QEMU's pid and its exit. */
  readonly jailed: boolean
  readonly files: OpenFiles
  readonly volumes: ReadonlyArray<net.Socket>
  /** passt (and pasta), already running: QEMU gets `fdForQemu`. */
  readonly network: StartedNetwork | undefined
  readonly helpers: Array<Helper>
  /** Where saved state arrives (VmControl.saveState). */
  readonly receiver: StateReceiver
  /** State to load before the guest runs (VmSpec.restore), and its sha256 being computed. */
  readonly restore: SavedState | undefined
  readonly restoreHash: Promise<string> | undefined
  /** The most a saved state may take: the guest's RAM plus STATE_SLACK_BYTES of device state. */
  readonly stateMaxBytes: number
  /** The VM's state signature, once QEMU has said its version. */
  readonly signature: (qemuVersion: string) => string
  readonly consoleLog: string
  readonly consoleLogMaxBytes: number
  readonly connectTimeoutMs: number
}

/** bwrap exits 128+N when QEMU dies of signal N: reported as that signal. */
const exitOf = (code: number | null, signal: NodeJS.Signals | null, jailed: boolean): VmExit => {
  if (jailed && code !== null && code > 128) {
    const name = Object.entries(os.constants.signals).find(([, n]) => n === code - 128)?.[0]
    if (name) return { code: null, signal: name }
  }
  return { code, signal }
}

/**
 * Starts QEMU with its descriptors (its end of passt's socketpair among them), resolves once QEMU's
 * monitor greets (QEMU sends that from its main loop: every device is up, the guest runs).
 */
const launch = (plan: Launch): Promise<Vm> =>
  new Promise((resolve, reject) => {
    let stderr: OutputTail | undefined
    let settled = false
    let qemuPid: number | undefined
    let child: ReturnType<typeof spawn> | undefined
    let tail: TailBuffer | undefined
    const timer = setTimeout(() => fail(`QEMU did not start within ${plan.connectTimeoutMs} ms`), plan.connectTimeoutMs)
    const kill = () => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return
      // QEMU itself: bwrap exits once it has, so `exited` means QEMU is gone.
      try {
        if (qemuPid !== undefined) return process.kill(qemuPid, "SIGKILL")
      } catch {
        // Gone already; bwrap follows.
      }
      child.kill("SIGKILL")
    }
    let qmp: Qmp | undefined
    // While state loads, QEMU exiting is the restore's failure (a damaged file), said by restoreState.
    let restoring = false
    const fail = (problem: string | SnapshotError) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      kill()
      qmp?.close()
      plan.files.close()
      const failure = typeof problem === "string"
        ? new BootError(`${problem}${stderr?.text() ? `: ${stderr.text()}` : ""}`, tail?.tail(4096).toString("utf8") ?? "")
        : problem
      // Once QEMU is gone (a process that never started may never report an exit), so that what
      // it held, its cgroup, can go with the scope.
      void Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]).then(() => reject(failure))
    }
    const tap = plan.network?.fdForQemu
    const stdio: StdioOptions = [
      "ignore", "ignore", "pipe", "pipe", "pipe", "pipe", plan.jailed ? "pipe" : "ignore",
      plan.files.kernel, plan.files.initrd, plan.files.base ?? "ignore", plan.files.disk, tap ?? "ignore",
      plan.receiver.pathFd, plan.files.incoming ?? "ignore", ...plan.files.layers, ...plan.volumes
    ]
    // cwd /: the jail's user may not enter this process's working directory.
    const proc = spawn(plan.argv[0]!, plan.argv.slice(1), { cwd: "/", stdio })
    child = proc
    const streams = proc.stdio as ReadonlyArray<Duplex | null>
    // QEMU holds its copies now. passt's other end goes in the same tick, before this process
    // could read a frame meant for QEMU, and so that only QEMU keeps passt alive.
    tap?.destroy()
    plan.volumes.forEach((s) => s.destroy())
    plan.files.close()
    plan.receiver.closePathFd()
    for (const helper of plan.network?.helpers ?? []) {
      helper.process.once("exit", () => fail(`the network (${helper.name}) stopped while the VM was booting: ${complaint(helper) || `code ${helper.process.exitCode}`}`))
    }
    stderr = outputTail(proc.stderr)
    const exited = new Promise<VmExit>((done) => proc.on("exit", (code, signal) => done(exitOf(code, signal, plan.jailed))))
    proc.on("error", (e) => fail(`cannot start ${plan.argv[0]}: ${e.message}`))
    void exited.then((exit) => {
      qmp?.close()
      if (!restoring) fail(`QEMU exited before the guest started (${exit.signal ?? `code ${exit.code}`})`)
    })
    try {
      tail = readConsole(streams[FD.console]!, plan.consoleLog, plan.consoleLogMaxBytes)
    } catch (e) {
      return fail(`cannot write ${plan.consoleLog}: ${(e as Error).message}`)
    }
    let info = ""
    streams[FD.jailInfo]?.on("data", (d: Buffer) => {
      info += d.toString()
      const pid = /"child-pid":\s*(\d+)/.exec(info)?.[1]
      if (pid) qemuPid = Number(pid)
    })
    const monitor = streams[FD.monitor]!
    let greeting = ""
    monitor.on("error", () => undefined)
    const onGreeting = (d: Buffer) => {
      greeting += d.toString()
      if (settled || !greeting.includes("\n")) return
      monitor.off("data", onGreeting)
      clearTimeout(timer)
      void Qmp.open(monitor, greeting).then(async (opened) => {
        qmp = opened
        // Only a restore or a save needs it (it stats the guest's files): not every boot.
        const signature = () => plan.signature(opened.version)
        if (plan.restore) {
          restoring = true
          await restoreState(opened, exited, FD.incoming, plan.restore, plan.restoreHash!, signature()).catch((e: unknown) => {
            const reason = stderr?.text()
            throw e instanceof SnapshotError && reason ? new SnapshotError(e.reason, `${e.message} (QEMU: ${reason})`) : e
          })
          restoring = false
        }
        if (settled) return
        settled = true
        const console = tail!
        const control: VmControl = {
          pause: () => opened.execute("stop").then(() => undefined),
          resume: () => opened.execute("cont").then(() => undefined),
          saveState: (file) => plan.receiver.save(opened, exited, FD.stateSocket, file, signature(), plan.stateMaxBytes)
        }
        resolve({
          pid: qemuPid ?? proc.pid ?? -1,
          agent: streams[FD.agent]!,
          exited,
          consoleTail: async (bytes = 4096) => console.tail(bytes).toString("utf8"),
          kill,
          control
        })
      }).catch((e: unknown) => {
        restoring = false
        fail(e instanceof SnapshotError ? e : `QEMU's monitor: ${(e as Error).message}`)
      })
    }
    monitor.on("data", onGreeting)
  })

/** The QEMU Hypervisor, accelerator chosen by probing (BOXLITE_ACCEL=kvm|tcg overrides). */
export const layer = (options?: QemuDriverOptions): Layer.Layer<Hypervisor> => Layer.succeed(Hypervisor, make(options))

/** What a supervisor loads for boxes recorded with the driver `qemu`. */
export const driver: DriverPlugin = { name: "qemu", make: () => make() }

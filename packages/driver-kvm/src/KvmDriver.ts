/**
 * The cloud-hypervisor driver: a VMM started with only its API socket, then configured and
 * booted over REST (vm.create, vm.boot), the agent reached through hybrid vsock, volumes through
 * virtiofsd (vhost-user-fs) and the network through passt's vhost-user back end. It needs real
 * KVM (probed by ioctls, KvmProbe.ts): there is no software fallback, that is the QEMU driver's.
 */
import {
  BootError, CONSOLE_LOG_MAX_BYTES, type DriverCapabilities, type DriverPlugin, Hypervisor, HypervisorUnavailable, makeRunDir, openDescriptors, type Vm, type VmExit,
  outputTail, type VmmConfinement, type VmSpec
} from "@boxlite/driver"
import {
  type Cgroups, findOnPath, findPasst, GUEST_NETWORK, hasExplicitPolicy, type Helper, jailArgv, type JailTools, type NetworkPlan, probeCgroups,
  probeJail, probeNamespace, probeVirtiofsdUser, hostRootLayout, readConsole, startHelper, startNetwork, stopHelper, type TailBuffer, VIRTIOFSD,
  VIRTIOFSD_FD, virtiofsdArgv, virtiofsdFilter, type VirtiofsdUser
} from "@boxlite/driver-qemu"
import { Effect, Layer } from "effect"
import { spawn, spawnSync, type StdioOptions } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Readable, Writable } from "node:stream"
import { CloudHypervisorApi } from "./internal/api.js"
import { AGENT_VSOCK_PORT, cloudHypervisorArgs, FD, runFiles, vmConfig } from "./internal/vmConfig.js"
import { connectGuest } from "./internal/vsock.js"
import { type KvmVerdict, kvmVerdict } from "./KvmProbe.js"

export interface KvmDriverOptions {
  /** The cloud-hypervisor binary; default $BOXLITE_CLOUD_HYPERVISOR, else `cloud-hypervisor` on PATH. */
  readonly binary?: string
  /** How long the guest agent may take to answer on vsock after vm.boot. Default 30 s. */
  readonly bootTimeoutMs?: number
  /** How long cloud-hypervisor and its helpers may take to open their sockets. Default 10 s. */
  readonly connectTimeoutMs?: number
  /** The KVM verdict; default: probed once (kvmVerdict). */
  readonly kvm?: () => Promise<KvmVerdict>
}

const INSTALL =
  "cloud-hypervisor is not packaged by Debian: install the static binary from https://github.com/cloud-hypervisor/cloud-hypervisor/releases " +
  "(cloud-hypervisor-static, a release from mid-2024 on) as /usr/local/bin/cloud-hypervisor, or set BOXLITE_CLOUD_HYPERVISOR to its path"

/**
 * Raw disks first: the runtime gives each box a raw copy of its image (a reflink clone where the
 * file system can), the format cloud-hypervisor is built around. qcow2 overlays are accepted
 * (`backing_files`, cloud-hypervisor from 2026 on): the VMM then opens the backing path written
 * in the overlay's header, which the jail limits to the base and layers the caller named, bound
 * read-only (see the README). passt's vhost-user NAT with forwards and the egress policy; virtiofs
 * volumes; the agent on vsock. No snapshots: cloud-hypervisor's vm.snapshot is a directory of
 * its own format, not SavedState's one checked file, and its vm.restore reopens every path of
 * the saved config: not done yet.
 */
export const CAPABILITIES: DriverCapabilities = {
  diskFormats: ["raw", "qcow2"],
  network: true,
  portForwards: true,
  egressPolicy: true,
  volumes: true,
  snapshots: false,
  agentTransport: "vsock"
}

/** cloud-hypervisor's own memory beyond the guest's (its threads, virtio queues, the API server). */
export const VMM_OVERHEAD_MIB = 64
/** Its tasks: a thread per vCPU and per device queue pair, the API and signal threads, bwrap; twice over. */
export const TASKS_PER_VM = 64
const NOFILE = 1024
const NOBODY = 65534

/** passt knows `--vhost-user` (added late 2024): an unknown option fails before `--version` is acted on. */
export const hasVhostUser = (passt: string): boolean => spawnSync(passt, ["--vhost-user", "--version"], { stdio: "ignore" }).status === 0

/** Appears at bind() and accepts at listen(): both are waited for, by polling the file. */
const waitForSocket = async (file: string, timeoutMs: number, gone: () => string | undefined): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const exited = gone()
    if (exited) throw new Error(exited)
    try {
      if (fs.statSync(file).isSocket()) return
    } catch {
      // Not there yet.
    }
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const helperGone = (helper: Helper) => () =>
  helper.process.exitCode !== null || helper.process.signalCode !== null ? `${helper.name} exited: ${helper.stderr() || `code ${helper.process.exitCode}`}` : undefined

interface Confinement {
  readonly tools: JailTools
  readonly cgroups: Cgroups | undefined
  readonly info: VmmConfinement
}

export const make = (options: KvmDriverOptions = {}): Hypervisor["Service"] => {
  const isRoot = process.getuid?.() === 0
  const once = <A>(compute: () => Effect.Effect<A, HypervisorUnavailable>) => {
    let value: A | undefined
    return Effect.suspend(() => (value !== undefined ? Effect.succeed(value) : Effect.tap(compute(), (v) => Effect.sync(() => (value = v)))))
  }

  const binary = Effect.suspend(() => {
    const wanted = options.binary ?? process.env["BOXLITE_CLOUD_HYPERVISOR"] ?? "cloud-hypervisor"
    const found = findOnPath(wanted)
    return found ? Effect.succeed(fs.realpathSync(found)) : Effect.fail(new HypervisorUnavailable(`${wanted} not found. ${INSTALL}`))
  })

  const kvm = once(() =>
    Effect.flatMap(Effect.promise(options.kvm ?? (() => kvmVerdict())), (verdict) =>
      verdict.usable
        ? Effect.as(Effect.logInfo(`boxlite: cloud-hypervisor on KVM (${verdict.reason})`), verdict.reason)
        : Effect.fail(new HypervisorUnavailable(`the kvm driver needs usable KVM: ${verdict.reason}. The qemu driver runs boxes without it (TCG): new Boxlite({ driver: "qemu" })`)))
  )

  const confinement = once((): Effect.Effect<Confinement, HypervisorUnavailable> => {
    let tools: JailTools
    try {
      tools = probeJail(undefined)
    } catch (e) {
      return Effect.fail(new HypervisorUnavailable((e as Error).message))
    }
    const cgroups = probeCgroups()
    // Not a uid per box as under QEMU: cloud-hypervisor opens its sockets, and reopens the box's
    // disk, by path, so it runs as the runtime's user, without capabilities.
    const user = isRoot ? "root without capabilities, in a user namespace (not a uid per box)" : "this user, in a user namespace"
    const degraded = [isRoot ? "cloud-hypervisor runs as root (no capabilities) rather than a uid of its own" : undefined, typeof cgroups === "string" ? `no cgroup limits: ${cgroups}` : undefined].filter(Boolean).join("; ")
    const info: VmmConfinement = { user, cgroup: typeof cgroups === "string" ? "none" : cgroups.version, ...(degraded ? { degraded } : {}) }
    const confined: Confinement = { tools, cgroups: typeof cgroups === "string" ? undefined : cgroups, info }
    return Effect.as(typeof cgroups === "string" ? Effect.logWarning(`boxlite: VMs run without memory, task and CPU-weight limits: ${cgroups}`) : Effect.void, confined)
  })

  const virtiofsdUser = once((): Effect.Effect<VirtiofsdUser, HypervisorUnavailable> => {
    try {
      const choice = probeVirtiofsdUser(isRoot)
      return Effect.as(choice.warning ? Effect.logWarning(`boxlite: ${choice.warning}`) : Effect.void, choice.user)
    } catch (e) {
      return Effect.fail(new HypervisorUnavailable((e as Error).message))
    }
  })

  const networkPlan = once((): Effect.Effect<NetworkPlan, HypervisorUnavailable> => {
    const build = findPasst()
    if (!build || !hasVhostUser(build.passt)) {
      return Effect.fail(new HypervisorUnavailable(
        `the kvm driver's network is passt's vhost-user back end (passt from late 2024 on)${build ? `; ${build.passt} has no --vhost-user` : ""}: run scripts/build-passt.sh, or set BOXLITE_PASST to a current passt; without it use network "none"`
      ))
    }
    const support = probeNamespace(build, isRoot)
    const plan: NetworkPlan = { build, namespace: support.ok ? support : undefined, isRoot, reason: support.reason }
    return Effect.as(
      support.ok ? Effect.void : Effect.logWarning(`boxlite: the egress policy cannot be enforced: ${support.reason}. Boxes with network allow/deny rules are refused`),
      plan
    )
  })

  const start = (spec: VmSpec) =>
    Effect.gen(function*() {
      const ch = yield* binary
      yield* kvm
      const confine = yield* confinement
      if (spec.restore) return yield* new HypervisorUnavailable("the kvm driver cannot restore saved VMs (capabilities.snapshots is false)")
      if (spec.volumes.length > 0 && !fs.existsSync(VIRTIOFSD)) {
        return yield* new HypervisorUnavailable(`volumes need ${VIRTIOFSD}; on Debian/Ubuntu: apt-get install qemu-system-common (Debian 12) or virtiofsd`)
      }
      const daemonUser = spec.volumes.length > 0 ? yield* virtiofsdUser : undefined
      const netPlan = spec.network ? yield* networkPlan : undefined
      if (spec.network && netPlan && !netPlan.namespace && hasExplicitPolicy(spec.network)) {
        return yield* new HypervisorUnavailable(`network allow/deny rules cannot be enforced on this host: ${netPlan.reason}`)
      }
      const cannotStart = (e: unknown) => new BootError(`box ${spec.boxId} cannot start: ${(e as Error).message}`, "")
      const connectTimeoutMs = options.connectTimeoutMs ?? 10_000

      const cgroup = confine.cgroups && (yield* Effect.acquireRelease(
        Effect.try({
          try: () => confine.cgroups!.create(spec.boxId, {
            memoryBytes: (spec.memoryMib + VMM_OVERHEAD_MIB) * 1024 * 1024,
            pids: TASKS_PER_VM + spec.cpus,
            cpuWeight: Math.min(10_000, 100 * spec.cpus)
          }),
          catch: cannotStart
        }),
        (cg) => Effect.promise(() => cg.remove().catch(() => undefined))
      ))
      // Short (unix socket paths are limited to 108 bytes), named as the runtime expects to clean
      // up after a killed supervisor (makeRunDir). 0755: passt (which drops to nobody)
      // fails to bind a socket below a directory others cannot read (0700, 0711); no socket here
      // is writable by others, so no other user can connect to one.
      const runDir = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const dir = makeRunDir(spec.boxId)
          fs.chmodSync(dir, 0o755)
          return dir
        }),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const files = runFiles(runDir)
      const helpers: Array<Helper> = []
      yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all(helpers.map(stopHelper))))
      const setpriv = findOnPath("setpriv")
      yield* Effect.tryPromise({
        try: () =>
          Promise.all(spec.volumes.map(async (volume, i) => {
            const stage = path.join(runDir, `fs${i}.d`)
            fs.mkdirSync(stage)
            const argv = virtiofsdArgv(files.fs(i), volume, daemonUser!, stage, hostRootLayout())
            const daemon = startHelper(`virtiofsd for ${volume.hostPath}`, argv, setpriv, ["pipe", volume.fd])
            ;(daemon.process.stdio[VIRTIOFSD_FD.seccomp] as Writable | null)?.end(virtiofsdFilter())
            helpers.push(daemon)
            // cloud-hypervisor connects by path (the front end speaks first): the socket only has to exist.
            await waitForSocket(files.fs(i), connectTimeoutMs, helperGone(daemon))
            ownSocket(files.fs(i))
          })),
        catch: cannotStart
      })
      if (spec.network) {
        yield* Effect.tryPromise({
          try: async () => {
            fs.mkdirSync(files.netDir, { mode: 0o755 })
            // As root, the egress namespace (and passt in it) belongs to nobody (see driver-qemu's network.ts).
            if (netPlan!.isRoot && netPlan!.namespace && !netPlan!.namespace.pastaAsRoot) fs.chownSync(files.netDir, NOBODY, NOBODY)
            const started = await startNetwork(spec.network!, netPlan!, helpers, files.net)
            // passt's socketpair is for QEMU's stream netdev; vhost-user does without.
            started.fdForQemu.destroy()
            await waitForSocket(files.net, connectTimeoutMs, helperGone(started.helpers[0]!))
            ownSocket(files.net)
          },
          catch: (e) => new BootError(`box ${spec.boxId} cannot start its network: ${(e as Error).message}`, "")
        })
      }
      const opened = yield* Effect.acquireRelease(Effect.try({ try: () => openFiles(spec), catch: cannotStart }), (f) => Effect.sync(f.close))
      const argv = jailArgv(confine.tools, {
        user: undefined,
        devices: ["/dev/kvm"],
        // The binary if outside /usr; the base and layers at their own paths: the overlay's header names them.
        readOnly: [...(ch.startsWith("/usr/") ? [] : [ch]), ...(spec.rootDiskBase ? [spec.rootDiskBase] : []), ...(spec.rootDiskLayers ?? [])],
        readWrite: [runDir],
        rlimits: { nofile: NOFILE, nproc: TASKS_PER_VM + spec.cpus },
        cgroupProcs: cgroup?.procs ?? [],
        infoFd: FD.jailInfo
      }, ch, cloudHypervisorArgs(runDir))
      return yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            launch({
              argv, spec, runDir, opened, helpers, connectTimeoutMs, bootTimeoutMs: options.bootTimeoutMs ?? 30_000,
              consoleLog: path.join(spec.dir, "console.log"), consoleLogMaxBytes: spec.consoleLogMaxBytes ?? CONSOLE_LOG_MAX_BYTES
            }),
          catch: (e) => (e instanceof BootError ? e : cannotStart(e))
        }),
        (vm) => Effect.promise(() => vm.stop())
      ).pipe(Effect.map((vm): Vm => {
        void vm.exited.then(() => {
          helpers.forEach((h) => void stopHelper(h))
          void cgroup?.remove().catch(() => undefined)
        })
        return vm.vm
      }))
    })

  return Hypervisor.of({
    name: "kvm",
    capabilities: CAPABILITIES,
    guestNetwork: GUEST_NETWORK,
    info: Effect.gen(function*() {
      yield* binary
      const reason = yield* kvm
      const c = yield* confinement
      return { driver: "kvm", accelerator: "kvm", reason, transport: "vsock", confinement: c.info }
    }),
    start
  })
}

/** A helper's socket, made by a helper that may run as nobody: this process's user owns it, so that cloud-hypervisor may connect. */
const ownSocket = (file: string) => {
  if (process.getuid?.() === 0) fs.chownSync(file, 0, 0)
}

interface OpenFiles {
  readonly kernel: number
  readonly initrd: number
  readonly disk: number
  readonly close: () => void
}

/** The box's files, opened here and inherited: the jailed VMM sees none of its directories. */
const openFiles = (spec: VmSpec): OpenFiles => {
  const { O_RDONLY, O_RDWR, O_NOFOLLOW } = fs.constants
  return openDescriptors((open) => ({
    kernel: open(spec.kernel, O_RDONLY),
    initrd: open(spec.initrd, O_RDONLY),
    disk: open(spec.rootDisk, O_RDWR | O_NOFOLLOW)
  }))
}

interface Launch {
  readonly argv: ReadonlyArray<string>
  readonly spec: VmSpec
  readonly runDir: string
  readonly opened: OpenFiles
  readonly helpers: ReadonlyArray<Helper>
  readonly connectTimeoutMs: number
  readonly bootTimeoutMs: number
  readonly consoleLog: string
  readonly consoleLogMaxBytes: number
}

interface Launched {
  readonly vm: Vm
  readonly exited: Promise<VmExit>
  /** vmm.shutdown, then SIGKILL if it has not exited within a second; resolves once it has. */
  readonly stop: () => Promise<void>
}

/** bwrap exits 128+N when the VMM dies of signal N: reported as that signal. */
const exitOf = (code: number | null, signal: NodeJS.Signals | null): VmExit => {
  if (code !== null && code > 128) {
    const name = Object.entries(os.constants.signals).find(([, n]) => n === code - 128)?.[0]
    if (name) return { code: null, signal: name }
  }
  return { code, signal }
}

/** Spawns the jailed VMM, creates and boots the VM over REST, connects to the agent over vsock. */
const launch = async (plan: Launch): Promise<Launched> => {
  const files = runFiles(plan.runDir)
  const stdio: StdioOptions = ["ignore", "pipe", "pipe", "pipe", plan.opened.kernel, plan.opened.initrd, plan.opened.disk]
  // cwd /: the jail has no other directory of this process.
  const proc = spawn(plan.argv[0]!, plan.argv.slice(1), { cwd: "/", stdio })
  plan.opened.close()
  const stderr = outputTail(proc.stderr)
  let vmmPid: number | undefined
  let info = ""
  ;(proc.stdio[FD.jailInfo] as Readable | null)?.on("data", (d: Buffer) => {
    info += d.toString()
    const pid = /"child-pid":\s*(\d+)/.exec(info)?.[1]
    if (pid) vmmPid = Number(pid)
  })
  let spawnError: Error | undefined
  proc.on("error", (e) => (spawnError = e))
  let exit: VmExit | undefined
  const exited = new Promise<VmExit>((done) => proc.on("exit", (code, signal) => done((exit = exitOf(code, signal)))))
  const kill = () => {
    if (exit) return
    // The VMM itself: bwrap exits once it has, so `exited` means it is gone.
    try {
      if (vmmPid !== undefined) return process.kill(vmmPid, "SIGKILL")
    } catch {
      // Gone already; bwrap follows.
    }
    proc.kill("SIGKILL")
  }
  const stderrText = () => (stderr.text() ? `: ${stderr.text()}` : "")
  const gone = () => {
    if (spawnError) return `cannot start ${plan.argv[0]}: ${spawnError.message}`
    const helper = plan.helpers.find((h) => h.process.exitCode !== null || h.process.signalCode !== null)
    if (helper) return `${helper.name} stopped while the VM was booting: ${helper.stderr() || `code ${helper.process.exitCode}`}`
    return exit ? `cloud-hypervisor exited before the guest agent answered (${exit.signal ?? `code ${exit.code}`})${stderrText()}` : undefined
  }
  let tail: TailBuffer | undefined
  const consoleTail = () => tail?.tail(4096).toString("utf8") ?? ""
  const api = new CloudHypervisorApi(files.api)
  const stop = async () => {
    if (!exit) {
      // Asked first: it tears the VM down and exits; a VMM that does not answer is killed.
      await Promise.race([api.call("PUT", "vmm.shutdown").catch(() => undefined), new Promise((r) => setTimeout(r, 1_000))])
      await Promise.race([exited, new Promise((r) => setTimeout(r, 1_000))])
      kill()
      await exited
    }
    await api.close().catch(() => undefined)
  }
  try {
    tail = readConsole(proc.stdout!, plan.consoleLog, plan.consoleLogMaxBytes)
    const deadline = Date.now() + plan.connectTimeoutMs
    // The API answers once the VMM is up: vmm.ping, retried until its socket accepts.
    while (true) {
      const why = gone()
      if (why) throw new Error(why)
      const ping = await api.call("GET", "vmm.ping").catch(() => undefined)
      if (ping && ping.status === 200) break
      if (Date.now() > deadline) throw new Error(`cloud-hypervisor's API did not answer within ${plan.connectTimeoutMs} ms${stderrText()}`)
      await new Promise((r) => setTimeout(r, 20))
    }
    await api.expect("PUT", "vm.create", vmConfig(plan.spec, plan.runDir))
    await api.expect("PUT", "vm.boot")
    // vm.boot answers once the vCPUs are started: anything but Running is a VM that will not come up.
    const state = (JSON.parse(await api.expect("GET", "vm.info")) as { state?: unknown }).state
    if (state !== "Running") throw new Error(`the VM is ${String(state)} after vm.boot`)
    const agent = await connectGuest(files.vsock, AGENT_VSOCK_PORT, Date.now() + plan.bootTimeoutMs, gone)
    const vm: Vm = {
      pid: vmmPid ?? proc.pid ?? -1,
      agent,
      exited,
      consoleTail: async (bytes = 4096) => tail!.tail(bytes).toString("utf8"),
      kill
    }
    return { vm, exited, stop }
  } catch (e) {
    kill()
    // Once it is gone (a process that never started may never report an exit).
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))])
    await api.close().catch(() => undefined)
    throw new BootError(`box ${plan.spec.boxId} did not boot: ${(e as Error).message}`, consoleTail())
  }
}

/** The cloud-hypervisor Hypervisor. */
export const layer = (options?: KvmDriverOptions): Layer.Layer<Hypervisor> => Layer.succeed(Hypervisor, make(options))

/** What a supervisor loads for boxes recorded with the driver `kvm`. */
export const driver: DriverPlugin = { name: "kvm", make: () => make() }

/**
 * The hvf driver: boots a box with vfkit (crc-org/vfkit), Apple's Virtualization.framework on
 * Hypervisor.framework, from its command line; stops, kills and pauses it through vfkit's REST
 * API on a unix socket; reaches the guest agent through virtio-vsock.
 */
import {
  BootError, type DriverCapabilities, type DriverPlugin, Hypervisor, HypervisorUnavailable, makeRunDir, SnapshotError, type Vm, type VmExit,
  outputTail, type VmmConfinement, type VmSpec, type VmVolume
} from "@boxlite/driver"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { AgentStream } from "./internal/agent.js"
import { type BootFiles, GUEST_NETWORK, refusal, type VfkitPaths, vfkitArgs } from "./internal/args.js"
import { findVfkit, kernelProblem, probeHvSupport, readGuestDir } from "./internal/host.js"
import { takeNetworkLock } from "./internal/netlock.js"
import { RUNNING, VfkitRest } from "./internal/rest.js"

export interface HvfDriverOptions {
  /** The vfkit executable. Default: `$BOXLITE_VFKIT`, else `vfkit` on PATH or in Homebrew's bin directories. */
  readonly binary?: string
  /**
   * An arm64 guest build (a directory with manifest.json `{ kernel, initrd, cmdline }`, like
   * guest/dist) booted instead of the runtime's guest. Default: `$BOXLITE_HVF_GUEST`, else the
   * runtime's, which must then be arm64.
   */
  readonly guest?: string
  /** The host's platform and architecture, for tests elsewhere. Default: this process's. */
  readonly platform?: NodeJS.Platform
  readonly arch?: string
  /** Whether Hypervisor.framework is usable. Default: sysctl `kern.hv_support` (probeHvSupport). */
  readonly hvSupport?: () => boolean
  /** How long vfkit may take to have the VM running and the agent's socket up. Default 10 s. */
  readonly bootTimeoutMs?: number
  /**
   * The lock a box with a network holds while it runs (one at a time: see netlock.ts). Default
   * `$TMPDIR/boxlite-hvf-network.sock` (per user: another user's boxes are not seen).
   */
  readonly networkLock?: string
}

/** Raw disks cloned on APFS, vmnet NAT without forwards or policy, virtio-fs, vsock; no saved state. */
export const CAPABILITIES: DriverCapabilities = {
  diskFormats: ["raw"],
  network: true,
  portForwards: false,
  egressPolicy: false,
  volumes: true,
  snapshots: false,
  agentTransport: "vsock"
}

export const CONFINEMENT: VmmConfinement = {
  user: "this user",
  cgroup: "none",
  degraded: "vfkit runs as this user with no sandbox and no memory, task or CPU limits beyond the VM's own (macOS has no cgroups)"
}

/** After a HardStop, how long vfkit has to exit before it is killed. */
const KILL_GRACE_MS = 2_000

const message = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** The last `bytes` of the console log vfkit writes (empty when there is none yet). */
export const fileTail = (file: string, bytes: number): string => {
  let fd: number
  try {
    fd = fs.openSync(file, "r")
  } catch {
    return ""
  }
  try {
    const size = fs.fstatSync(fd).size
    const n = Math.min(size, Math.max(0, bytes))
    const buffer = Buffer.alloc(n)
    return buffer.subarray(0, fs.readSync(fd, buffer, 0, n, size - n)).toString("utf8")
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * vfkit shares a path, not the descriptor the runtime opened: the path must still be the
 * directory the descriptor holds (the runtime checked that one when the box was created).
 */
const volumeMoved = (volume: VmVolume): string | undefined => {
  try {
    const held = fs.fstatSync(volume.fd)
    const now = fs.statSync(volume.hostPath)
    if (!now.isDirectory()) return `volume ${volume.hostPath} is not a directory`
    return held.dev === now.dev && held.ino === now.ino ? undefined : `volume ${volume.hostPath} was replaced since the box was created`
  } catch (e) {
    return `volume ${volume.hostPath}: ${message(e)}`
  }
}

interface Launch {
  readonly vfkit: string
  readonly args: ReadonlyArray<string>
  readonly paths: VfkitPaths
  readonly consoleLog: string
  readonly bootTimeoutMs: number
}

interface Launched {
  readonly vm: Vm
  /** Ends the VM the orderly way (REST HardStop; killed if vfkit does not exit) and waits for vfkit's exit. */
  readonly stop: () => Promise<void>
}

/**
 * Starts vfkit; resolves once its REST API says the VM runs and its vsock proxy accepts (the
 * agent's stream then waits for the guest: AgentStream).
 */
const launch = async (plan: Launch): Promise<Launched> => {
  const child = spawn(plan.vfkit, plan.args, { cwd: "/", stdio: ["ignore", "ignore", "pipe"] })
  const stderr = outputTail(child.stderr)
  let spawnError: Error | undefined
  const exited = new Promise<VmExit>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }))
    child.on("error", (e) => {
      spawnError = e
      // Not started at all (e.g. not executable): no exit follows.
      if (child.pid === undefined) resolve({ code: null, signal: null })
    })
  })
  const gone = () => child.exitCode !== null || child.signalCode !== null || child.pid === undefined
  const rest = new VfkitRest(plan.paths.rest)
  // The VM is vfkit's (Virtualization.framework's XPC service ends with its client): killing vfkit ends it at once.
  const kill = () => {
    if (!gone()) child.kill("SIGKILL")
  }
  let killTimer: NodeJS.Timeout | undefined
  // HardStop is vfkit's own forced stop: it exits once the VM has stopped, its sockets removed. A vfkit that does not is killed.
  const hardStop = () => {
    if (gone()) return
    void rest.change("HardStop").catch(kill)
    killTimer ??= setTimeout(kill, KILL_GRACE_MS)
  }
  void exited.then(() => {
    clearTimeout(killTimer)
    rest.close()
  })
  const agent = new AgentStream(plan.paths.agent)
  void exited.then(() => agent.destroy())
  const deadline = Date.now() + plan.bootTimeoutMs
  const died = exited.then((exit) => {
    throw new Error(spawnError ? `cannot run ${plan.vfkit}: ${spawnError.message}` : `vfkit exited during boot (${exit.signal ?? `code ${exit.code}`})`)
  })
  died.catch(() => undefined)
  try {
    for (;;) {
      if (Date.now() > deadline) throw new Error(`the VM was not running within ${plan.bootTimeoutMs} ms`)
      // The socket appears once vfkit has parsed its options; the VM runs a moment later.
      const state = await Promise.race([rest.state().catch(() => undefined), died])
      if (state === RUNNING) break
      await Promise.race([new Promise((r) => setTimeout(r, 25)), died])
    }
    await Promise.race([
      agent.connected,
      died,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`vfkit's vsock socket did not accept within ${plan.bootTimeoutMs} ms`)), Math.max(0, deadline - Date.now())).unref())
    ])
  } catch (e) {
    kill()
    agent.destroy()
    await exited
    const reason = stderr.text()
    throw new BootError(`${message(e)}${reason ? `: ${reason}` : ""}`, fileTail(plan.consoleLog, 4096))
  }
  const vm: Vm = {
    pid: child.pid!,
    agent,
    exited,
    consoleTail: async (bytes = 4096) => fileTail(plan.consoleLog, bytes),
    kill,
    control: {
      pause: () => rest.change("Pause"),
      resume: () => rest.change("Resume"),
      saveState: () => Promise.reject(new SnapshotError("unsupported", "the hvf driver cannot save VMs (vfkit saves no VM state)"))
    }
  }
  return {
    vm,
    stop: async () => {
      hardStop()
      await exited
    }
  }
}

export const make = (options: HvfDriverOptions = {}): Hypervisor["Service"] => {
  const platform = options.platform ?? process.platform
  const arch = options.arch ?? process.arch
  let vfkit: string | undefined
  /** The host's checks, cached once they pass: macOS, Apple Silicon, Hypervisor.framework, vfkit. */
  const host = Effect.suspend(() => {
    if (vfkit) return Effect.succeed(vfkit)
    const unavailable = (why: string) => Effect.fail(new HypervisorUnavailable(why))
    if (platform !== "darwin") {
      return unavailable(`the hvf driver runs on macOS only (vfkit, Virtualization.framework); this host runs ${platform}: use the qemu driver (or kvm on Linux)`)
    }
    if (arch !== "arm64") return unavailable(`the hvf driver needs a Mac with Apple Silicon (arm64); this one is ${arch}: use the qemu driver`)
    let supported: boolean
    try {
      supported = (options.hvSupport ?? probeHvSupport)()
    } catch (e) {
      return unavailable(`cannot ask macOS whether Hypervisor.framework is usable (sysctl kern.hv_support): ${message(e)}`)
    }
    if (!supported) {
      return unavailable("Hypervisor.framework is not usable on this Mac (sysctl kern.hv_support is 0): in a virtual Mac, enable nested virtualization, or run on the Mac itself")
    }
    const name = options.binary ?? (process.env["BOXLITE_VFKIT"] || "vfkit")
    const found = findVfkit(name)
    if (!found) return unavailable(`vfkit (${name}) is not installed or not executable: brew install vfkit (or set BOXLITE_VFKIT to its path)`)
    vfkit = found
    return Effect.succeed(found)
  })

  /** The guest vfkit boots: BOXLITE_HVF_GUEST's if set, else the runtime's; an arm64 Image either way. */
  const bootFiles = (spec: VmSpec) =>
    Effect.suspend(() => {
      const dir = options.guest ?? (process.env["BOXLITE_HVF_GUEST"] || undefined)
      let files: BootFiles
      try {
        files = dir ? readGuestDir(dir) : { kernel: spec.kernel, initrd: spec.initrd, cmdline: spec.cmdline }
      } catch (e) {
        return Effect.fail(new HypervisorUnavailable(`the arm64 guest in ${dir} (BOXLITE_HVF_GUEST) cannot be read: ${message(e)}`))
      }
      const problem = kernelProblem(files.kernel)
      return problem ? Effect.fail(new HypervisorUnavailable(problem)) : Effect.succeed(files)
    })

  const start = (spec: VmSpec) =>
    Effect.gen(function*() {
      const binary = yield* host
      const boot = yield* bootFiles(spec)
      const consoleLog = path.join(spec.dir, "console.log")
      // Short (macOS caps unix socket paths at 104 bytes, and $TMPDIR is /var/folders/xx/.../T/),
      // and named as the runtime expects to clean up after a killed supervisor.
      const runDir = yield* Effect.acquireRelease(
        Effect.try({
          try: () => makeRunDir(spec.boxId),
          catch: (e) => new BootError(`box ${spec.boxId} cannot start: ${message(e)}`, "")
        }),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const paths: VfkitPaths = { rest: path.join(runDir, "rest.sock"), agent: path.join(runDir, "agent.sock") }
      const refused = refusal(spec, boot, paths, consoleLog)
      if (refused) {
        return yield* (refused.kind === "snapshot" ? new SnapshotError("unsupported", refused.message) : new BootError(`box ${spec.boxId} cannot start: ${refused.message}`, ""))
      }
      const disk = yield* Effect.try({ try: () => fs.statSync(spec.rootDisk), catch: (e) => new BootError(`box ${spec.boxId} cannot start: its root disk: ${message(e)}`, "") })
      if (!disk.isFile()) return yield* new BootError(`box ${spec.boxId} cannot start: its root disk ${spec.rootDisk} is not a file`, "")
      const moved = spec.volumes.map(volumeMoved).find((m) => m !== undefined)
      if (moved) return yield* new BootError(`box ${spec.boxId} cannot start: ${moved}`, "")
      // Released after the VM has exited (finalizers run in reverse).
      if (spec.network) {
        yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () => takeNetworkLock(options.networkLock ?? path.join(os.tmpdir(), "boxlite-hvf-network.sock")),
            catch: (e) => new BootError(`box ${spec.boxId} cannot start: ${message(e)}`, "")
          }),
          (lock) => Effect.sync(lock.release)
        )
      }
      // vfkit truncates the log it is given: the previous boot's stays beside it (at most two boots on disk).
      yield* Effect.try({
        try: () => fs.existsSync(consoleLog) && fs.renameSync(consoleLog, `${consoleLog}.1`),
        catch: (e) => new BootError(`box ${spec.boxId} cannot start: ${message(e)}`, "")
      })
      const args = vfkitArgs(spec, boot, paths, consoleLog)
      const launched = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => launch({ vfkit: binary, args, paths, consoleLog, bootTimeoutMs: options.bootTimeoutMs ?? 10_000 }),
          catch: (e) => e instanceof BootError ? e : new BootError(`box ${spec.boxId} cannot start: ${message(e)}`, "")
        }),
        (launched) => Effect.promise(launched.stop)
      )
      return launched.vm
    })

  return Hypervisor.of({
    name: "hvf",
    capabilities: CAPABILITIES,
    guestNetwork: GUEST_NETWORK,
    info: Effect.map(host, () => ({ driver: "hvf", accelerator: "hvf", reason: "Hypervisor.framework through vfkit (Virtualization.framework)", transport: "vsock", confinement: CONFINEMENT })),
    start
  })
}

/** The hvf Hypervisor. */
export const layer = (options?: HvfDriverOptions): Layer.Layer<Hypervisor> => Layer.succeed(Hypervisor, make(options))

/** What a supervisor loads for boxes recorded with the driver `hvf`. */
export const driver: DriverPlugin = { name: "hvf", make: () => make() }

/**
 * The per-box supervisor: a process of its own that boots the box's VM, holds the agent
 * channel and serves it to any number of clients on a unix socket, and stops the VM when a
 * client asks, when the VM ends by itself, or, for a box that is not detached, when the
 * process that launched it dies (even by SIGKILL: its end of our stdin pipe closes).
 *
 * Runs in the supervisor process (one per running box).
 *
 * Launch protocol (Protocol.ts, one Schema for both ends): argv = the home directory and the
 * runtime's driver. The process loads that driver and probes it, then waits for one
 * SupervisorCommand line on stdin naming the box, its driver (another one is loaded then) and
 * the guest to boot. So a runtime can keep a spare supervisor loaded ahead of the next start
 * (Node takes ~0.3 s to load one). Stdin then stays open while the launcher lives (a
 * non-detached box stops when it closes); a stdin that closes before a command ends an unused
 * spare. The supervisor writes one LaunchReport line on fd 3 once the box runs or failed (the
 * error with its tag and fields), then closes it. It logs to the box's `supervisor.log`.
 * A spare touches nothing of the home before its command: it never re-creates a home that was
 * deleted after its runtime closed (it opens the state database only if it exists).
 */
import type { ControlDone, ControlRequest, GuestConfig } from "@boxlite/agent-protocol"
import { DiskStore, layer as diskStoreLayer } from "@boxlite/storage"
import { Cause, Deferred, Effect, Exit, Layer, Runtime, Scope } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { randomBytes } from "node:crypto"
import { BootError, BoxStateError, type HypervisorUnavailable, InvalidOptions, SnapshotError, TimeoutError } from "../Errors.js"
import { type DriverPlugin, Hypervisor, loadDriver, removeRunDirs, RotatingLog, type SavedState, type Vm, type VmExit, type VmVolume } from "@boxlite/driver"
import { AgentMux } from "./AgentMux.js"
import { decodeCommand, encodeReport, fromWire, type LaunchReport, type SupervisorCommand, toWire, type WireError } from "./Protocol.js"
import { boxDirOf, removeBox, rootDiskOf, rootfsDirOf, supervisorLogOf, supervisorSocketOf, suspendStateOf } from "../internal/BoxFiles.js"
import { claimHostPorts } from "./HostPorts.js"
import { restrictFiles } from "../internal/PrivateHome.js"
import { selfRef } from "../internal/Proc.js"
import { openVolumeSource } from "../internal/VolumeSource.js"
import * as Logging from "../Logging.js"
import { unsavable } from "../Snapshots.js"
import { LOG_MAX_BYTES, type Volume } from "../Options.js"
import { type BoxChange, type BoxRecord, layerSqlite, StateStore } from "../StateStore.js"

export interface SupervisorArgs extends SupervisorCommand {
  readonly homeDir: string
}

/**
 * Reads the command line from stdin; `launcherGone` resolves when stdin closes afterwards.
 * Undefined when stdin closes first (an unused spare). A line that is not a SupervisorCommand
 * fails: the launcher gets a BootError saying so.
 */
const readCommand = Effect.callback<{ command: SupervisorCommand; launcherGone: Promise<void> } | undefined, BootError>((resume) => {
  let text = ""
  /** A line was read (a command, or not one): what stdin does next only tells the launcher's end. */
  let read = false
  let markGone!: () => void
  const launcherGone = new Promise<void>((r) => (markGone = r))
  const ended = () => (read ? markGone() : resume(Effect.succeed(undefined)))
  process.stdin.on("data", (chunk: Buffer) => {
    if (read) return
    text += chunk.toString()
    const eol = text.indexOf("\n")
    if (eol < 0) return
    read = true
    const decoded = decodeCommand(text.slice(0, eol))
    resume(Exit.isSuccess(decoded)
      ? Effect.succeed({ command: decoded.value, launcherGone })
      : Effect.fail(new BootError(`the supervisor received no valid command: ${String(decoded.cause)}`, "")))
  })
  process.stdin.on("end", ended)
  process.stdin.on("error", ended)
})

const READY_FD = 3
const STOP_GRACE_MS = 10_000

/** Writes the launch report on fd 3 and closes it; once. */
const report = (message: LaunchReport): void => {
  try {
    fs.writeSync(READY_FD, encodeReport(message))
    fs.closeSync(READY_FD)
  } catch {
    // The launcher is gone, or the report was written; the record says what happened.
  }
}

/** A boot failure that is none of the supervisor's typed errors (a bug): a BootError saying what it was. */
const bootFailure = (boxId: string) => (message: string): WireError => ({ _tag: "BootError", problem: `box ${boxId} failed to start: ${message}`, consoleTail: "" })

/** How a VM that nobody asked to stop ended: a failure, whatever its exit code. */
const unexpectedExit = (exit: VmExit): string =>
  `the VM exited without a stop request (${exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`})`

/**
 * A volume as the VM sees it: a virtiofs share of a directory; for a single file, a share
 * holding only that file (the driver's doing), bind-mounted onto its path by the guest agent.
 * Its source is opened here, without following symlinks, and must still be what the box was
 * created with (a guest writing in another volume may have replaced it): else BoxStateError
 * and the box does not start. The descriptor lives as long as the scope.
 */
const shareOf = (volume: Volume, index: number) => {
  const tag = `v${index}`
  const field = `volumes[${index}].hostPath`
  const open = Effect.try({
    try: () => {
      // Boxes created before sources were recorded: their path would be followed again.
      if (!volume.source) throw new Error("no source was recorded when the box was created")
      return openVolumeSource(volume.source)
    },
    catch: (e) => new BoxStateError(`${field} (${volume.hostPath}) cannot be shared: ${(e as Error).message}; remove the box and create it again to share what is there now`)
  })
  return Effect.map(Effect.acquireRelease(open, (fd) => Effect.sync(() => fs.closeSync(fd))), (fd) => {
    const file = volume.source.kind === "file" ? path.basename(volume.source.path) : undefined
    const share: VmVolume = { tag, hostPath: volume.source.path, fd, readOnly: volume.readOnly, ...(file ? { file } : {}) }
    const mount: GuestConfig["mounts"][number] = { tag, path: volume.guestPath, readOnly: volume.readOnly, ...(file ? { file } : {}) }
    return { volume: share, mount }
  })
}

type StopReason = "requested" | "launcher exited" | "signal" | "vm exited" | "suspended"

interface Running {
  readonly vm: Vm
  readonly mux: AgentMux
  readonly server: net.Server
  readonly socketPath: string
}

const listen = (server: net.Server, socketPath: string): Promise<void> =>
  new Promise((resolve, reject) => {
    fs.rmSync(socketPath, { force: true })
    server.once("error", reject)
    server.listen(socketPath, () => {
      fs.chmodSync(socketPath, 0o600)
      resolve()
    })
  })

/** Boots the VM, configures the guest and opens the socket; the VM lives in `scope`. */
const boot = (record: BoxRecord, args: SupervisorArgs, scope: Scope.Scope, stop: Deferred.Deferred<StopReason>) =>
  Effect.gen(function*() {
    const hypervisor = yield* Hypervisor
    const disks = yield* DiskStore
    const store = yield* StateStore
    const options = record.options
    const dir = boxDirOf(args.homeDir, record.id)
    const diskPath = rootDiskOf(dir, record.diskFormat)
    // Saved state goes with the disk it was saved with: that disk is kept.
    let restore = record.restore
    if (record.booted && options.diskSizeGb === undefined && !restore) {
      yield* Effect.logDebug("recreating the ephemeral disk")
      const layer = record.layers.at(-1)
      const recreate = record.diskFormat === "raw"
        ? disks.createRawDisk(record.base, diskPath)
        : layer
        ? disks.createLayeredDisk(layer, diskPath)
        : disks.createBoxDisk(record.base, diskPath)
      yield* recreate
    }
    const files = args.guest
    const ports = yield* Effect.tryPromise({
      try: () => claimHostPorts(options.ports),
      catch: (e) => new InvalidOptions("ports", (e as Error).message)
    })
    const shares = yield* Effect.forEach(options.volumes, shareOf).pipe(Scope.provide(scope))
    const spec = {
      boxId: record.id,
      dir,
      kernel: files.kernel,
      initrd: files.initrd,
      cmdline: files.cmdline,
      rootDisk: diskPath,
      rootDiskFormat: record.diskFormat,
      // A raw disk is a whole copy: nothing under it.
      ...(record.base && record.diskFormat === "qcow2" ? { rootDiskBase: record.base } : {}),
      rootDiskLayers: record.layers,
      cpus: options.cpus,
      memoryMib: options.memoryMib,
      network: options.network === "none" ? undefined : { allowHostLoopback: options.allowHostLoopback, ports, ...(options.egress ? { egress: options.egress } : {}) },
      volumes: shares.map((s) => s.volume),
      // Boxes recorded before the option existed get the default.
      consoleLogMaxBytes: options.logMaxBytes ?? LOG_MAX_BYTES
    }
    const startVm = (state: SavedState | undefined, within: Scope.Scope) =>
      hypervisor.start({ ...spec, ...(state ? { restore: state } : {}) }).pipe(
        Scope.provide(within),
        Logging.timed(state ? "VMM started, state restored" : "VMM started")
      )
    const vm = restore && options.warm
      ? yield* Effect.gen(function*() {
        // A warm template that no longer restores (QEMU or the guest changed since it was saved) is
        // set aside, so that the next warm create makes a new one; this box boots from its disk.
        const attempt = yield* Scope.fork(scope)
        return yield* startVm(restore, attempt).pipe(
          Effect.tapError(() => Scope.close(attempt, Exit.void)),
          Effect.catchTag("SnapshotError", (e) =>
            Effect.gen(function*() {
              yield* Effect.logWarning("the warm template cannot be restored: booting instead").pipe(Effect.annotateLogs({ reason: e.message }))
              if (record.snapshot) yield* store.renameSnapshot(record.snapshot, undefined)
              restore = undefined
              return yield* startVm(undefined, scope)
            }))
        )
      })
      : yield* startVm(restore, scope)
    yield* Effect.logDebug("VMM started").pipe(Effect.annotateLogs({ pid: vm.pid }))
    // The box directory's files (a recreated ephemeral disk among them): the owner's only, like all of the home.
    yield* restrictFiles(dir)
    // A VM that booted but never became usable: its console tail says why.
    const abandon = (problem: string) =>
      Effect.flatMap(Effect.promise(() => vm.consoleTail(4096)), (tail) => Effect.fail(new BootError(`box ${record.id} ${problem}`, tail)))
    const onShutdown = () => Deferred.doneUnsafe(stop, Exit.succeed("requested"))
    // A restored guest has a new host: its old streams are detached, its clock and RNG renewed.
    const thaw = restore ? { timeMs: Date.now(), entropy: randomBytes(64).toString("base64"), fresh: true } : undefined
    const mux = yield* Effect.tryPromise({
      try: () => Promise.race([
        AgentMux.open(vm.agent, onShutdown, thaw),
        vm.exited.then((exit) => Promise.reject(new Error(`the VM exited during boot (${exit.signal ?? `code ${exit.code}`})`)))
      ]),
      catch: (e) => e as Error
    }).pipe(
      Effect.timeoutOrElse({
        duration: options.readyTimeoutMs,
        orElse: () => Effect.fail(new TimeoutError(`the guest agent did not answer within ${options.readyTimeoutMs} ms (option readyTimeoutMs)`, options.readyTimeoutMs))
      }),
      Effect.catch((e) => abandon(`failed to boot: ${e.message}`)),
      Logging.timed(restore ? "agent thawed and greeted" : "agent greeted")
    )
    const guestConfig: GuestConfig = {
      ...(options.network === "none" ? {} : { network: { ...hypervisor.guestNetwork, dns: [hypervisor.guestNetwork.dns] } }),
      mounts: shares.map((s) => s.mount)
    }
    // A guest that answered HELLO but never answers CONFIGURE must not leave the box "starting".
    // A restored one was configured before it was saved.
    if (!restore) {
      yield* Effect.tryPromise({ try: () => mux.configure(guestConfig), catch: (e) => e as Error }).pipe(
        Effect.timeoutOrElse({
          duration: options.readyTimeoutMs,
          orElse: () => Effect.fail(new TimeoutError(`the guest agent did not answer CONFIGURE within ${options.readyTimeoutMs} ms (option readyTimeoutMs)`, options.readyTimeoutMs))
        }),
        Effect.catch((e) => abandon(`could not be configured: ${e.message}`))
      )
    }
    const socketPath = supervisorSocketOf(args.homeDir, record.id)
    const server = net.createServer((socket) => mux.serve(socket))
    yield* Effect.tryPromise({
      try: () => listen(server, socketPath),
      catch: (e) => new BootError(`box ${record.id}: cannot listen on ${socketPath}: ${(e as Error).message}`, "")
    })
    void vm.exited.then(() => Deferred.doneUnsafe(stop, Exit.succeed("vm exited")))
    yield* store.update(record.id, { status: "running", pid: vm.pid, ports, booted: true, restore: undefined })
    // A suspended box's state is used up: the disk moves on from here. (A clone's is its snapshot's.)
    if (restore?.file === suspendStateOf(args.homeDir, record.id)) fs.rmSync(restore.file, { force: true })
    const running: Running = { vm, mux, server, socketPath }
    // One operation at a time: two clients' snapshot and suspend must not interleave their FREEZE and THAW.
    let previous: Promise<unknown> = Promise.resolve()
    mux.onControl = (request) => {
      const next = previous.then(() => controlBox(running, record, store, args, stop, diskPath, request))
      previous = next.catch(() => undefined)
      return next
    }
    return running
  })

const FREEZE_TIMEOUT_MS = 30_000

/** A fresh clock for a guest that was paused or saved: its clock stood still meanwhile. */
const thawNow = () => ({ timeMs: Date.now() })

/**
 * Saves the running VM at a frame boundary: the agent is frozen, the vCPUs stopped, memory and
 * devices written to `stateFile`; then `whileStopped` (the disk is flushed and quiet). The VM is
 * left stopped and frozen: the caller resumes it or ends it.
 */
const saveVm = async (running: Running, stateFile: string, whileStopped: () => Promise<void> = async () => undefined) => {
  const control = running.vm.control!
  if (running.mux.paused) await control.resume()
  // A guest that never answers FREEZE (a hostile one, a wedged agent) must not hold the caller.
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    running.mux.freeze(),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new BoxStateError(`the guest agent did not answer FREEZE within ${FREEZE_TIMEOUT_MS} ms: the box was not saved`)), FREEZE_TIMEOUT_MS)
    })
  ]).catch((e: unknown) => {
    // Ends the FREEZE if the agent answers after all; frames held for it go after the THAW.
    void running.mux.thaw(thawNow()).catch(() => undefined)
    throw e
  }).finally(() => clearTimeout(timer))
  try {
    await control.pause()
    const state = await control.saveState(stateFile)
    await whileStopped()
    return state
  } catch (e) {
    await goOn(running)
    throw e
  }
}

/** After saveVm: the guest runs and speaks again (and is paused again if it was). */
const goOn = async (running: Running) => {
  await running.vm.control!.resume()
  await running.mux.thaw(thawNow())
  if (running.mux.paused) await running.vm.control!.pause()
}

/** A client's CONTROL: pause, resume, snapshot into a directory, suspend into the box directory. */
const controlBox = async (
  running: Running,
  record: BoxRecord,
  store: StateStore["Service"],
  args: SupervisorArgs,
  stop: Deferred.Deferred<StopReason>,
  diskPath: string,
  request: ControlRequest
): Promise<ControlDone["result"]> => {
  const control = running.vm.control
  if (!control) throw new SnapshotError("unsupported", "this hypervisor driver cannot pause or save VMs")
  const update = (change: BoxChange) => Effect.runPromise(store.update(record.id, change))
  const savable = () => {
    const refusal = unsavable(record)
    if (refusal) throw refusal
  }
  switch (request.op) {
    case "pause":
      if (running.mux.paused) return undefined
      await control.pause()
      running.mux.paused = true
      await update({ status: "paused" })
      return undefined
    case "resume":
      if (!running.mux.paused) return undefined
      await control.resume()
      running.mux.paused = false
      await running.mux.thaw(thawNow())
      await update({ status: "running" })
      return undefined
    case "snapshot": {
      savable()
      if (!request.dir) throw new BoxStateError("snapshot needs a directory")
      const snapshotDisk = path.join(request.dir, "disk.qcow2")
      const state = await saveVm(running, path.join(request.dir, "memory.state"), () =>
        // The VM is stopped and its disk flushed: the copy is the disk as the memory knows it.
        fs.promises.copyFile(diskPath, snapshotDisk, fs.constants.COPYFILE_FICLONE))
      await goOn(running)
      const diskBytes = fs.statSync(snapshotDisk).blocks * 512
      return { stateBytes: state.bytes, diskBytes, stateSha256: state.sha256, signature: state.signature }
    }
    case "suspend": {
      savable()
      const file = suspendStateOf(args.homeDir, record.id)
      fs.rmSync(file, { force: true })
      const state = await saveVm(running, file)
      // Recorded before the answer: a client that sees the connection close first finds it.
      await update({ status: "suspended", restore: state })
      setImmediate(() => Deferred.doneUnsafe(stop, Exit.succeed("suspended")))
      return undefined
    }
  }
}

/** Graceful: the guest syncs and powers off; forced after STOP_GRACE_MS. A suspended VM is saved: it just ends. */
const halt = (running: Running, reason: StopReason) =>
  Effect.gen(function*() {
    if (reason === "suspended") {
      running.vm.kill()
      yield* Effect.promise(() => running.vm.exited)
    } else if (reason !== "vm exited") {
      // A paused guest cannot power off.
      if (running.mux.paused) yield* Effect.promise(() => running.vm.control!.resume().catch(() => undefined))
      running.mux.shutdown()
      const exited = yield* Effect.promise(() => running.vm.exited).pipe(
        Effect.timeoutOrElse({ duration: STOP_GRACE_MS, orElse: () => Effect.succeed(undefined) })
      )
      if (exited === undefined) {
        yield* Effect.logWarning(`the guest did not power off within ${STOP_GRACE_MS} ms; killing the VMM`)
        running.vm.kill()
      }
    }
    running.mux.close(new Error("the box stopped"))
    running.server.close()
    fs.rmSync(running.socketPath, { force: true })
  })

/**
 * The whole life of one supervisor; resolves when the box has stopped (and maybe been
 * removed). `launcherGone` (for an owned box) resolves when the launching process has ended.
 */
export const runSupervisor = (args: SupervisorArgs, launcherGone?: Promise<void>) =>
  Effect.gen(function*() {
    const store = yield* StateStore
    const self = selfRef()
    const stop = yield* Deferred.make<StopReason>()
    const onSignal = () => Deferred.doneUnsafe(stop, Exit.succeed("signal"))
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, onSignal)
    if (args.owned) void launcherGone?.then(() => Deferred.doneUnsafe(stop, Exit.succeed("launcher exited")))

    const record = yield* store.find(args.boxId)
    if (!record) {
      report({ ok: false, error: { _tag: "BoxNotFound", idOrName: args.boxId } })
      return
    }
    const tookOver = yield* store.updateIfSupervisor(record.id, args.launcher, { supervisor: self })
    if (!tookOver) {
      report({ ok: false, error: { _tag: "BoxStateError", message: `box ${record.id} is being started by another process` } })
      return
    }
    const scope = yield* Scope.make()
    const started = yield* boot(record, args, scope, stop).pipe(Effect.exit)
    if (Exit.isFailure(started)) {
      yield* Scope.close(scope, Exit.void)
      const error = started.cause.reasons.map((r) => ("error" in r ? r.error : undefined)).find((e) => e !== undefined)
      const wire = toWire(error ?? started.cause, bootFailure(record.id))
      const message = fromWire(wire).message
      yield* Effect.logError("boot failed").pipe(Effect.annotateLogs({ error: message }))
      removeRunDirs(record.id)
      yield* store.updateIfSupervisor(record.id, self, { status: "failed", reason: message, pid: undefined, supervisor: undefined })
      report({ ok: false, error: wire })
      return
    }
    const running = started.value
    report({ ok: true })
    yield* Effect.logInfo("box running").pipe(Effect.annotateLogs({ vmmPid: running.vm.pid, agent: running.mux.agentVersion }))

    const reason = yield* Deferred.await(stop)
    // A VM that ended without a request crashed (or the guest powered it off): the box is
    // "failed" with why, written already with "stopping" so clients losing their connection
    // can say so; its next use is an explicit start, and autoRemove does not erase the news.
    const failure = reason === "vm exited" ? unexpectedExit(yield* Effect.promise(() => running.vm.exited)) : undefined
    yield* Effect.logInfo("stopping").pipe(Effect.annotateLogs({ reason, ...(failure ? { failure } : {}) }))
    // A suspended box says so already (with its state): it is not stopping.
    if (reason !== "suspended") yield* store.update(record.id, { status: "stopping", ...(failure ? { reason: failure } : {}) })
    yield* halt(running, reason)
    yield* Scope.close(scope, Exit.void)
    removeRunDirs(record.id)
    yield* store.update(record.id, { status: reason === "suspended" ? "suspended" : failure ? "failed" : "stopped", pid: undefined, supervisor: undefined })
    if (reason === "suspended") {
      yield* Effect.logInfo("suspended")
    } else if (failure) {
      yield* Effect.logError("box failed").pipe(Effect.annotateLogs({ reason: failure }))
    } else if (record.options.autoRemove) {
      yield* removeBox(args.homeDir, store, record.id)
      yield* Effect.logInfo("removed (autoRemove)")
    }
    yield* Effect.logInfo("stopped")
  }).pipe(Effect.annotateLogs({ box: args.boxId }))

/** Imports a driver's module: a bundle answers for the drivers it holds. */
export type DriverImporter = (specifier: string) => Promise<unknown>

/**
 * The body of a supervisor module: `argv` = the home directory and the runtime's driver (loaded
 * and probed while the command is awaited). Runs the box on its recorded driver, then exits.
 */
export const runSupervisorMain = (argv: ReadonlyArray<string>, importer?: DriverImporter): void => {
  const [homeDir, preferredDriver] = argv
  if (!homeDir || !preferredDriver) {
    process.stderr.write("usage: supervisor <home directory> <driver> (the command comes on stdin)\n")
    process.exit(2)
  }
  let logFile: RotatingLog.RotatingLog | undefined
  const log = (line: string) => {
    try {
      logFile?.write(`${line}\n`)
    } catch {
      // The box directory is gone (removed under us): nowhere to log, and nothing to recreate.
    }
  }
  process.on("uncaughtException", (e) => {
    log(`supervisor crashed: ${e.stack ?? e.message}`)
    process.exit(1)
  })
  const load = (name: string) => Effect.tryPromise({ try: () => loadDriver(name, importer), catch: (e) => e as HypervisorUnavailable })
  const program = Effect.gen(function*() {
    // Load and probe the likely driver while waiting: the accelerator is cached for the boot.
    const preloaded = yield* load(preferredDriver).pipe(
      Effect.map((plugin) => ({ plugin, hypervisor: plugin.make() })),
      Effect.tap(({ hypervisor }) => Effect.ignore(hypervisor.info)),
      Effect.option
    )
    const received = yield* readCommand
    if (!received) return
    const { command } = received
    try {
      logFile = RotatingLog.make(supervisorLogOf(homeDir, command.boxId), command.logMaxBytes ?? LOG_MAX_BYTES)
    } catch {
      // No box directory (removed meanwhile): the start fails below, with nothing to log to.
    }
    // What `ps` shows: which box this process runs.
    process.title = `boxlite-supervisor ${command.boxId}`
    const hypervisor = preloaded._tag === "Some" && preloaded.value.plugin.name === command.driver
      ? preloaded.value.hypervisor
      : (yield* load(command.driver).pipe(Effect.map((plugin: DriverPlugin) => plugin.make())))
    // Only now the home: a spare whose runtime closed (and whose home was deleted) never opens it.
    const state = Layer.mergeAll(
      layerSqlite(homeDir, { create: false }),
      diskStoreLayer({ rootfsDir: rootfsDirOf(homeDir) }),
      Layer.succeed(Hypervisor, hypervisor)
    )
    yield* runSupervisor({ homeDir, ...command }, received.launcherGone).pipe(Effect.provide(state))
  }).pipe(
    // Once written, the report cannot be changed: this one only reaches a launcher still waiting.
    Effect.tapError((e) => Effect.sync(() => report({ ok: false, error: toWire(e, (message) => ({ _tag: "BootError", problem: message, consoleTail: "" })) }))),
    Effect.tapCause((cause) => Effect.sync(() => log(`supervisor failed: ${Cause.pretty(cause)}`))),
    Effect.provide(Logging.layerFromEnv(process.env, log))
  )
  runMain(program, { disableErrorReporting: true })
}

/**
 * NodeRuntime.runMain without its signal handlers: the supervisor's SIGTERM, SIGINT and SIGHUP
 * are stop requests (runSupervisor), which power the guest off and record the box's status,
 * where an interrupted main fiber would kill the VM. Exits with the program's exit code.
 */
const runMain = Runtime.makeRunMain(({ fiber, teardown }) => fiber.addObserver((exit) => teardown(exit, (code) => process.exit(code))))

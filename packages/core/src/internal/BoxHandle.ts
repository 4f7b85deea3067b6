/**
 * A client's handle on a box, in any process: it reads the box's record, launches the box's
 * supervisor when the box is not running, and talks to the supervisor over its socket for
 * execs, pings, metrics and stop. Several handles (in one process or many) share one box.
 */
import { type CopyRequest, type ExecRequest, FrameType, MAX_PAYLOAD } from "@boxlite/agent-protocol"
import { Effect, Exit, Schedule, Schema, Semaphore } from "effect"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import type { ControlRequest } from "@boxlite/agent-protocol"
import { ulid } from "ulid"
import type { Box, BoxInfo, BoxMetrics, CopyFailure, StartError } from "../Box.js"
import { BootError, type BoxliteError, BoxNotFound, BoxStateError, CopyError, ExecError, InvalidOptions, PathNotFound, SnapshotError } from "../Errors.js"
import { ExecutionImpl } from "../Execution.js"
import { type GuestFiles, type HypervisorInfo, type HypervisorUnavailable, removeRunDirs } from "@boxlite/driver"
import { timed } from "../Logging.js"
import {
  COPY_OUT_MAX_BYTES, type CopyOutOptions, type ExecOptions, mergeEnv, READ_FILE_MAX_BYTES, resolveCopyOutOptions, resolveExecOptions,
  resolveSnapshotOptions, resolveWriteFileOptions, type SnapshotOptions, type WriteFileOptions
} from "../Options.js"
import { ACTIVE_STATUSES, type BoxRecord, StateStore } from "../StateStore.js"
import { decodeReport, encodeCommand, fromWire, type LaunchReport, SnapshotReason, type SupervisorCommand } from "../supervisor/Protocol.js"
import { AgentConnection, type CopyChannel, CopyRefused, SpawnFailed } from "./AgentConnection.js"
import { type SnapshotInfo, snapshotInfoOf, unsavable } from "../Snapshots.js"
import { removeBox, snapshotDirOf, supervisorLogOf, supervisorSocketOf, suspendStateOf } from "./BoxFiles.js"
import { orWarn, removeTree } from "./Fs.js"
import { destinationOf, extractFrom, packInto, readSingleFile, singleFileArchive } from "./FileTransfer.js"
import { cpuTimeMs, isAlive, type ProcessRef, sameProcess, selfRef } from "./Proc.js"
import { type SupervisorPool, type SupervisorProcess } from "../supervisor/SupervisorPool.js"

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
const POLL_MS = 50
/** How long a stop waits for the supervisor to finish (its own grace period is 10 s). */
const STOP_WAIT_MS = 30_000

export interface BoxHandleDeps {
  readonly homeDir: string
  readonly store: StateStore["Service"]
  /** Where supervisor processes come from. */
  readonly supervisors: SupervisorPool
  /** The runtime's hypervisor, for box info (undefined when none can run here). */
  readonly hypervisorInfo: Effect.Effect<HypervisorInfo | undefined>
  /** The guest a supervisor boots. */
  readonly guestFiles: Effect.Effect<GuestFiles, HypervisorUnavailable>
  /** Called once the box is gone (removed), so the runtime forgets the handle. */
  readonly onRemoved: (id: string) => void
}

/**
 * Runs `step` every POLL_MS until it gives a value, for at most `ms` (a step under way is not cut
 * off: it may be launching a supervisor); undefined when the time ran out first.
 */
const pollFor = <A, E, R>(ms: number, step: Effect.Effect<A | undefined, E, R>): Effect.Effect<A | undefined, E, R> =>
  Effect.repeat(step, { schedule: Schedule.spaced(POLL_MS).pipe(Schedule.upTo({ duration: ms })), until: (a) => a !== undefined })

const isSnapshotReason = Schema.is(SnapshotReason)

/** The agent's words for a program that does not exist (exit code 127, as shells and Docker); other spawn failures are 126. */
const NOT_FOUND = /not found in PATH|no such file or directory/i

/**
 * The record as it truly is: an active status whose supervisor has died (SIGKILL, a crash, a
 * host reboot) is stale. A box that was starting or running lost its VM and whatever ran in it:
 * it becomes "failed", with the reason, and its next use must be an explicit start. One that was
 * stopping was on its way to "stopped" anyway. The VMM driver's run folders, which the dead
 * supervisor did not get to remove, go first: nobody can claim the box before the update.
 */
export const reconcile = (store: StateStore["Service"], record: BoxRecord): Effect.Effect<BoxRecord> =>
  Effect.gen(function*() {
    if (!ACTIVE_STATUSES.includes(record.status) || isAlive(record.supervisor)) return record
    const who = record.supervisor ? `its supervisor (pid ${record.supervisor.pid})` : "the process starting it"
    const change = record.status === "stopping"
      ? { status: "stopped" as const, pid: undefined, supervisor: undefined }
      : { status: "failed" as const, reason: `${who} died while the box was ${record.status}`, pid: undefined, supervisor: undefined }
    removeRunDirs(record.id)
    yield* store.updateIfSupervisor(record.id, record.supervisor, change)
    yield* Effect.logInfo("stale box record reconciled").pipe(Effect.annotateLogs({ box: record.id, was: record.status, now: change.status }))
    return { ...record, ...change }
  })

/**
 * The EXEC request travels in one frame: past MAX_PAYLOAD it could not be sent at all. Checked
 * before anything is sent (or booted), naming the field that takes the most room.
 */
const checkRequestSize = (request: ExecRequest): Effect.Effect<void, InvalidOptions> => {
  const total = Buffer.byteLength(JSON.stringify(request))
  if (total <= MAX_PAYLOAD) return Effect.void
  const argv = Buffer.byteLength(JSON.stringify(request.argv))
  const env = Buffer.byteLength(JSON.stringify(request.env))
  const [field, what] = argv >= env ? ["argv", "the command and its arguments"] : ["exec.env", "the environment (image, box and exec env merged)"]
  return Effect.fail(new InvalidOptions(field, `${what} take ${Math.max(argv, env)} bytes encoded; a command's argv (${argv} bytes), env (${env} bytes), working directory and user must fit in ${MAX_PAYLOAD} bytes`))
}

/** A guest path for a copy: absolute, normalized (the agent takes clean paths only), not "/". */
const guestPathOf = (field: string, guestPath: string): Effect.Effect<string, InvalidOptions> => {
  if (typeof guestPath !== "string" || !guestPath.startsWith("/")) return Effect.fail(new InvalidOptions(field, `must be an absolute guest path (got ${JSON.stringify(guestPath)})`))
  const clean = path.posix.normalize(guestPath).replace(/(.)\/+$/, "$1")
  if (clean === "/") return Effect.fail(new InvalidOptions(field, "cannot be / (a copy is named after its last component)"))
  if (clean.includes("\0")) return Effect.fail(new InvalidOptions(field, "must not contain NUL"))
  return Effect.succeed(clean)
}

const hostPathOf = (field: string, hostPath: string): Effect.Effect<string, InvalidOptions> =>
  typeof hostPath === "string" && hostPath.length > 0 && !hostPath.includes("\0")
    ? Effect.succeed(path.resolve(hostPath))
    : Effect.fail(new InvalidOptions(field, `must be a host path (got ${JSON.stringify(hostPath)})`))

/**
 * A copy's failure as the user sees it. The guest's `not_found` names `missing`; `bad_message`
 * comes from an agent older than copies, which must be said plainly (it is not the user's path).
 */
/** What an exec or copy on a paused box is (the supervisor refuses them with `paused`). */
const isPaused = (boxId: string) => new BoxStateError(`box ${boxId} is paused: resume it first`)

const copyFailure = (e: unknown, boxId: string, guestPath: string, missing: string, agentVersion: string): BoxliteError => {
  if (e instanceof CopyError || e instanceof PathNotFound) return e
  if (e instanceof CopyRefused) {
    if (e.code === "paused") return isPaused(boxId)
    if (e.code === "not_found") return new PathNotFound(missing, "guest", `guest path ${e.message}`)
    if (e.code === "bad_message") return new CopyError(guestPath, `the box's guest agent (${agentVersion || "unknown version"}) does not support copying files (${e.message}); rebuild the guest (npm run build:guest)`)
    return new CopyError(guestPath, `${guestPath}: ${e.message}`)
  }
  return new CopyError(guestPath, `copy of ${guestPath}: ${(e as Error).message}`)
}

export const infoOf = (record: BoxRecord, hypervisor: HypervisorInfo | undefined): BoxInfo => ({
  id: record.id,
  name: record.name,
  status: record.status,
  image: record.image,
  autoRemove: record.options.autoRemove,
  cpus: record.options.cpus,
  memoryMib: record.options.memoryMib,
  createdAt: record.createdAt,
  pid: record.pid,
  ports: record.status === "running" || record.status === "paused" ? record.ports : record.options.ports,
  reason: record.status === "failed" ? record.reason : undefined,
  driver: record.driver,
  accelerator: hypervisor?.driver === record.driver ? hypervisor.accelerator : undefined,
  transport: hypervisor?.driver === record.driver ? hypervisor.transport : undefined,
  snapshot: record.snapshot
})

/** Reads the supervisor's one-line launch report on fd 3; its exit before that is a failure. */
const awaitReport = (supervisor: SupervisorProcess, boxId: string, log: string): Promise<LaunchReport> =>
  new Promise((resolve) => {
    const { child } = supervisor
    const pipe = child.stdio[3] as net.Socket
    let text = ""
    const exited = (code: number | null, signal: string | null) => {
      const stderr = supervisor.stderr()
      resolve({ ok: false, error: { _tag: "BootError", problem: `the supervisor of box ${boxId} exited before the box ran (${signal ?? `code ${code}`}); see ${log}${stderr ? `: ${stderr}` : ""}`, consoleTail: "" } })
    }
    child.once("exit", exited)
    pipe.on("data", (chunk: Buffer) => {
      text += chunk.toString()
      const line = text.indexOf("\n")
      if (line < 0) return
      child.off("exit", exited)
      pipe.destroy()
      const report = decodeReport(text.slice(0, line))
      resolve(Exit.isSuccess(report) ? report.value : { ok: false, error: { _tag: "BootError", problem: `unreadable launch report: ${text.slice(0, line)}`, consoleTail: "" } })
    })
  })

export class BoxHandle implements Box {
  private connection: AgentConnection | undefined
  /** The supervisor this process launched (it holds the stdin that keeps a non-detached box alive). */
  private launched: ChildProcess | undefined
  private readonly lifecycle = Semaphore.makeUnsafe(1)

  constructor(private record: BoxRecord, private readonly deps: BoxHandleDeps) {}

  get id() {
    return this.record.id
  }
  get name() {
    return this.record.name
  }

  /** True when this process launched the box's supervisor and the box is not detached. */
  get ownedHere(): boolean {
    return this.launched !== undefined && this.launched.exitCode === null && !this.record.options.detach
  }

  private get current(): Effect.Effect<BoxRecord, BoxNotFound> {
    return Effect.gen({ self: this }, function*() {
      const found = yield* this.deps.store.find(this.record.id)
      if (!found) return yield* new BoxNotFound(this.record.id)
      this.record = yield* reconcile(this.deps.store, found)
      return this.record
    })
  }

  get info(): Effect.Effect<BoxInfo, BoxNotFound> {
    return Effect.zipWith(this.current, this.deps.hypervisorInfo, infoOf)
  }

  get start(): Effect.Effect<void, StartError> {
    return Effect.asVoid(this.lifecycle.withPermit(this.connectStarting(true))).pipe(timed("start", { box: this.record.id }))
  }

  /**
   * Connects to the running box, launching its supervisor first when nobody runs it. A failed
   * box is only restarted by an explicit `start()`: an exec must not quietly boot a fresh VM
   * (and a fresh ephemeral disk) in place of the one that crashed.
   */
  private connectStarting(explicit: boolean): Effect.Effect<AgentConnection, StartError> {
    return Effect.gen({ self: this }, function*() {
      let last = this.record
      // A connection, "launch" once this process claimed the start, or undefined while another
      // process is starting or stopping the box (wait for the outcome).
      const attempt = Effect.gen({ self: this }, function*() {
        const open = this.openConnection
        if (open) return open
        const record = last = yield* this.current.pipe(Effect.mapError((e) => new BoxStateError(e.message)))
        if (record.status === "paused" && !explicit) return yield* isPaused(record.id)
        if (record.status === "running" || record.status === "paused") return yield* this.connect
        if (record.status === "failed" && !explicit) {
          return yield* new BoxStateError(`box ${record.id} failed (${record.reason ?? "unknown reason"}): restart it explicitly with start()`)
        }
        if (!ACTIVE_STATUSES.includes(record.status) && (yield* this.deps.store.claimStart(record.id, selfRef()))) return "launch" as const
        return undefined
      })
      const outcome = yield* pollFor(this.record.options.readyTimeoutMs + STOP_WAIT_MS, attempt)
      if (outcome === "launch") return yield* this.launch
      return outcome ?? (yield* new BoxStateError(`box ${last.id} stayed "${last.status}" too long`))
    })
  }

  /** This handle's connection to the supervisor, if it is still open. */
  private get openConnection(): AgentConnection | undefined {
    return this.connection && !this.connection.isClosed ? this.connection : undefined
  }

  /** The supervisor's socket, or undefined when it is not (or no longer) listening. */
  private get connect(): Effect.Effect<AgentConnection | undefined, BoxStateError> {
    return Effect.gen({ self: this }, function*() {
      const socketPath = yield* Effect.try({
        try: () => supervisorSocketOf(this.deps.homeDir, this.record.id),
        catch: (e) => new BoxStateError((e as Error).message)
      })
      const connection = yield* Effect.promise(() =>
        new Promise<net.Socket | undefined>((resolve) => {
          const socket = net.connect(socketPath)
          socket.once("connect", () => resolve(socket))
          socket.once("error", () => resolve(undefined))
        }).then((socket) => (socket ? AgentConnection.open(socket, () => this.lossReason()).catch(() => undefined) : undefined))
      )
      this.connection = connection
      return connection
    })
  }

  /**
   * Why the supervisor's socket closed, for the commands that were running: the record says
   * whether the box was stopped, failed (its VM died: the supervisor writes the reason with
   * "stopping", before it closes the sockets) or its supervisor died (it would have).
   */
  private lossReason(): string {
    let record: BoxRecord | undefined
    try {
      record = Effect.runSync(this.deps.store.find(this.record.id))
    } catch {
      return "the connection to the box's supervisor closed"
    }
    if (!record) return "the box was removed"
    if (record.status === "running" || record.status === "paused" || record.status === "starting") {
      return `the box's supervisor${record.supervisor ? ` (pid ${record.supervisor.pid})` : ""} died: the box is failed, start() restarts it`
    }
    // A reason is only written for a failure (and cleared by the next start).
    return record.reason ? `the box failed: ${record.reason}` : "the box stopped"
  }

  private get launch(): Effect.Effect<AgentConnection, StartError> {
    return Effect.gen({ self: this }, function*() {
      const id = this.record.id
      const detached = this.record.options.detach
      const guest = yield* this.deps.guestFiles.pipe(
        Effect.tapError((e) => this.deps.store.updateIfSupervisor(id, selfRef(), { status: "failed", reason: e.message, supervisor: undefined }))
      )
      const supervisor = this.deps.supervisors.take()
      const { child } = supervisor
      const command: SupervisorCommand = {
        boxId: id, launcher: selfRef(), owned: !detached, logMaxBytes: this.record.options.logMaxBytes, driver: this.record.driver, guest
      }
      child.stdin!.write(encodeCommand(command))
      // A detached box ignores its stdin from now on; an owned one stops when it closes.
      if (detached) child.stdin!.end()
      yield* Effect.logInfo("supervisor launched").pipe(Effect.annotateLogs({ box: id, supervisorPid: child.pid, detached }))
      // Waiting for the report keeps this process alive; after it, nothing of the supervisor does.
      const report = yield* Effect.acquireUseRelease(
        Effect.sync(() => (child.stdio[3] as net.Socket).ref()),
        () => Effect.promise(() => awaitReport(supervisor, id, supervisorLogOf(this.deps.homeDir, id))),
        () => Effect.sync(() => (child.stdio[3] as net.Socket).unref())
      ).pipe(timed("boot (supervisor report)", { box: id }))
      if (!report.ok) {
        child.stdin?.destroy()
        // A supervisor that died before taking the record over leaves our claim on it: release
        // it, or the box would stay "starting" for as long as this process lives.
        const error = fromWire(report.error) as StartError
        yield* this.deps.store.updateIfSupervisor(id, command.launcher, { status: "failed", reason: error.message, supervisor: undefined })
        return yield* error
      }
      if (!detached) this.launched = child
      this.deps.supervisors.refill()
      const connection = yield* this.connect
      if (!connection) return yield* new BootError(`box ${id} started but its supervisor does not answer`, "")
      return connection
    })
  }

  exec(command: string, args: ReadonlyArray<string> = [], options?: ExecOptions) {
    return Effect.gen({ self: this }, function*() {
      const resolved = yield* resolveExecOptions(options)
      const argv = [command, ...args]
      if (command.length === 0) return yield* new ExecError("the command is empty", argv)
      const box = this.record.options
      const image = this.record.runConfig
      const env = mergeEnv([["PATH", DEFAULT_PATH]], image.env, box.env, resolved.env)
      const user = resolved.user ?? box.user ?? image.user
      const request: ExecRequest = {
        argv: argv as unknown as ExecRequest["argv"],
        env,
        cwd: resolved.workingDir ?? box.workingDir ?? image.workingDir ?? "/root",
        ...(user !== undefined ? { user } : {}),
        ...(resolved.timeoutMs !== undefined ? { timeoutMs: resolved.timeoutMs } : {}),
        ...(resolved.tty !== undefined ? { tty: resolved.tty } : {})
      }
      yield* checkRequestSize(request)
      const agent = yield* this.lifecycle.withPermit(this.connectStarting(false))
      const channel = yield* Effect.try({ try: () => agent.exec(request), catch: (e) => new ExecError(`${command}: ${(e as Error).message}`, argv) })
      yield* this.deps.store.increment("totalExecCalls")
      const pid = yield* Effect.tryPromise({
        try: () => channel.started,
        catch: (e): ExecError | BoxStateError =>
          e instanceof SpawnFailed && e.code === "paused"
            ? isPaused(this.record.id)
            : e instanceof SpawnFailed
            ? new ExecError(`cannot run ${command}: ${e.message}`, argv, NOT_FOUND.test(e.message) ? 127 : 126, `${e.message}\n`)
            : new ExecError(`${command}: ${(e as Error).message}`, argv)
      })
      return new ExecutionImpl(channel, argv, pid, resolved.timeoutMs, resolved.tty !== undefined)
    }).pipe(timed("exec started", { box: this.record.id, command }))
  }

  /** A COPY_IN or COPY_OUT on this box's connection; interrupting the effect cancels it in the guest. */
  private copy<A>(
    type: typeof FrameType.COPY_IN | typeof FrameType.COPY_OUT,
    request: CopyRequest,
    missing: string,
    use: (channel: CopyChannel) => Promise<A>
  ): Effect.Effect<A, CopyFailure> {
    return Effect.gen({ self: this }, function*() {
      const agent = yield* this.lifecycle.withPermit(this.connectStarting(false))
      return yield* Effect.tryPromise({
        try: (signal) => {
          const channel = agent.copy(type, request)
          signal.addEventListener("abort", () => channel.cancel())
          return use(channel).then(async (result) => {
            await channel.done
            return result
          })
        },
        catch: (e) => copyFailure(e, this.record.id, request.path, missing, agent.agentVersion) as CopyError | PathNotFound
      })
    })
  }

  copyIn(hostPath: string, guestPath: string): Effect.Effect<void, CopyFailure> {
    return Effect.gen({ self: this }, function*() {
      const source = yield* hostPathOf("hostPath", hostPath)
      const target = yield* guestPathOf("guestPath", guestPath)
      // Before anything boots: a missing source is the caller's mistake.
      yield* Effect.tryPromise({ try: () => fs.promises.lstat(source), catch: () => new PathNotFound(hostPath, "host") })
      yield* this.copy(FrameType.COPY_IN, { path: target }, path.posix.dirname(target), (channel) => packInto(source, channel))
    })
  }

  copyOut(guestPath: string, hostPath: string, options?: CopyOutOptions): Effect.Effect<void, CopyFailure> {
    return Effect.gen({ self: this }, function*() {
      const limits = yield* resolveCopyOutOptions(options, COPY_OUT_MAX_BYTES)
      const source = yield* guestPathOf("guestPath", guestPath)
      yield* hostPathOf("hostPath", hostPath)
      const target = yield* Effect.tryPromise({
        try: () => destinationOf(hostPath, path.posix.basename(source)),
        catch: (e) => (e instanceof PathNotFound ? e : new CopyError(source, (e as Error).message))
      })
      yield* this.copy(FrameType.COPY_OUT, { path: source }, source, (channel) => extractFrom(channel, source, target, limits))
    })
  }

  readFile(guestPath: string, options?: CopyOutOptions): Effect.Effect<Uint8Array, CopyFailure> {
    return Effect.gen({ self: this }, function*() {
      const limits = yield* resolveCopyOutOptions(options, READ_FILE_MAX_BYTES)
      const source = yield* guestPathOf("path", guestPath)
      return yield* this.copy(FrameType.COPY_OUT, { path: source, follow: true }, source, (channel) => readSingleFile(channel, source, limits))
    })
  }

  writeFile(guestPath: string, data: string | Uint8Array, options?: WriteFileOptions): Effect.Effect<void, CopyFailure> {
    return Effect.gen({ self: this }, function*() {
      const { mode } = yield* resolveWriteFileOptions(options)
      const target = yield* guestPathOf("path", guestPath)
      if (typeof data !== "string" && !(data instanceof Uint8Array)) return yield* new InvalidOptions("data", "must be a string or a Uint8Array")
      const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data
      yield* this.copy(FrameType.COPY_IN, { path: target, exact: true }, path.posix.dirname(target), async (channel) => {
        for (const part of singleFileArchive(bytes, mode)) await channel.write(part)
        channel.end()
      })
    })
  }

  get ping() {
    return Effect.flatMap(this.lifecycle.withPermit(this.connectStarting(false)), (agent) =>
      Effect.tryPromise({ try: () => agent.ping(), catch: (e) => new ExecError(`ping: ${(e as Error).message}`) }))
  }

  /** CPU time of the VMM process (host), memory and network counters of the guest kernel. */
  get metrics(): Effect.Effect<BoxMetrics, BoxNotFound | BoxStateError> {
    return Effect.gen({ self: this }, function*() {
      const record = yield* this.current
      const connection = record.status === "running" ? this.openConnection ?? (yield* this.connect) : undefined
      const cpu = record.pid === undefined ? undefined : cpuTimeMs(record.pid)
      if (!connection || cpu === undefined) return yield* new BoxStateError(`box ${record.id} is ${record.status}: metrics need a running box`)
      const report = yield* Effect.tryPromise({
        try: () => connection.metrics(),
        catch: (e) => new BoxStateError(`box ${record.id}: metrics failed: ${(e as Error).message}`)
      })
      return {
        cpuTimeMs: Math.round(cpu),
        memoryUsageBytes: report.memoryTotalBytes - report.memoryAvailableBytes,
        networkBytesSent: report.networkTxBytes,
        networkBytesReceived: report.networkRxBytes
      }
    })
  }

  /** A CONTROL on the box's supervisor; the box must be running (or paused). */
  private control(op: ControlRequest["op"], dir?: string) {
    return Effect.gen({ self: this }, function*() {
      const record = yield* this.current
      if (record.status !== "running" && record.status !== "paused") {
        return yield* new BoxStateError(`box ${record.id} is ${record.status}: ${op} needs a running box`)
      }
      const connection = this.openConnection ?? (yield* this.connect)
      if (!connection) return yield* new BoxStateError(`box ${record.id}: its supervisor does not answer`)
      const done = yield* Effect.tryPromise({
        try: () => connection.control(op, dir),
        catch: (e) => new BoxStateError(`box ${record.id}: ${op} failed: ${(e as Error).message}`)
      })
      if (done.error) {
        const { tag, message, reason } = done.error
        return yield* (tag === "SnapshotError" ? new SnapshotError(isSnapshotReason(reason) ? reason : "corrupt", message) : new BoxStateError(message))
      }
      return done
    })
  }

  get pause(): Effect.Effect<void, BoxNotFound | BoxStateError | SnapshotError> {
    return this.lifecycle.withPermit(Effect.asVoid(this.control("pause"))).pipe(timed("pause", { box: this.record.id }))
  }

  /** Runs a paused box again; a suspended one is started (it resumes where it was saved). */
  get resume(): Effect.Effect<void, BoxNotFound | BoxStateError | SnapshotError> {
    return this.lifecycle.withPermit(Effect.gen({ self: this }, function*() {
      const record = yield* this.current
      if (record.status === "suspended") {
        yield* this.connectStarting(true).pipe(
          Effect.catch((e) => (e._tag === "SnapshotError" || e._tag === "BoxStateError" ? Effect.fail(e) : Effect.fail(new BoxStateError(e.message))))
        )
        return
      }
      if (record.status === "running") return
      yield* this.control("resume")
    })).pipe(timed("resume", { box: this.record.id }))
  }

  snapshot(options?: SnapshotOptions): Effect.Effect<SnapshotInfo, BoxNotFound | BoxStateError | SnapshotError | InvalidOptions> {
    return this.lifecycle.withPermit(Effect.gen({ self: this }, function*() {
      const { name } = yield* resolveSnapshotOptions(options)
      if (name !== undefined && (yield* this.deps.store.findSnapshot(name))) return yield* new BoxStateError(`a snapshot named "${name}" already exists`)
      const record = yield* this.current
      const refusal = unsavable(record)
      if (refusal) return yield* refusal
      const id = ulid()
      const dir = snapshotDirOf(this.deps.homeDir, id)
      const removeDir = orWarn(removeTree(dir))
      yield* Effect.tryPromise({
        try: () => fs.promises.mkdir(dir, { recursive: true, mode: 0o700 }),
        catch: (e) => new BoxStateError(`cannot create ${dir}: ${(e as Error).message}`)
      })
      const done = yield* this.control("snapshot", dir).pipe(Effect.tapError(() => removeDir))
      const saved = done.result!
      const snapshot = {
        id, name, boxId: record.id, image: record.image, createdAt: new Date(), options: record.options, runConfig: record.runConfig,
        base: record.base, layers: [...record.layers, path.join(dir, "disk.qcow2")], driver: record.driver,
        state: { file: path.join(dir, "memory.state"), bytes: saved.stateBytes, sha256: saved.stateSha256, signature: saved.signature },
        sizeBytes: saved.stateBytes + saved.diskBytes
      }
      yield* this.deps.store.insertSnapshot(snapshot).pipe(Effect.tapError(() => removeDir))
      yield* Effect.logInfo("snapshot taken").pipe(Effect.annotateLogs({ box: record.id, snapshot: id, stateBytes: saved.stateBytes }))
      return snapshotInfoOf(snapshot)
    })).pipe(timed("snapshot", { box: this.record.id }))
  }

  /** Saves the box and ends its VM; resolves once the VMM and the supervisor are gone. */
  get suspend(): Effect.Effect<void, BoxNotFound | BoxStateError | SnapshotError> {
    return this.lifecycle.withPermit(Effect.gen({ self: this }, function*() {
      if ((yield* this.current).status === "suspended") return
      // The supervisor answers and then closes every connection: a close first is no failure if the record says suspended.
      yield* this.control("suspend").pipe(
        Effect.catchTag("BoxStateError", (e) => Effect.flatMap(this.current, (r) => (r.status === "suspended" ? Effect.void : Effect.fail(e))))
      )
      const ended = yield* pollFor(STOP_WAIT_MS, Effect.gen({ self: this }, function*() {
        const record = yield* this.current
        if (record.status === "suspended" && !isAlive(record.supervisor)) return true
        if (record.status !== "suspended" && record.status !== "running") return yield* new BoxStateError(`box ${record.id} became ${record.status} while suspending`)
        return undefined
      }))
      if (!ended) return yield* new BoxStateError(`box ${this.record.id}: its supervisor did not end after suspending`)
      yield* this.disconnect
      this.launched = undefined
    })).pipe(timed("suspend", { box: this.record.id }))
  }

  /** Powers the guest off; the box stays (stopped) unless `autoRemove`. */
  get stop(): Effect.Effect<void> {
    return this.lifecycle.withPermit(Effect.gen({ self: this }, function*() {
      const stopped = yield* this.halt.pipe(Effect.catchTag("BoxNotFound", () => Effect.succeed(false)))
      // A box that never ran has no supervisor to remove it.
      if (stopped && this.record.options.autoRemove) yield* this.removeFiles
    })).pipe(timed("stop", { box: this.record.id }))
  }

  /** Stops the box if needed and deletes it with its disk. */
  get remove(): Effect.Effect<void> {
    return this.lifecycle.withPermit(Effect.gen({ self: this }, function*() {
      const stillThere = yield* this.halt.pipe(Effect.catchTag("BoxNotFound", () => Effect.succeed(false)))
      if (stillThere) yield* this.removeFiles
      this.deps.onRemoved(this.record.id)
    })).pipe(timed("remove", { box: this.record.id }))
  }

  /** Drops this handle's connection; the box keeps running. */
  get disconnect(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.connection?.close(new Error("the runtime was closed"))
      this.connection = undefined
    })
  }

  /** Stops the box (any process's); true when its record is still there afterwards. */
  private get halt(): Effect.Effect<boolean, BoxNotFound> {
    return Effect.gen({ self: this }, function*() {
      // The supervisor of the run this stop is for: once it is gone and another process has started
      // the box again, that new run is not ours to stop (polls may miss the "stopped" in between).
      let stopping: ProcessRef | undefined
      // Asks the supervisor to stop until the record says it has; true once it has.
      const askToStop = (force: boolean) => Effect.gen({ self: this }, function*() {
        const record = yield* this.current
        if (!ACTIVE_STATUSES.includes(record.status)) return true
        if (stopping && !sameProcess(record.supervisor, stopping)) return true
        if (record.supervisor && !record.launching) stopping = record.supervisor
        if (record.status === "running" || record.status === "paused") {
          const connection = this.openConnection ?? (yield* this.connect.pipe(Effect.orElseSucceed(() => undefined)))
          connection?.shutdown()
        }
        // A start claim still held by its launcher names a client, not a supervisor: never killed
        // (it hands the box over or releases it, and a dead one is reconciled above).
        if (force && record.supervisor && !record.launching) yield* this.killSupervisor(record.id, record.supervisor)
        return undefined
      })
      // The supervisor does not finish in time: end it, as long as the box stays active.
      if (!(yield* pollFor(STOP_WAIT_MS, askToStop(false)))) yield* Effect.repeat(askToStop(true), { schedule: Schedule.spaced(POLL_MS), until: (done) => done === true })
      yield* this.disconnect
      this.launched?.stdin?.destroy()
      this.launched = undefined
      const after = yield* this.deps.store.find(this.record.id)
      // A stopped box boots afresh: saved state of a suspend (or a clone's unused one) is dropped.
      if (after && after.restore && (after.status === "suspended" || after.status === "failed")) {
        yield* this.deps.store.update(after.id, { status: "stopped", restore: undefined })
        yield* orWarn(removeTree(suspendStateOf(this.deps.homeDir, after.id)))
      }
      return after !== undefined
    })
  }

  /** Kills a supervisor that did not finish. The stop was asked for, so the box is "stopped" (not failed) once it is gone. */
  private killSupervisor(id: string, supervisor: NonNullable<BoxRecord["supervisor"]>): Effect.Effect<void, BoxNotFound> {
    return Effect.gen({ self: this }, function*() {
      try {
        process.kill(supervisor.pid, "SIGKILL")
      } catch {
        // Already gone.
      }
      const gone = yield* pollFor(STOP_WAIT_MS, Effect.sync(() => (isAlive(supervisor) ? undefined : true)))
      if (gone) {
        removeRunDirs(id)
        yield* this.deps.store.updateIfSupervisor(id, supervisor, { status: "stopped", pid: undefined, supervisor: undefined })
      }
    })
  }

  private get removeFiles(): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      const id = this.record.id
      yield* removeBox(this.deps.homeDir, this.deps.store, id)
      yield* Effect.logInfo("box removed").pipe(Effect.annotateLogs({ box: id }))
    })
  }
}

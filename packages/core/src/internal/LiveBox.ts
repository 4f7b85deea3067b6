/**
 * The in-process state machine of one box: boots its VM, connects to its agent, runs execs,
 * stops and removes it, and keeps the state store's record true to what happens.
 */
import type { ExecRequest, GuestConfig } from "@boxlite/agent-protocol"
import type { RunConfig } from "@boxlite/oci"
import { Effect, Exit, Scope, Semaphore } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Box, BoxInfo, StartError } from "../Box.js"
import { BootError, BoxStateError, ExecError, type StorageError } from "../Errors.js"
import { ExecutionImpl } from "../Execution.js"
import { GUEST_NETWORK, GuestArtifacts, Hypervisor, type Vm, type VmVolume } from "../Hypervisor.js"
import { mergeEnv, type ExecOptions, type Port, resolveExecOptions, type Volume } from "../Options.js"
import { type BoxRecord, type BoxStatus, StateStore } from "../StateStore.js"
import { AgentConnection, SpawnFailed } from "./AgentConnection.js"
import { claimHostPorts } from "./HostPorts.js"

export interface LiveBoxDeps {
  readonly hypervisor: Hypervisor["Service"]
  readonly guest: GuestArtifacts["Service"]
  readonly store: StateStore["Service"]
  /** Called once the box is gone (removed), so the runtime forgets it. */
  readonly onRemoved: (id: string) => void
}

/** The box's disk; an ephemeral one is recreated empty (over the image) at every start. */
export interface BoxDisk {
  readonly path: string
  readonly persistent: boolean
  readonly recreate: Effect.Effect<void, StorageError>
}

interface Running {
  readonly scope: Scope.Closeable
  readonly vm: Vm
  readonly agent: AgentConnection
  /** The forwards with the host ports actually bound (0 replaced). */
  readonly ports: ReadonlyArray<Port>
}

/**
 * A volume as the VM sees it: a virtiofs share of a directory; for a single file, a share
 * holding only that file (the driver's doing), bind-mounted onto its path by the guest agent.
 */
const shareOf = (volume: Volume, index: number): { volume: VmVolume; mount: GuestConfig["mounts"][number] } => {
  const tag = `v${index}`
  const isFile = fs.statSync(volume.hostPath).isFile()
  return {
    volume: isFile
      ? { tag, hostPath: path.dirname(volume.hostPath), file: path.basename(volume.hostPath), readOnly: volume.readOnly }
      : { tag, hostPath: volume.hostPath, readOnly: volume.readOnly },
    mount: { tag, path: volume.guestPath, readOnly: volume.readOnly, ...(isFile ? { file: path.basename(volume.hostPath) } : {}) }
  }
}

const STOP_GRACE_MS = 10_000
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

export class LiveBox implements Box {
  private status: BoxStatus
  private running: Running | undefined
  private removed = false
  private booted = false
  private readonly lifecycle = Semaphore.makeUnsafe(1)

  constructor(
    private record: BoxRecord,
    readonly dir: string,
    private readonly disk: BoxDisk,
    private readonly runConfig: RunConfig,
    private readonly deps: LiveBoxDeps
  ) {
    this.status = record.status
  }

  get id() {
    return this.record.id
  }
  get name() {
    return this.record.name
  }

  get info(): Effect.Effect<BoxInfo> {
    return Effect.sync(() => ({
      id: this.record.id,
      name: this.record.name,
      status: this.status,
      image: this.record.image,
      cpus: this.record.options.cpus,
      memoryMib: this.record.options.memoryMib,
      createdAt: this.record.createdAt,
      pid: this.running?.vm.pid,
      ports: this.running?.ports ?? this.record.options.ports
    }))
  }

  private setStatus(status: BoxStatus, pid?: number) {
    this.status = status
    return this.deps.store.update(this.record.id, { status, pid })
  }

  get start() {
    return this.lifecycle.withPermit(this.startLocked)
  }

  private get startLocked(): Effect.Effect<void, StartError> {
    return Effect.gen({ self: this }, function*() {
      if (this.removed) return yield* new BoxStateError(`box ${this.id} has been removed`)
      if (this.running && !this.running.agent.isClosed) return
      yield* this.setStatus("starting")
      if (this.booted && !this.disk.persistent) {
        yield* this.disk.recreate.pipe(Effect.tapError(() => this.setStatus("failed")))
      }
      this.booted = true
      const guest = yield* this.deps.guest.files.pipe(Effect.tapError(() => this.setStatus("failed")))
      const ports = yield* Effect.tryPromise({
        try: () => claimHostPorts(this.record.options.ports),
        catch: (e) => new BootError(`box ${this.id} cannot start: ${(e as Error).message}`, "")
      }).pipe(Effect.tapError(() => this.setStatus("failed")))
      const shares = this.record.options.volumes.map(shareOf)
      const scope = yield* Scope.make()
      const options = this.record.options
      const booted = yield* this.deps.hypervisor.start({
        boxId: this.id,
        dir: this.dir,
        kernel: guest.kernel,
        initrd: guest.initrd,
        cmdline: guest.cmdline,
        rootDisk: this.disk.path,
        cpus: options.cpus,
        memoryMib: options.memoryMib,
        network: options.network === "none" ? undefined : { allowHostLoopback: options.allowHostLoopback, ports },
        volumes: shares.map((s) => s.volume)
      }).pipe(Scope.provide(scope), Effect.exit)
      if (Exit.isFailure(booted)) {
        yield* Scope.close(scope, Exit.void)
        yield* this.setStatus("failed")
        return yield* Effect.failCause(booted.cause)
      }
      const vm = booted.value
      const boxId = this.id
      // A VM that booted but never became usable: keep its console tail, then end it.
      const abandon = (problem: string) =>
        Effect.gen(function*() {
          const tail = yield* Effect.promise(() => vm.consoleTail(4096))
          yield* Scope.close(scope, Exit.void)
          return yield* new BootError(`box ${boxId} ${problem}`, tail)
        })
      const agent = yield* Effect.tryPromise({
        try: () => Promise.race([
          AgentConnection.open(vm.agent),
          vm.exited.then((exit) => Promise.reject(new Error(`the VM exited during boot (${exit.signal ?? `code ${exit.code}`})`)))
        ]),
        catch: (e) => (e as Error).message
      }).pipe(
        Effect.timeoutOrElse({
          duration: options.readyTimeoutMs,
          orElse: () => Effect.fail(`the guest agent did not answer within ${options.readyTimeoutMs} ms (option readyTimeoutMs)`)
        }),
        Effect.catch((problem: string) => abandon(`failed to boot: ${problem}`)),
        Effect.tapError(() => this.setStatus("failed"))
      )
      const guestConfig: GuestConfig = {
        ...(options.network === "none" ? {} : { network: { ...GUEST_NETWORK, dns: [GUEST_NETWORK.dns] } }),
        mounts: shares.map((s) => s.mount)
      }
      yield* Effect.tryPromise({ try: () => agent.configure(guestConfig), catch: (e) => (e as Error).message }).pipe(
        Effect.catch((problem: string) => abandon(`could not be configured: ${problem}`)),
        Effect.tapError(() => this.setStatus("failed"))
      )
      this.running = { scope, vm, agent, ports }
      yield* this.setStatus("running", vm.pid)
      // A VM that dies on its own (guest panic, killed VMM) must not stay "running".
      void vm.exited.then(() => {
        if (this.running?.vm === vm && this.status === "running") {
          agent.close(new Error("the VM exited"))
          this.running = undefined
          Effect.runFork(Effect.andThen(Scope.close(scope, Exit.void), this.setStatus("stopped")))
        }
      })
    })
  }

  private get connection(): Effect.Effect<AgentConnection, ExecError | StartError> {
    return Effect.suspend(() => {
      const running = this.running
      if (running && !running.agent.isClosed) return Effect.succeed(running.agent)
      return Effect.andThen(this.start, () => {
        const agent = this.running?.agent
        return agent ? Effect.succeed(agent) : Effect.fail(new ExecError(`box ${this.id} stopped while starting`))
      })
    })
  }

  exec(command: string, args: ReadonlyArray<string> = [], options?: ExecOptions) {
    return Effect.gen({ self: this }, function*() {
      const resolved = yield* resolveExecOptions(options)
      const argv = [command, ...args]
      if (command.length === 0) return yield* new ExecError("the command is empty", argv)
      const agent = yield* this.connection
      const box = this.record.options
      const env = mergeEnv([["PATH", DEFAULT_PATH]], this.runConfig.env, box.env, resolved.env)
      const user = resolved.user ?? box.user ?? this.runConfig.user
      const request: ExecRequest = {
        argv: [command, ...args] as unknown as ExecRequest["argv"],
        env,
        cwd: resolved.workingDir ?? box.workingDir ?? this.runConfig.workingDir ?? "/root",
        ...(user !== undefined ? { user } : {}),
        ...(resolved.timeoutMs !== undefined ? { timeoutMs: resolved.timeoutMs } : {})
      }
      const channel = agent.exec(request)
      yield* this.deps.store.increment("totalExecCalls")
      const pid = yield* Effect.tryPromise({
        try: () => channel.started,
        catch: (e) => new ExecError(e instanceof SpawnFailed ? `cannot run ${command}: ${e.message}` : `${command}: ${(e as Error).message}`, argv)
      })
      return new ExecutionImpl(channel, argv, pid, resolved.timeoutMs)
    })
  }

  get ping() {
    return Effect.flatMap(this.connection, (agent) =>
      Effect.tryPromise({ try: () => agent.ping(), catch: (e) => new ExecError(`ping: ${(e as Error).message}`) }))
  }

  /** Powers the guest off; the box stays (stopped) unless `autoRemove`. */
  get stop(): Effect.Effect<void> {
    return Effect.andThen(this.lifecycle.withPermit(this.halt), () =>
      this.record.options.autoRemove ? this.remove : Effect.void)
  }

  get remove(): Effect.Effect<void> {
    return this.lifecycle.withPermit(Effect.gen({ self: this }, function*() {
      if (this.removed) return
      yield* this.halt
      this.removed = true
      yield* Effect.promise(() => fs.promises.rm(this.dir, { recursive: true, force: true }))
      yield* this.deps.store.delete(this.id)
      yield* this.deps.store.increment("boxesDestroyed")
      this.deps.onRemoved(this.id)
    }))
  }

  private get halt(): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      const running = this.running
      if (!running) return
      this.running = undefined
      yield* this.setStatus("stopping")
      running.agent.shutdown()
      const exited = yield* Effect.promise(() => running.vm.exited).pipe(Effect.timeoutOrElse({ duration: STOP_GRACE_MS, orElse: () => Effect.succeed(undefined) }))
      if (exited === undefined) running.vm.kill()
      running.agent.close(new Error("the box was stopped"))
      yield* Scope.close(running.scope, Exit.void)
      yield* this.setStatus("stopped")
    })
  }

  /** Synchronous last resort at process exit: no VMM may outlive a non-detached creator. */
  killNow(): void {
    this.running?.vm.kill()
  }
}

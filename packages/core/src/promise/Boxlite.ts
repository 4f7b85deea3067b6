import { Effect, Layer, ManagedRuntime } from "effect"
import type { Box as EffectBox, BoxInfo, BoxMetrics } from "../Box.js"
import { BoxStateError } from "../Errors.js"
import type { ImageDetails, ImageInfo, PruneResult, PullProgress } from "../Images.js"
import type { GuestArtifacts, Hypervisor, HypervisorUnavailable } from "@boxlite/driver"
import * as Logging from "../Logging.js"
import { type BoxOptions, type CopyOutOptions, type ExecOptions, type SnapshotOptions, unknownOption, type WriteFileOptions } from "../Options.js"
import { layer as runtimeLayer, type OpenError, type RemoveOptions, Runtime, type RuntimeInfo, type RuntimeMetrics, type RuntimeOptions } from "../Runtime.js"
import type { SnapshotInfo, SnapshotPruneReport } from "../Snapshots.js"
import type { SupervisorEntry } from "../supervisor/SupervisorPool.js"
import { Execution } from "./Execution.js"
import { asBoxliteError } from "./run.js"

const RUNTIME_OPTION_KEYS = ["homeDir", "registries", "dockerConfigPath", "platform", "driver"] satisfies ReadonlyArray<keyof RuntimeOptions>

/** The Hypervisor, guest artifacts and supervisor module a Boxlite runs on; the `boxlite` package supplies the default. */
export type Platform = Layer.Layer<Hypervisor | GuestArtifacts | SupervisorEntry, HypervisorUnavailable>

/** A box (Promise face of the Effect `Box`). `await using` stops it (and removes it if autoRemove). */
export class Box implements AsyncDisposable {
  constructor(private readonly box: EffectBox, private readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>) {}

  get id(): string {
    return this.box.id
  }
  get name(): string | undefined {
    return this.box.name
  }

  /** Runs `command args...` in the box (booting it first if needed) and returns at once. */
  async exec(command: string, args: ReadonlyArray<string> = [], options?: ExecOptions): Promise<Execution> {
    const execution = await this.run(this.box.exec(command, args, options))
    return new Execution(execution, this.run)
  }

  start(): Promise<void> {
    return this.run(this.box.start)
  }
  /** Copies a host file, symlink or tree into the box, as `cp -a` (symlinks stay links). */
  copyIn(hostPath: string, guestPath: string): Promise<void> {
    return this.run(this.box.copyIn(hostPath, guestPath))
  }
  /** Copies a guest file, symlink or tree to the host, as `cp -a`; never writes outside `hostPath`. */
  copyOut(guestPath: string, hostPath: string, options?: CopyOutOptions): Promise<void> {
    return this.run(this.box.copyOut(guestPath, hostPath, options))
  }
  /** The content of a (small) guest file. */
  readFile(path: string, options?: CopyOutOptions): Promise<Uint8Array> {
    return this.run(this.box.readFile(path, options))
  }
  /** Creates or replaces a guest file. */
  writeFile(path: string, data: string | Uint8Array, options?: WriteFileOptions): Promise<void> {
    return this.run(this.box.writeFile(path, data, options))
  }
  info(): Promise<BoxInfo> {
    return this.run(this.box.info)
  }
  /** Round trip to the guest agent, in ms. */
  ping(): Promise<number> {
    return this.run(this.box.ping)
  }
  /** CPU time of the VM, guest memory in use and guest network bytes; needs a running box. */
  metrics(): Promise<BoxMetrics> {
    return this.run(this.box.metrics)
  }
  /** Stops the box's vCPUs (memory and processes stay); execs are refused until `resume()`. */
  pause(): Promise<void> {
    return this.run(this.box.pause)
  }
  /** Runs a paused box again; starts a suspended one where it was saved. */
  resume(): Promise<void> {
    return this.run(this.box.resume)
  }
  /** Saves memory, devices and disk as a snapshot; the box runs on. `runtime.create({ fromSnapshot })` starts from it. */
  snapshot(options?: SnapshotOptions): Promise<SnapshotInfo> {
    return this.run(this.box.snapshot(options))
  }
  /** Saves the box to disk and ends its VM (no host memory held); the next start, exec or copy resumes it. */
  suspend(): Promise<void> {
    return this.run(this.box.suspend)
  }
  stop(): Promise<void> {
    return this.run(this.box.stop)
  }
  remove(): Promise<void> {
    return this.run(this.box.remove)
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }
}

/** The images of a runtime (Promise face of the Effect `Images`). */
export class Images {
  constructor(private readonly run: <A, E>(effect: Effect.Effect<A, E, Runtime>) => Promise<A>) {}

  /** Pulls `reference` (e.g. `python:slim`); `onProgress` sees bytes per layer and totals. */
  pull(reference: string, options?: { readonly onProgress?: (event: PullProgress) => void }): Promise<ImageInfo> {
    return this.run(Runtime.use((r) => r.images.pull(reference, options)))
  }
  list(): Promise<ReadonlyArray<ImageInfo>> {
    return this.run(Runtime.use((r) => r.images.list))
  }
  inspect(reference: string): Promise<ImageDetails> {
    return this.run(Runtime.use((r) => r.images.inspect(reference)))
  }
  remove(reference: string): Promise<void> {
    return this.run(Runtime.use((r) => r.images.remove(reference)))
  }
  prune(): Promise<PruneResult> {
    return this.run(Runtime.use((r) => r.images.prune))
  }
}

/** The snapshots of a runtime (Promise face of the Effect `Snapshots`). */
export class Snapshots {
  constructor(private readonly run: <A, E>(effect: Effect.Effect<A, E, Runtime>) => Promise<A>) {}

  list(): Promise<ReadonlyArray<SnapshotInfo>> {
    return this.run(Runtime.use((r) => r.snapshots.list))
  }
  get(idOrName: string): Promise<SnapshotInfo> {
    return this.run(Runtime.use((r) => r.snapshots.get(idOrName)))
  }
  /** Deletes it and its files; one that boxes were created from is a SnapshotError (`in-use`). */
  remove(idOrName: string): Promise<void> {
    return this.run(Runtime.use((r) => r.snapshots.remove(idOrName)))
  }
  /** Removes every snapshot that no box or snapshot was made from. */
  prune(): Promise<SnapshotPruneReport> {
    return this.run(Runtime.use((r) => r.snapshots.prune))
  }
}

/**
 * The BoxLite runtime of one home directory (Promise face of the Effect `Runtime`).
 * `close()` (or `await using`) stops the boxes it started that are not detached.
 */
export class Boxlite implements AsyncDisposable {
  /** A home that cannot be opened (OpenError) rejects every call with that error. */
  private readonly managed: ManagedRuntime.ManagedRuntime<Runtime, OpenError | HypervisorUnavailable>

  /** Throws InvalidOptions at once for a key that is not a runtime option. */
  constructor(options: RuntimeOptions, platform: Platform) {
    const unknown = unknownOption(options, RUNTIME_OPTION_KEYS)
    if (unknown) throw unknown
    const logging = Logging.layerFromEnv()
    this.managed = ManagedRuntime.make(Layer.merge(runtimeLayer(options).pipe(Layer.provide(platform), Layer.provide(logging)), logging))
  }

  private closed = false

  private readonly run = <A, E>(effect: Effect.Effect<A, E, Runtime>): Promise<A> =>
    this.closed
      ? Promise.reject(new BoxStateError("the runtime is closed: open a new Boxlite"))
      : this.managed.runPromise(effect).catch((e: unknown) => Promise.reject(asBoxliteError(e)))

  /** Pull, list, inspect, remove and prune images. */
  readonly images: Images = new Images(this.run)
  /** List, inspect, remove and prune snapshots. */
  readonly snapshots: Snapshots = new Snapshots(this.run)

  async create(options?: BoxOptions): Promise<Box> {
    const box = await this.run(Runtime.use((r) => r.create(options)))
    return new Box(box, this.run)
  }

  async get(idOrName: string): Promise<Box> {
    const box = await this.run(Runtime.use((r) => r.get(idOrName)))
    return new Box(box, this.run)
  }

  list(): Promise<ReadonlyArray<BoxInfo>> {
    return this.run(Runtime.use((r) => r.list))
  }
  /** Deletes a box and its disk; a running one only with `{ force: true }`. */
  remove(idOrName: string, options?: RemoveOptions): Promise<void> {
    return this.run(Runtime.use((r) => r.remove(idOrName, options)))
  }
  metrics(): Promise<RuntimeMetrics> {
    return this.run(Runtime.use((r) => r.metrics))
  }
  info(): Promise<RuntimeInfo> {
    return this.run(Runtime.use((r) => r.info))
  }
  get homeDir(): Promise<string> {
    return this.run(Runtime.useSync((r) => r.homeDir))
  }

  /** Stops the boxes this runtime started that are not detached; later calls reject with BoxStateError. */
  close(): Promise<void> {
    this.closed = true
    return this.managed.dispose()
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

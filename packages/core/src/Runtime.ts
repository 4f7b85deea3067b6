/**
 * The runtime of one home directory (`~/.boxlite` by default): creates boxes from images,
 * finds them again, lists and removes them, and counts what it did.
 */
import { ContentStore, layer as contentStoreLayer } from "@boxlite/oci"
import { DiskStore, layer as diskStoreLayer } from "@boxlite/storage"
import { Context, Effect, Layer, References } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { ulid } from "ulid"
import { createHash } from "node:crypto"
import type { Box, BoxInfo } from "./Box.js"
import { type BootError, BoxNotFound, BoxStateError, type HypervisorUnavailable, InvalidOptions, SnapshotError, StorageError } from "./Errors.js"
import { type DriverCapabilities, GuestArtifacts, Hypervisor, type HypervisorInfo } from "@boxlite/driver"
import { timed } from "./Logging.js"
import { type ImagePullError, type Images, makeImages, type RegistryOptions, resolveImage } from "./Images.js"
import { BoxHandle, infoOf, reconcile } from "./internal/BoxHandle.js"
import { boxDirOf, boxesDirOf, removeBox, rootDiskOf, rootfsDirOf, snapshotsDirOf } from "./internal/BoxFiles.js"
import { unsupportedOption } from "./internal/Capabilities.js"
import { orWarn, readDirIfExists, removeTree, statIfExists } from "./internal/Fs.js"
import { recordLayout } from "./internal/Layouts.js"
import { restrictFiles, secureTree } from "./internal/PrivateHome.js"
import { claimHostPorts } from "./supervisor/HostPorts.js"
import { SupervisorEntry, SupervisorPool } from "./supervisor/SupervisorPool.js"
import { mergeRegistries, readConfig, validateRegistries } from "./Config.js"
import { type BoxDefaults, type BoxOptions, resolveBoxOptions, type ResolvedBoxOptions } from "./Options.js"
import { findSnapshot, makeSnapshots, type Snapshots } from "./Snapshots.js"
import { ACTIVE_STATUSES, type BoxRecord, layerSqlite, type SnapshotRecord, StateStore } from "./StateStore.js"

/**
 * A runtime's options. `registries` are merged over those of the home's `config.json` (a
 * registry field given here wins, see Config.ts), which also holds box `defaults`.
 */
export interface RuntimeOptions extends RegistryOptions {
  /** Where boxes, images and state (and `config.json`) live. Default: `$BOXLITE_HOME`, else `~/.boxlite`. */
  readonly homeDir?: string
  /**
   * The driver of the boxes this runtime creates (each box keeps its own): `qemu`, `kvm`
   * (cloud-hypervisor), `hvf` (vfkit), or the package name of a driver of your own (it exports
   * `driver: DriverPlugin`). Default: `$BOXLITE_DRIVER`, else `qemu`. Read by the platform
   * (the `boxlite` package); a driver that cannot be loaded is HypervisorUnavailable.
   */
  readonly driver?: string
}

export interface RuntimeMetrics {
  readonly boxesCreated: number
  readonly boxesDestroyed: number
  readonly totalExecCalls: number
  readonly activeBoxes: number
}

export interface RuntimeInfo {
  readonly homeDir: string
  /** The driver of the boxes this runtime creates: which VMM, accelerator and why, confinement. */
  readonly hypervisor: HypervisorInfo
  /** What that driver can do (the options it refuses otherwise). */
  readonly capabilities: DriverCapabilities
}

/** `warm` boots a template box the first time: that boot's errors too. */
export type CreateError = InvalidOptions | ImagePullError | BoxStateError | StorageError | SnapshotError | BootError | HypervisorUnavailable

/**
 * Opening a runtime: a home of another user (InvalidOptions "homeDir"), a bad `registries` option
 * or `config.json` (InvalidOptions naming the field), an unusable state database.
 */
export type OpenError = InvalidOptions | StorageError

export interface RemoveOptions {
  /** Stop the box first if it runs. Without it, removing a running box is a BoxStateError. */
  readonly force?: boolean
}

export class Runtime extends Context.Service<Runtime, {
  readonly homeDir: string
  /** Pull, list, inspect, remove and prune images. */
  readonly images: Images
  /** List, inspect, remove and prune snapshots (`box.snapshot()` takes them). */
  readonly snapshots: Snapshots
  /** Validates, gets the image ready, records the box and makes its disk. Boots on first use. */
  readonly create: (options?: BoxOptions) => Effect.Effect<Box, CreateError>
  /** A box by id or name, from any process: running boxes are reattached, stopped ones start on use. */
  readonly get: (idOrName: string) => Effect.Effect<Box, BoxNotFound>
  /** Every box of the home directory, running or not, with its true status. */
  readonly list: Effect.Effect<ReadonlyArray<BoxInfo>>
  /** Deletes a box and its disk; a running one only with `force` (which stops it first). */
  readonly remove: (idOrName: string, options?: RemoveOptions) => Effect.Effect<void, BoxNotFound | BoxStateError>
  readonly metrics: Effect.Effect<RuntimeMetrics>
  readonly info: Effect.Effect<RuntimeInfo, HypervisorUnavailable>
}>()("@boxlite/core/Runtime") {}

const GiB = 1024 ** 3
/** A box directory without a record is a create in progress, unless it is older than this. */
const ORPHAN_AGE_MS = 10 * 60_000

export const defaultHomeDir = (): string => process.env["BOXLITE_HOME"] || path.join(os.homedir(), ".boxlite")

/**
 * After a crash or a reboot: records whose supervisor is gone are reconciled ("failed" with
 * why, or "stopped" if they were stopping; autoRemove ones that reach "stopped" are removed,
 * as their stop would have done), box directories that no record claims (a create that died
 * half-way) are deleted once they are old enough, and modes left by earlier versions are made
 * private (PrivateHome).
 *
 * A failed autoRemove box is kept, with its reason, until it is removed. It was meant to be
 * thrown away, and keeping it costs its disk; but removing it here would erase the only sign
 * that the work in it was lost (a killed supervisor, a crashed VMM, a host that rebooted under
 * it), and the user would find nothing at all where a box should be. Its owner's `remove()`
 * (or `stop()`, or disposing it) still removes it as before.
 */
const reconcileHome = (homeDir: string, store: StateStore["Service"]) =>
  Effect.gen(function*() {
    yield* secureTree(homeDir)
    const records = yield* store.list
    for (const record of records) {
      if (!ACTIVE_STATUSES.includes(record.status)) continue
      const now = yield* reconcile(store, record)
      if (now.status === "stopped" && record.options.autoRemove) {
        yield* removeBox(homeDir, store, record.id)
      }
    }
    yield* removeOrphanDirs(boxesDirOf(homeDir), new Set((yield* store.list).map((r) => r.id)), "box")
    yield* removeOrphanDirs(snapshotsDirOf(homeDir), new Set((yield* store.listSnapshots).map((s) => s.id)), "snapshot")
  })

/** Directories under `parent` that no record claims (a create or snapshot that died half-way), once they are old enough. */
const removeOrphanDirs = (parent: string, known: ReadonlySet<string>, what: string) =>
  Effect.gen(function*() {
    const entries = yield* readDirIfExists(parent)
    for (const entry of entries) {
      if (known.has(entry)) continue
      const dir = path.join(parent, entry)
      const stat = yield* statIfExists(dir)
      if (stat && Date.now() - stat.mtimeMs > ORPHAN_AGE_MS) {
        yield* Effect.logInfo(`removing an orphaned ${what} directory`).pipe(Effect.annotateLogs({ dir }))
        yield* orWarn(removeTree(dir))
      }
    }
  })

/** The options a clone may not change: they make the VM the snapshot saved. */
const CLONE_FIXED = ["image", "cpus", "memoryMib", "diskSizeGb", "volumes"] as const

/**
 * A clone's options: the snapshot box's machine (image, cpus, memory, network mode), its env,
 * working dir and user unless given, and the rest the caller's own. Changing the machine is
 * InvalidOptions naming the field.
 */
const cloneOptions = (snapshot: SnapshotRecord, input: BoxOptions) =>
  Effect.gen(function*() {
    const source = snapshot.options
    const { fromSnapshot: _, ...own } = input
    for (const field of CLONE_FIXED) {
      const given = own[field]
      if (given === undefined) continue
      const same = field === "volumes" ? (given as ReadonlyArray<unknown>).length === 0 : given === source[field]
      if (!same) return yield* new InvalidOptions(field, `a box from a snapshot has the snapshot's ${field} (${JSON.stringify(source[field])}): it cannot be changed`)
    }
    const mode = typeof own.network === "object" ? own.network.mode : own.network
    if (mode !== undefined && mode !== source.network) {
      return yield* new InvalidOptions("network", `a box from a snapshot has the snapshot's network mode ("${source.network}"): it cannot be changed`)
    }
    return yield* resolveBoxOptions({
      env: source.env.map(([k, v]) => [k, v] as [string, string]),
      ...(source.workingDir !== undefined ? { workingDir: source.workingDir } : {}),
      ...(source.user !== undefined ? { user: source.user } : {}),
      network: source.network,
      ...own,
      image: source.image,
      cpus: source.cpus,
      memoryMib: source.memoryMib
    })
  })

/** InvalidOptions unless the file system of the home has `sizeGb` GiB free for an unprivileged user. */
const checkFreeSpace = (homeDir: string, sizeGb: number) =>
  Effect.flatMap(
    Effect.tryPromise({ try: () => fs.statfs(homeDir), catch: (e) => new StorageError({ message: `cannot read the free space of ${homeDir}: ${(e as Error).message}` }) }),
    (stat) => {
      const free = stat.bavail * stat.bsize
      return sizeGb * GiB <= free
        ? Effect.void
        : Effect.fail(new InvalidOptions("diskSizeGb", `${sizeGb} GiB is more than the ${(free / GiB).toFixed(1)} GiB free on the file system of ${homeDir}`))
    }
  )

const make = (homeDir: string, registry: RegistryOptions, defaults: BoxDefaults) =>
  Effect.gen(function*() {
    const hypervisor = yield* Hypervisor
    const guest = yield* GuestArtifacts
    const supervisor = yield* SupervisorEntry
    const store = yield* StateStore
    const disks = yield* DiskStore
    const contentStore = yield* ContentStore
    yield* reconcileHome(homeDir, store)
    const handles = new Map<string, BoxHandle>()
    const supervisors = new SupervisorPool(supervisor.module, homeDir, hypervisor.name)
    // Asked once: the driver probes the host (binaries, /dev/kvm) to answer.
    let knownHypervisor: HypervisorInfo | undefined
    const hypervisorInfo = Effect.suspend(() =>
      knownHypervisor !== undefined
        ? Effect.succeed(knownHypervisor)
        : hypervisor.info.pipe(
          Effect.tap((info) => Effect.sync(() => (knownHypervisor = info))),
          Effect.orElseSucceed(() => undefined),
          // Box info only names the accelerator: the driver's warnings (TCG is slow) are for info() and boots.
          Effect.provideService(References.MinimumLogLevel, "Error")
        )
    )
    const deps = { homeDir, store, supervisors, hypervisorInfo, guestFiles: guest.files, onRemoved: (id: string) => void handles.delete(id) }
    const handleOf = (record: BoxRecord): BoxHandle => {
      let handle = handles.get(record.id)
      if (!handle) handles.set(record.id, handle = new BoxHandle(record, deps))
      return handle
    }

    // Closing the runtime stops the boxes it launched that are not detached, and lets go of the others.
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        Effect.sync(() => supervisors.close()),
        Effect.forEach([...handles.values()], (box) => (box.ownedHere ? box.stop : box.disconnect), { concurrency: "unbounded", discard: true })
      ))

    /** A name nobody has, host ports free now (they are claimed again at each start). */
    const claimNameAndPorts = (options: ResolvedBoxOptions) =>
      Effect.gen(function*() {
        if (options.name !== undefined && (yield* store.find(options.name))) {
          return yield* new BoxStateError(`a box named "${options.name}" already exists`)
        }
        yield* Effect.tryPromise({
          try: () => claimHostPorts(options.ports),
          catch: (e) => new InvalidOptions("ports", (e as Error).message)
        })
      })

    /** The box's directory, its disk (made by `makeDisk`) and its record; a failure leaves none of them. */
    const recordBox = (record: BoxRecord, makeDisk: (diskPath: string) => Effect.Effect<void, StorageError>) =>
      Effect.gen(function*() {
        const dir = boxDirOf(homeDir, record.id)
        yield* Effect.tryPromise({
          try: () => fs.mkdir(dir, { recursive: true, mode: 0o700 }),
          catch: (e) => new StorageError({ message: `cannot create ${dir}: ${(e as Error).message}` })
        })
        yield* makeDisk(rootDiskOf(dir, record.diskFormat)).pipe(
          Effect.andThen(restrictFiles(dir)),
          Effect.andThen(store.insert(record)),
          Effect.tapError(() => orWarn(removeTree(dir))),
          timed("box disk created", { box: record.id })
        )
        yield* store.increment("boxesCreated")
        // A box is usually started right after it is made: have a supervisor loading.
        supervisors.refill()
        return handleOf(record) as Box
      })

    /** A box that resumes from a snapshot: its disk an overlay of the snapshot's, its first start a restore. */
    const createFromSnapshot = (input: BoxOptions & { fromSnapshot: string }) =>
      Effect.gen(function*() {
        const snapshot = yield* findSnapshot(store, input.fromSnapshot).pipe(
          Effect.mapError((e) => new InvalidOptions("fromSnapshot", e.message))
        )
        const options = yield* cloneOptions(snapshot, input)
        yield* claimNameAndPorts(options)
        let missing: string | undefined
        for (const file of [snapshot.state.file, ...snapshot.layers]) {
          if (!(yield* statIfExists(file))) {
            missing = file
            break
          }
        }
        if (missing) return yield* new SnapshotError("corrupt", `snapshot ${snapshot.name ?? snapshot.id} is damaged: ${missing} is missing`)
        const id = ulid()
        const box = yield* recordBox(
          {
            id, name: options.name, status: "configured", image: snapshot.image, options, runConfig: snapshot.runConfig, base: snapshot.base,
            createdAt: new Date(), pid: undefined, supervisor: undefined, ports: options.ports, booted: false, reason: undefined,
            layers: snapshot.layers, snapshot: snapshot.id, restore: snapshot.state,
            // Only the driver that saved the state can restore it.
            driver: snapshot.driver ?? "qemu", diskFormat: "qcow2"
          },
          (diskPath) => disks.createLayeredDisk(snapshot.layers.at(-1)!, diskPath)
        )
        yield* Effect.logInfo("box created from a snapshot").pipe(Effect.annotateLogs({ box: id, snapshot: snapshot.id }))
        return box
      }).pipe(timed("create from snapshot"))

    /**
     * A box from the template of its image and shape, made first if there is none: a box booted
     * and saved as the snapshot `warm-<key>`, then removed. Two processes making one template at
     * once: the second finds the first's.
     */
    const createWarm = (input: BoxOptions): Effect.Effect<Box, CreateError> =>
      Effect.gen(function*() {
        const { warm: _, ...rest } = input
        if (!hypervisor.capabilities.snapshots) return yield* new InvalidOptions("warm", `the ${hypervisor.name} driver cannot save VMs, and a warm start restores one`)
        if (rest.fromSnapshot !== undefined) return yield* new InvalidOptions("warm", "cannot be combined with fromSnapshot: a snapshot starts warm already")
        if ((rest.volumes ?? []).length > 0) return yield* new InvalidOptions("warm", "a box with volumes cannot start warm: a virtiofs share's state cannot be saved")
        if (rest.diskSizeGb !== undefined) return yield* new InvalidOptions("warm", "a box with diskSizeGb has a disk of its own: it cannot start from a shared template")
        const options = yield* resolveBoxOptions(rest, defaults)
        const name = `warm-${createHash("sha256").update(JSON.stringify([options.image, options.cpus, options.memoryMib, options.network])).digest("hex").slice(0, 16)}`
        const found = yield* store.findSnapshot(name)
        if (!found) {
          yield* Effect.logInfo("making a warm template").pipe(Effect.annotateLogs({ image: options.image, snapshot: name }))
          const template = yield* create({ image: options.image, cpus: options.cpus, memoryMib: options.memoryMib, network: options.network })
          yield* template.start.pipe(
            Effect.andThen(template.snapshot({ name })),
            Effect.catchIf((e) => e._tag === "BoxStateError" && /already exists/.test(e.message), () => Effect.void),
            Effect.ensuring(template.remove),
            Effect.mapError((e) => (e._tag === "BoxNotFound" ? new BoxStateError(e.message) : e))
          )
        }
        return yield* createFromSnapshot({ ...rest, warm: true, fromSnapshot: name })
      }).pipe(timed("create warm"))

    const create = (input?: BoxOptions): Effect.Effect<Box, CreateError> =>
      Effect.gen(function*() {
        if (input?.warm === true) return yield* createWarm(input)
        if (input?.fromSnapshot !== undefined) return yield* createFromSnapshot(input as BoxOptions & { fromSnapshot: string })
        const options = yield* resolveBoxOptions(input, defaults)
        const unsupported = unsupportedOption(hypervisor.name, hypervisor.capabilities, options)
        if (unsupported) return yield* unsupported
        if (options.diskSizeGb !== undefined) yield* checkFreeSpace(homeDir, options.diskSizeGb)
        yield* claimNameAndPorts(options)
        const image = yield* resolveImage(contentStore, registry, options.image).pipe(timed("image resolved", { image: options.image }))
        const base = yield* disks.baseFor(image).pipe(
          timed("root filesystem ready", { image: options.image })
        )
        yield* recordLayout(rootfsDirOf(homeDir), image)
        const sizeBytes = options.diskSizeGb === undefined ? undefined : options.diskSizeGb * GiB
        if (sizeBytes !== undefined) {
          const baseBytes = yield* Effect.tryPromise({
            try: () => fs.stat(base).then((s) => s.size),
            catch: (e) => new StorageError({ message: `cannot read ${base}: ${(e as Error).message}` })
          })
          if (sizeBytes < baseBytes) {
            return yield* new InvalidOptions("diskSizeGb", `image ${options.image} needs at least ${Math.ceil(baseBytes / GiB)} GiB (got ${options.diskSizeGb})`)
          }
        }
        const id = ulid()
        const diskFormat = hypervisor.capabilities.diskFormats[0]!
        const box = yield* recordBox(
          {
            id, name: options.name, status: "configured", image: options.image, options, runConfig: image.config, base,
            createdAt: new Date(), pid: undefined, supervisor: undefined, ports: options.ports, booted: false, reason: undefined,
            layers: [], snapshot: undefined, restore: undefined, driver: hypervisor.name, diskFormat
          },
          (diskPath) => diskFormat === "raw" ? disks.createRawDisk(base, diskPath, sizeBytes) : disks.createBoxDisk(base, diskPath, sizeBytes)
        )
        yield* Effect.logInfo("box created").pipe(Effect.annotateLogs({ box: id, image: options.image }))
        return box
      }).pipe(timed("create"))

    const reconciledRecords = Effect.flatMap(store.list, (records) => Effect.forEach(records, (r) => reconcile(store, r)))

    const find = (idOrName: string) =>
      Effect.flatMap(store.find(idOrName), (record) => (record ? Effect.succeed(record) : Effect.fail(new BoxNotFound(idOrName))))

    return Runtime.of({
      homeDir,
      images: makeImages(
        contentStore,
        registry,
        rootfsDirOf(homeDir),
        Effect.map(Effect.zip(store.list, store.listSnapshots), ([boxes, snapshots]) => [...boxes, ...snapshots].map((r) => r.base))
      ),
      snapshots: makeSnapshots(homeDir, store),
      create,
      get: (idOrName) => Effect.map(find(idOrName), (record) => handleOf(record) as Box),
      list: Effect.zipWith(reconciledRecords, hypervisorInfo, (records, hv) => records.map((r) => infoOf(r, hv))),
      remove: (idOrName, options) =>
        Effect.gen(function*() {
          const record = yield* Effect.flatMap(find(idOrName), (r) => reconcile(store, r))
          if (ACTIVE_STATUSES.includes(record.status) && !options?.force) {
            return yield* new BoxStateError(`box ${record.id} is ${record.status}: stop it first, or remove it with { force: true }`)
          }
          yield* handleOf(record).remove
        }),
      metrics: Effect.gen(function*() {
        const counters = yield* store.counters
        const records = yield* reconciledRecords
        return { ...counters, activeBoxes: records.filter((r) => r.status === "running" || r.status === "paused").length }
      }),
      info: Effect.map(hypervisor.info, (h) => ({ homeDir, hypervisor: h, capabilities: hypervisor.capabilities }))
    })
  })

/**
 * The Runtime of `options.homeDir`, with its state store and disk store; needs a Hypervisor (the
 * driver of the boxes it creates), the guest it boots and how to run supervisors. The home is made private (0700, its files 0600); one that belongs to
 * another user is InvalidOptions("homeDir"), an unreadable state database a StorageError. Its
 * `config.json` is read once, here (Config.ts).
 */
export const layer = (options: RuntimeOptions = {}): Layer.Layer<Runtime, OpenError, Hypervisor | GuestArtifacts | SupervisorEntry> => {
  const { homeDir: home, driver: _, ...registry } = options
  const homeDir = path.resolve(home ?? defaultHomeDir())
  const open = Effect.gen(function*() {
    const fromCode = yield* validateRegistries(registry.registries)
    const config = yield* readConfig(homeDir)
    return yield* make(homeDir, { ...registry, registries: mergeRegistries(config.registries, fromCode) }, config.defaults ?? {})
  })
  return Layer.effect(Runtime)(open).pipe(
    Layer.provide(Layer.mergeAll(
      layerSqlite(homeDir),
      diskStoreLayer({ rootfsDir: rootfsDirOf(homeDir) }),
      contentStoreLayer({ dir: path.join(homeDir, "images") })
    ))
  )
}

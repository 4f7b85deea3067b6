/**
 * The runtime of one home directory (`~/.boxlite` by default): creates boxes from images,
 * finds them again, lists and removes them, and counts what it did.
 */
import { ContentStore, layer as contentStoreLayer } from "@boxlite/oci"
import { DiskStore, layer as diskStoreLayer, type StorageError as DiskStorageError } from "@boxlite/storage"
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { ulid } from "ulid"
import type { Box, BoxInfo } from "./Box.js"
import { BoxNotFound, BoxStateError, type HypervisorUnavailable, InvalidOptions, StorageError } from "./Errors.js"
import { GuestArtifacts, Hypervisor, type HypervisorInfo } from "./Hypervisor.js"
import { type ImagePullError, type Images, makeImages, type RegistryOptions, resolveImage } from "./Images.js"
import { claimHostPorts } from "./internal/HostPorts.js"
import { LiveBox } from "./internal/LiveBox.js"
import { type BoxOptions, resolveBoxOptions } from "./Options.js"
import { layerSqlite, StateStore } from "./StateStore.js"

export interface RuntimeOptions extends RegistryOptions {
  /** Where boxes, images and state live. Default: `$BOXLITE_HOME`, else `~/.boxlite`. */
  readonly homeDir?: string
}

export interface RuntimeMetrics {
  readonly boxesCreated: number
  readonly boxesDestroyed: number
  readonly totalExecCalls: number
  readonly activeBoxes: number
}

export interface RuntimeInfo {
  readonly homeDir: string
  readonly hypervisor: HypervisorInfo
}

export type CreateError = InvalidOptions | ImagePullError | BoxStateError

export class Runtime extends Context.Service<Runtime, {
  readonly homeDir: string
  /** Pull, list, inspect, remove and prune images. */
  readonly images: Images
  /** Validates, gets the image ready, records the box and makes its disk. Boots on first use. */
  readonly create: (options?: BoxOptions) => Effect.Effect<Box, CreateError>
  /** A box by id or name. */
  readonly get: (idOrName: string) => Effect.Effect<Box, BoxNotFound>
  readonly list: Effect.Effect<ReadonlyArray<BoxInfo>>
  /** Stops (if needed) and deletes a box. */
  readonly remove: (idOrName: string) => Effect.Effect<void, BoxNotFound>
  readonly metrics: Effect.Effect<RuntimeMetrics>
  readonly info: Effect.Effect<RuntimeInfo, HypervisorUnavailable>
}>()("@boxlite/core/Runtime") {}

const GiB = 1024 ** 3

/** Where the per-image ext4 bases of a home directory live. */
const rootfsDirOf = (homeDir: string): string => path.join(homeDir, "images", "rootfs")

export const defaultHomeDir = (): string => process.env["BOXLITE_HOME"] || path.join(os.homedir(), ".boxlite")

const make = (homeDir: string, registry: RegistryOptions) =>
  Effect.gen(function*() {
    const hypervisor = yield* Hypervisor
    const guest = yield* GuestArtifacts
    const store = yield* StateStore
    const disks = yield* DiskStore
    const contentStore = yield* ContentStore
    const rootfsDir = rootfsDirOf(homeDir)
    const boxesDir = path.join(homeDir, "boxes")
    const live = new Map<string, LiveBox>()
    const deps = { hypervisor, guest, store, onRemoved: (id: string) => void live.delete(id) }

    // A non-detached box never outlives its creator, whatever way the process ends.
    const killAll = () => { for (const box of live.values()) box.killNow() }
    process.on("exit", killAll)
    yield* Effect.addFinalizer(() =>
      Effect.andThen(
        Effect.forEach([...live.values()], (box) => box.stop, { concurrency: "unbounded", discard: true }),
        Effect.sync(() => process.off("exit", killAll))
      ))

    const create = (input?: BoxOptions) =>
      Effect.gen(function*() {
        const options = yield* resolveBoxOptions(input)
        if (options.name !== undefined && (yield* store.find(options.name))) {
          return yield* new BoxStateError(`a box named "${options.name}" already exists`)
        }
        yield* Effect.tryPromise({
          try: () => claimHostPorts(options.ports),
          catch: (e) => new InvalidOptions("ports", (e as Error).message)
        })
        const image = yield* resolveImage(contentStore, registry, options.image)
        const base = yield* disks.baseFor(image).pipe(Effect.mapError((e: DiskStorageError) => new StorageError(e.message)))
        const sizeBytes = options.diskSizeGb === undefined ? undefined : options.diskSizeGb * GiB
        if (sizeBytes !== undefined) {
          const baseBytes = (yield* Effect.promise(() => fs.stat(base))).size
          if (sizeBytes < baseBytes) {
            return yield* new InvalidOptions("diskSizeGb", `image ${options.image} needs at least ${Math.ceil(baseBytes / GiB)} GiB (got ${options.diskSizeGb})`)
          }
        }
        const id = ulid()
        const dir = path.join(boxesDir, id)
        const diskPath = path.join(dir, "disk.qcow2")
        const makeDisk = disks.createBoxDisk(base, diskPath, sizeBytes).pipe(Effect.mapError((e: DiskStorageError) => new StorageError(e.message)))
        const record = { id, name: options.name, status: "configured" as const, image: options.image, options, base, createdAt: new Date(), pid: undefined }
        // Whatever fails from here on leaves neither a box directory nor a record behind.
        yield* Effect.promise(() => fs.mkdir(dir, { recursive: true, mode: 0o700 }))
        yield* makeDisk.pipe(
          Effect.andThen(store.insert(record)),
          Effect.tapError(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
        )
        yield* store.increment("boxesCreated")
        const box = new LiveBox(record, dir, { path: diskPath, persistent: sizeBytes !== undefined, recreate: makeDisk }, image.config, deps)
        live.set(id, box)
        return box as Box
      })

    const get = (idOrName: string) =>
      Effect.gen(function*() {
        const record = yield* store.find(idOrName)
        const box = record && live.get(record.id)
        if (!box) return yield* new BoxNotFound(idOrName)
        return box as Box
      })

    return Runtime.of({
      homeDir,
      images: makeImages(contentStore, registry, rootfsDir, Effect.map(store.list, (records) => records.map((r) => r.base))),
      create,
      get,
      list: Effect.gen(function*() {
        const records = yield* store.list
        return yield* Effect.forEach(records, (r) => {
          const box = live.get(r.id)
          return box ? box.info : Effect.succeed({ id: r.id, name: r.name, status: r.status, image: r.image, cpus: r.options.cpus, memoryMib: r.options.memoryMib, createdAt: r.createdAt, pid: r.pid, ports: r.options.ports })
        })
      }),
      remove: (idOrName) => Effect.flatMap(get(idOrName), (box) => box.remove),
      metrics: Effect.gen(function*() {
        const counters = yield* store.counters
        const infos = yield* Effect.forEach([...live.values()], (b) => b.info)
        return { ...counters, activeBoxes: infos.filter((i) => i.status === "running").length }
      }),
      info: Effect.map(hypervisor.info, (h) => ({ homeDir, hypervisor: h }))
    })
  })

/** The Runtime of `options.homeDir`, with its state store and disk store; needs a Hypervisor and GuestArtifacts. */
export const layer = (options: RuntimeOptions = {}): Layer.Layer<Runtime, never, Hypervisor | GuestArtifacts> => {
  const { homeDir: home, ...registry } = options
  const homeDir = path.resolve(home ?? defaultHomeDir())
  return Layer.effect(Runtime)(make(homeDir, registry)).pipe(
    Layer.provide(Layer.mergeAll(
      layerSqlite(homeDir),
      diskStoreLayer({ rootfsDir: rootfsDirOf(homeDir) }),
      contentStoreLayer({ dir: path.join(homeDir, "images") })
    ))
  )
}

/**
 * Snapshots of a home: a box's memory and device state with its disk, under
 * `<home>/snapshots/<id>/` (`memory.state`, `disk.qcow2`), recorded in the state store. Taken
 * with `box.snapshot()`, started with `runtime.create({ fromSnapshot })`.
 */
import { Effect } from "effect"
import { SnapshotError } from "./Errors.js"
import { snapshotDirOf } from "./internal/BoxFiles.js"
import { orWarn, removeTree } from "./internal/Fs.js"
import type { BoxRecord, SnapshotRecord, StateStore } from "./StateStore.js"

export interface SnapshotInfo {
  readonly id: string
  readonly name: string | undefined
  /** The box it was taken of (it may be gone). */
  readonly boxId: string
  readonly image: string
  readonly createdAt: Date
  readonly cpus: number
  readonly memoryMib: number
  /** Its memory and device state (the guest's non-zero pages), in bytes. */
  readonly stateBytes: number
  /** On disk: state plus the disk layer. */
  readonly sizeBytes: number
}

export interface SnapshotPruneReport {
  readonly removed: ReadonlyArray<string>
  readonly reclaimedBytes: number
}

export interface Snapshots {
  /** Newest first. */
  readonly list: Effect.Effect<ReadonlyArray<SnapshotInfo>>
  readonly get: (idOrName: string) => Effect.Effect<SnapshotInfo, SnapshotError>
  /** Deletes it and frees its disk space; one that boxes (or other snapshots) were made from is `in-use`. */
  readonly remove: (idOrName: string) => Effect.Effect<void, SnapshotError>
  /** Removes every snapshot nothing was made from. */
  readonly prune: Effect.Effect<SnapshotPruneReport>
}

export const snapshotInfoOf = (r: SnapshotRecord): SnapshotInfo => ({
  id: r.id,
  name: r.name,
  boxId: r.boxId,
  image: r.image,
  createdAt: r.createdAt,
  cpus: r.options.cpus,
  memoryMib: r.options.memoryMib,
  stateBytes: r.state.bytes,
  sizeBytes: r.sizeBytes
})

/** Why `box` cannot be saved (snapshot or suspend), if it cannot: a virtiofs share's state lives in virtiofsd, outside the VM. */
export const unsavable = (box: BoxRecord): SnapshotError | undefined =>
  box.options.volumes.length > 0
    ? new SnapshotError("unsupported", `box ${box.id} has volumes, and a virtiofs share's state lives outside the VM: it cannot be saved`)
    : box.diskFormat !== "qcow2"
    ? new SnapshotError("unsupported", `box ${box.id} has a ${box.diskFormat} root disk (its driver, ${box.driver}, takes no qcow2): snapshots layer qcow2 disks`)
    : undefined

/** The snapshot's own disk layer: the last of its layers. */
const diskOf = (r: SnapshotRecord): string => r.layers.at(-1)!

export const findSnapshot = (store: StateStore["Service"], idOrName: string) =>
  Effect.flatMap(store.findSnapshot(idOrName), (r) => r ? Effect.succeed(r) : Effect.fail(new SnapshotError("not-found", `no snapshot with id or name "${idOrName}"`)))

/** What depends on a snapshot's disk: boxes cloned from it, and snapshots of those. */
const dependents = (store: StateStore["Service"], snapshot: SnapshotRecord) =>
  Effect.gen(function*() {
    const disk = diskOf(snapshot)
    const boxes = (yield* store.list).filter((b) => b.layers.includes(disk)).map((b) => `box ${b.name ?? b.id}`)
    const snapshots = (yield* store.listSnapshots).filter((s) => s.id !== snapshot.id && s.layers.includes(disk)).map((s) => `snapshot ${s.name ?? s.id}`)
    return [...boxes, ...snapshots]
  })

/** The record is gone already: files that cannot be removed now go with the orphaned directories at the next open. */
const removeFiles = (homeDir: string, id: string) => orWarn(removeTree(snapshotDirOf(homeDir, id)))

export const makeSnapshots = (homeDir: string, store: StateStore["Service"]): Snapshots => {
  const remove = (snapshot: SnapshotRecord) =>
    Effect.gen(function*() {
      const users = yield* dependents(store, snapshot)
      if (users.length > 0) {
        return yield* new SnapshotError("in-use", `snapshot ${snapshot.name ?? snapshot.id} is in use by ${users.join(", ")}: remove them first`)
      }
      yield* store.deleteSnapshot(snapshot.id)
      yield* removeFiles(homeDir, snapshot.id)
      yield* Effect.logInfo("snapshot removed").pipe(Effect.annotateLogs({ snapshot: snapshot.id }))
    })
  return {
    list: Effect.map(store.listSnapshots, (all) => all.map(snapshotInfoOf)),
    get: (idOrName) => Effect.map(findSnapshot(store, idOrName), snapshotInfoOf),
    remove: (idOrName) => Effect.flatMap(findSnapshot(store, idOrName), remove),
    prune: Effect.gen(function*() {
      const removed: Array<string> = []
      let reclaimedBytes = 0
      // Newest first: a snapshot of a clone goes before the one it was cloned from.
      for (const snapshot of yield* store.listSnapshots) {
        const done = yield* remove(snapshot).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
        if (done) {
          removed.push(snapshot.id)
          reclaimedBytes += snapshot.sizeBytes
        }
      }
      return { removed, reclaimedBytes }
    })
  }
}

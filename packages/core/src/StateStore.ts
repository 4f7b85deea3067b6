/**
 * Durable state of a home directory: the boxes and the runtime counters, in SQLite (WAL mode),
 * so it survives a killed process and can be shared by several processes.
 */
import type { RunConfig } from "@boxlite/oci"
import { Context, Effect, Layer } from "effect"
import * as path from "node:path"
import { BoxStateError, InvalidOptions, StorageError } from "./Errors.js"
import { secureHome } from "./internal/PrivateHome.js"
import { immediateTransaction, openSqlite, type SqliteBackend, type SqlValue } from "./internal/Sqlite.js"
import type { ProcessRef } from "./internal/Proc.js"
import type { DiskFormat, SavedState } from "@boxlite/driver"
import type { Port, ResolvedBoxOptions } from "./Options.js"

/** `paused`: running with its vCPUs stopped; `suspended`: saved to disk with no VMM, resumed by the next start. */
export type BoxStatus = "configured" | "starting" | "running" | "paused" | "stopping" | "stopped" | "suspended" | "failed"

/** Statuses in which a supervisor process is (or should be) alive. */
export const ACTIVE_STATUSES: ReadonlyArray<BoxStatus> = ["starting", "running", "paused", "stopping"]

export interface BoxRecord {
  readonly id: string
  readonly name: string | undefined
  readonly status: BoxStatus
  readonly image: string
  readonly options: ResolvedBoxOptions
  /** The image's config (env, working dir, user): the defaults of every exec. */
  readonly runConfig: RunConfig
  /** The image's ext4 base the box disk is layered on. */
  readonly base: string
  readonly createdAt: Date
  /** Process id of the VMM while the box runs. */
  readonly pid: number | undefined
  /** The process that starts, runs or stops the box (its supervisor, or who is launching it). */
  readonly supervisor: ProcessRef | undefined
  /**
   * True while a start claim is held by its launcher (a client): `supervisor` is then that
   * client, not a supervisor yet, and must never be signalled. Read from the store; false on insert.
   */
  readonly launching?: boolean
  /** Forwards with the host ports bound at the last start (0 replaced). */
  readonly ports: ReadonlyArray<Port>
  /** Has booted at least once (an ephemeral disk is then recreated at the next start). */
  readonly booted: boolean
  /** Why the box is "failed" (its boot failed, its VM or supervisor died); undefined otherwise. */
  readonly reason: string | undefined
  /** Read-only qcow2 layers between `base` and the box's disk, lowest first (a clone's snapshot disk). */
  readonly layers: ReadonlyArray<string>
  /** The snapshot the box was cloned from. */
  readonly snapshot: string | undefined
  /** The state the next start resumes from instead of booting (a suspended box, a clone's first start). */
  readonly restore: SavedState | undefined
  /** The driver that runs the box (Hypervisor.name): its supervisor loads that one, whatever the runtime's is now. */
  readonly driver: string
  /** How its root disk is stored (the first of its driver's diskFormats when it was created). */
  readonly diskFormat: DiskFormat
}

export type BoxChange = Partial<Pick<BoxRecord, "status" | "pid" | "supervisor" | "ports" | "booted" | "reason" | "restore">>

/** A saved box: its memory and device state and its disk, and what a clone of it starts with. */
export interface SnapshotRecord {
  /** ULID. */
  readonly id: string
  readonly name: string | undefined
  /** The box it was taken of (which may be gone since). */
  readonly boxId: string
  readonly image: string
  readonly createdAt: Date
  /** The source box's options: a clone's defaults. */
  readonly options: ResolvedBoxOptions
  readonly runConfig: RunConfig
  readonly base: string
  /** The source's own layers, then the snapshot's disk: a clone's read-only layers. */
  readonly layers: ReadonlyArray<string>
  readonly state: SavedState
  /** The driver that saved `state` (only it can restore it); records from before drivers were named: qemu. */
  readonly driver?: string
  /** Bytes on disk: state file plus the snapshot's disk layer. */
  readonly sizeBytes: number
}

export type Counter = "boxesCreated" | "boxesDestroyed" | "totalExecCalls"

export class StateStore extends Context.Service<StateStore, {
  readonly insert: (record: BoxRecord) => Effect.Effect<void, BoxStateError>
  readonly insertSnapshot: (record: SnapshotRecord) => Effect.Effect<void, BoxStateError>
  readonly findSnapshot: (idOrName: string) => Effect.Effect<SnapshotRecord | undefined>
  readonly listSnapshots: Effect.Effect<ReadonlyArray<SnapshotRecord>>
  /** False when the record was already gone. */
  readonly deleteSnapshot: (id: string) => Effect.Effect<boolean>
  /** Gives a snapshot another name, or none (a warm template set aside). */
  readonly renameSnapshot: (id: string, name: string | undefined) => Effect.Effect<void>
  readonly update: (id: string, change: BoxChange) => Effect.Effect<void>
  /**
   * Atomically marks a box that is not active as "starting" by `launcher`; false when another
   * process got there first (or the box is active or gone).
   */
  readonly claimStart: (id: string, launcher: ProcessRef) => Effect.Effect<boolean>
  /** Sets `change` only if the box's supervisor is still `supervisor` (a compare-and-set). */
  readonly updateIfSupervisor: (id: string, supervisor: ProcessRef | undefined, change: BoxChange) => Effect.Effect<boolean>
  readonly find: (idOrName: string) => Effect.Effect<BoxRecord | undefined>
  readonly list: Effect.Effect<ReadonlyArray<BoxRecord>>
  /** False when the record was already gone. */
  readonly delete: (id: string) => Effect.Effect<boolean>
  readonly increment: (counter: Counter) => Effect.Effect<void>
  readonly counters: Effect.Effect<Readonly<Record<Counter, number>>>
}>()("@boxlite/core/StateStore") {}

interface Row {
  id: string
  name: string | null
  status: BoxStatus
  image: string
  options: string
  run_config: string
  base: string
  created_at: number
  pid: number | null
  supervisor_pid: number | null
  supervisor_start: string | null
  launching: number
  ports: string
  booted: number
  reason: string | null
  layers: string
  snapshot: string | null
  restore: string | null
  driver: string
  disk_format: DiskFormat
}

const toRecord = (row: Row): BoxRecord => ({
  id: row.id,
  name: row.name ?? undefined,
  status: row.status,
  image: row.image,
  options: JSON.parse(row.options) as ResolvedBoxOptions,
  runConfig: JSON.parse(row.run_config) as RunConfig,
  base: row.base,
  createdAt: new Date(row.created_at),
  pid: row.pid ?? undefined,
  supervisor: row.supervisor_pid !== null && row.supervisor_start !== null ? { pid: row.supervisor_pid, startTime: row.supervisor_start } : undefined,
  launching: row.launching === 1,
  ports: JSON.parse(row.ports) as Array<Port>,
  booted: row.booted === 1,
  reason: row.reason ?? undefined,
  layers: JSON.parse(row.layers) as Array<string>,
  snapshot: row.snapshot ?? undefined,
  restore: row.restore === null ? undefined : JSON.parse(row.restore) as SavedState,
  driver: row.driver,
  diskFormat: row.disk_format
})

/** The columns of a change, in SQL: `supervisor` is two columns, arrays are JSON. */
const columnsOf = (change: BoxChange): Record<string, unknown> => {
  const columns: Record<string, unknown> = {}
  if ("status" in change) columns["status"] = change.status
  if ("pid" in change) columns["pid"] = change.pid ?? null
  if ("supervisor" in change) {
    columns["supervisor_pid"] = change.supervisor?.pid ?? null
    columns["supervisor_start"] = change.supervisor?.startTime ?? null
    // Only claimStart names a launcher; whoever sets the supervisor afterwards is none.
    columns["launching"] = 0
  }
  if ("ports" in change) columns["ports"] = JSON.stringify(change.ports)
  if ("booted" in change) columns["booted"] = change.booted ? 1 : 0
  if ("reason" in change) columns["reason"] = change.reason ?? null
  if ("restore" in change) columns["restore"] = change.restore ? JSON.stringify(change.restore) : null
  return columns
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS boxes (
    id TEXT PRIMARY KEY, name TEXT UNIQUE, status TEXT NOT NULL, image TEXT NOT NULL,
    options TEXT NOT NULL, run_config TEXT NOT NULL DEFAULT '{}', base TEXT NOT NULL,
    created_at INTEGER NOT NULL, pid INTEGER, supervisor_pid INTEGER, supervisor_start TEXT,
    ports TEXT NOT NULL DEFAULT '[]', booted INTEGER NOT NULL DEFAULT 0, reason TEXT);
  CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS snapshots (id TEXT PRIMARY KEY, name TEXT UNIQUE, created_at INTEGER NOT NULL, data TEXT NOT NULL);`

/** Columns added since the first release, for homes created by it. */
const ADDED_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ["base", "TEXT NOT NULL DEFAULT ''"],
  ["run_config", "TEXT NOT NULL DEFAULT '{}'"],
  ["supervisor_pid", "INTEGER"],
  ["supervisor_start", "TEXT"],
  ["ports", "TEXT NOT NULL DEFAULT '[]'"],
  ["booted", "INTEGER NOT NULL DEFAULT 0"],
  ["reason", "TEXT"],
  ["layers", "TEXT NOT NULL DEFAULT '[]'"],
  ["snapshot", "TEXT"],
  ["restore", "TEXT"],
  // Every box before drivers were named ran on QEMU.
  ["driver", "TEXT NOT NULL DEFAULT 'qemu'"],
  ["disk_format", "TEXT NOT NULL DEFAULT 'qcow2'"],
  ["launching", "INTEGER NOT NULL DEFAULT 0"]
]

export interface SqliteOptions {
  /**
   * Create the home and its database when missing (a runtime). A supervisor passes false: a
   * home deleted under it (its runtime closed and the home was cleaned up) must stay deleted.
   */
  readonly create: boolean
  /** The SQLite binding (tests run the store on each): by default node:sqlite where Node has it, else better-sqlite3. */
  readonly backend?: SqliteBackend
}

/**
 * Opens `<home>/boxlite.db` (home 0700, database 0600, see PrivateHome); the layer closes it.
 * A home of another user is InvalidOptions("homeDir"); a missing one (with `create: false`) or
 * an unreadable database, a StorageError.
 */
export const layerSqlite = (homeDir: string, options: SqliteOptions = { create: true }): Layer.Layer<StateStore, InvalidOptions | StorageError> =>
  Layer.effect(StateStore)(
    Effect.acquireRelease(
      Effect.gen(function*() {
        if (!(yield* secureHome(homeDir, options.create))) return yield* new StorageError({ message: `the home ${homeDir} does not exist (any more)` })
        return yield* Effect.try({
          try: () => {
            const file = path.join(homeDir, "boxlite.db")
            const db = openSqlite(file, options)
            immediateTransaction(db, () => {
              db.exec(SCHEMA)
              const present = new Set((db.prepare("PRAGMA table_info(boxes)").all() as Array<{ name: string }>).map((c) => c.name))
              for (const [column, type] of ADDED_COLUMNS) if (!present.has(column)) db.exec(`ALTER TABLE boxes ADD COLUMN ${column} ${type}`)
            })
            return db
          },
          catch: (e) => new StorageError({ message: `cannot open the state database of ${homeDir}: ${(e as Error).message}` })
        })
      }),
      (db) => Effect.sync(() => db.close())
    ).pipe(
      Effect.map((db) => {
        const insert = db.prepare(
          "INSERT INTO boxes (id, name, status, image, options, run_config, base, created_at, pid, supervisor_pid, supervisor_start, ports, booted, reason, layers, snapshot, restore, driver, disk_format) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        const claim = db.prepare(
          "UPDATE boxes SET status = 'starting', pid = NULL, reason = NULL, supervisor_pid = ?, supervisor_start = ?, launching = 1 WHERE id = ? AND status IN ('configured', 'stopped', 'suspended', 'failed')"
        )
        const insertSnapshot = db.prepare("INSERT INTO snapshots (id, name, created_at, data) VALUES (?, ?, ?, ?)")
        const snapshotByIdOrName = db.prepare("SELECT data FROM snapshots WHERE id = ? OR name = ?")
        const allSnapshots = db.prepare("SELECT data FROM snapshots ORDER BY created_at DESC, id DESC")
        const removeSnapshot = db.prepare("DELETE FROM snapshots WHERE id = ?")
        const snapshotById = db.prepare("SELECT data FROM snapshots WHERE id = ?")
        const renameStatement = db.prepare("UPDATE snapshots SET name = ?, data = ? WHERE id = ?")
        const toSnapshot = (row: { data: string }): SnapshotRecord => {
          const data = JSON.parse(row.data) as SnapshotRecord & { createdAt: string }
          return { ...data, createdAt: new Date(data.createdAt) }
        }
        const byIdOrName = db.prepare("SELECT * FROM boxes WHERE id = ? OR name = ?")
        const all = db.prepare("SELECT * FROM boxes ORDER BY created_at DESC, id DESC")
        const remove = db.prepare("DELETE FROM boxes WHERE id = ?")
        const increment = db.prepare("INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1")
        const counters = db.prepare("SELECT name, value FROM counters")
        const patch = (id: string, change: BoxChange, supervisor?: ProcessRef | null): boolean => {
          const columns = columnsOf(change)
          const names = Object.keys(columns)
          if (names.length === 0) return true
          let sql = `UPDATE boxes SET ${names.map((n) => `${n} = ?`).join(", ")} WHERE id = ?`
          const values = [...Object.values(columns) as Array<SqlValue>, id]
          if (supervisor === null) sql += " AND supervisor_pid IS NULL"
          else if (supervisor !== undefined) {
            sql += " AND supervisor_pid = ? AND supervisor_start = ?"
            values.push(supervisor.pid, supervisor.startTime)
          }
          return Number(db.prepare(sql).run(...values).changes) === 1
        }
        return StateStore.of({
          insert: (r) =>
            Effect.try({
              try: () =>
                void insert.run(
                  r.id, r.name ?? null, r.status, r.image, JSON.stringify(r.options), JSON.stringify(r.runConfig), r.base,
                  r.createdAt.getTime(), r.pid ?? null, r.supervisor?.pid ?? null, r.supervisor?.startTime ?? null,
                  JSON.stringify(r.ports), r.booted ? 1 : 0, r.reason ?? null, JSON.stringify(r.layers ?? []), r.snapshot ?? null,
                  r.restore ? JSON.stringify(r.restore) : null, r.driver, r.diskFormat
                ),
              catch: (e) =>
                new BoxStateError(String(e).includes("UNIQUE") && r.name !== undefined ? `a box named "${r.name}" already exists` : `could not record box ${r.id}: ${String(e)}`)
            }),
          insertSnapshot: (r) =>
            Effect.try({
              try: () => void insertSnapshot.run(r.id, r.name ?? null, r.createdAt.getTime(), JSON.stringify(r)),
              catch: (e) =>
                new BoxStateError(String(e).includes("UNIQUE") && r.name !== undefined ? `a snapshot named "${r.name}" already exists` : `could not record snapshot ${r.id}: ${String(e)}`)
            }),
          findSnapshot: (idOrName) =>
            Effect.sync(() => {
              const row = snapshotByIdOrName.get(idOrName, idOrName) as { data: string } | undefined
              return row ? toSnapshot(row) : undefined
            }),
          listSnapshots: Effect.sync(() => (allSnapshots.all() as Array<{ data: string }>).map(toSnapshot)),
          deleteSnapshot: (id) => Effect.sync(() => Number(removeSnapshot.run(id).changes) === 1),
          renameSnapshot: (id, name) =>
            Effect.sync(() =>
              immediateTransaction(db, () => {
                const row = snapshotById.get(id) as { data: string } | undefined
                if (!row) return
                const data = { ...(JSON.parse(row.data) as Record<string, unknown>), name }
                renameStatement.run(name ?? null, JSON.stringify(data), id)
              })
            ),
          update: (id, change) => Effect.sync(() => void patch(id, change)),
          claimStart: (id, launcher) => Effect.sync(() => Number(claim.run(launcher.pid, launcher.startTime, id).changes) === 1),
          updateIfSupervisor: (id, supervisor, change) => Effect.sync(() => patch(id, change, supervisor ?? null)),
          find: (idOrName) =>
            Effect.sync(() => {
              const row = byIdOrName.get(idOrName, idOrName) as Row | undefined
              return row ? toRecord(row) : undefined
            }),
          list: Effect.sync(() => (all.all() as Array<Row>).map(toRecord)),
          delete: (id) => Effect.sync(() => Number(remove.run(id).changes) === 1),
          increment: (counter) => Effect.sync(() => void increment.run(counter)),
          counters: Effect.sync(() => {
            const values = { boxesCreated: 0, boxesDestroyed: 0, totalExecCalls: 0 }
            for (const row of counters.all() as Array<{ name: Counter; value: number }>) values[row.name] = row.value
            return values
          })
        })
      })
    )
  )

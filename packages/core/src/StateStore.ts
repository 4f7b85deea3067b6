/**
 * Durable state of a home directory: the boxes and the runtime counters, in SQLite (WAL mode),
 * so it survives a killed process and can be shared by several processes.
 */
import Database from "better-sqlite3"
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { BoxStateError } from "./Errors.js"
import type { ResolvedBoxOptions } from "./Options.js"

export type BoxStatus = "configured" | "starting" | "running" | "stopping" | "stopped" | "failed"

export interface BoxRecord {
  readonly id: string
  readonly name: string | undefined
  readonly status: BoxStatus
  readonly image: string
  readonly options: ResolvedBoxOptions
  /** The image's ext4 base the box disk is layered on. */
  readonly base: string
  readonly createdAt: Date
  /** Process id of the VMM while the box runs. */
  readonly pid: number | undefined
}

export type Counter = "boxesCreated" | "boxesDestroyed" | "totalExecCalls"

export class StateStore extends Context.Service<StateStore, {
  readonly insert: (record: BoxRecord) => Effect.Effect<void, BoxStateError>
  readonly update: (id: string, change: { status: BoxStatus; pid?: number | undefined }) => Effect.Effect<void>
  readonly find: (idOrName: string) => Effect.Effect<BoxRecord | undefined>
  readonly list: Effect.Effect<ReadonlyArray<BoxRecord>>
  readonly delete: (id: string) => Effect.Effect<void>
  readonly increment: (counter: Counter) => Effect.Effect<void>
  readonly counters: Effect.Effect<Readonly<Record<Counter, number>>>
}>()("@boxlite/core/StateStore") {}

interface Row {
  id: string
  name: string | null
  status: BoxStatus
  image: string
  options: string
  base: string
  created_at: number
  pid: number | null
}

const toRecord = (row: Row): BoxRecord => ({
  id: row.id,
  name: row.name ?? undefined,
  status: row.status,
  image: row.image,
  options: JSON.parse(row.options) as ResolvedBoxOptions,
  base: row.base,
  createdAt: new Date(row.created_at),
  pid: row.pid ?? undefined
})

/** Opens (creating if needed) `<home>/boxlite.db`; the layer closes it. */
export const layerSqlite = (homeDir: string): Layer.Layer<StateStore> =>
  Layer.effect(StateStore)(
    Effect.acquireRelease(
      Effect.sync(() => {
        fs.mkdirSync(homeDir, { recursive: true, mode: 0o700 })
        const db = new Database(path.join(homeDir, "boxlite.db"))
        db.pragma("journal_mode = WAL")
        db.pragma("busy_timeout = 5000")
        db.exec(`
          CREATE TABLE IF NOT EXISTS boxes (
            id TEXT PRIMARY KEY, name TEXT UNIQUE, status TEXT NOT NULL, image TEXT NOT NULL,
            options TEXT NOT NULL, base TEXT NOT NULL, created_at INTEGER NOT NULL, pid INTEGER);
          CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);`)
        return db
      }),
      (db) => Effect.sync(() => db.close())
    ).pipe(
      Effect.map((db) => {
        const insert = db.prepare("INSERT INTO boxes (id, name, status, image, options, base, created_at, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        const update = db.prepare("UPDATE boxes SET status = ?, pid = ? WHERE id = ?")
        const byIdOrName = db.prepare("SELECT * FROM boxes WHERE id = ? OR name = ?")
        const all = db.prepare("SELECT * FROM boxes ORDER BY created_at, id")
        const remove = db.prepare("DELETE FROM boxes WHERE id = ?")
        const increment = db.prepare("INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1")
        const counters = db.prepare("SELECT name, value FROM counters")
        return StateStore.of({
          insert: (r) =>
            Effect.try({
              try: () => void insert.run(r.id, r.name ?? null, r.status, r.image, JSON.stringify(r.options), r.base, r.createdAt.getTime(), r.pid ?? null),
              catch: (e) =>
                new BoxStateError(String(e).includes("UNIQUE") && r.name !== undefined ? `a box named "${r.name}" already exists` : `could not record box ${r.id}: ${String(e)}`)
            }),
          update: (id, change) => Effect.sync(() => void update.run(change.status, change.pid ?? null, id)),
          find: (idOrName) => Effect.sync(() => {
            const row = byIdOrName.get(idOrName, idOrName) as Row | undefined
            return row ? toRecord(row) : undefined
          }),
          list: Effect.sync(() => (all.all() as Array<Row>).map(toRecord)),
          delete: (id) => Effect.sync(() => void remove.run(id)),
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

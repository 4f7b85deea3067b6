/**
 * The SQLite binding under the state store, chosen by the Node that runs it: Node's own
 * `node:sqlite` where it has one (22.13+ and 24; 22.5+ with --experimental-sqlite), else the
 * native better-sqlite3. A native module is built for one Node ABI: better-sqlite3 installed by
 * Node 20 fails to load on 24 (ERR_DLOPEN_FAILED), so it is loaded only when needed.
 */
import * as fs from "node:fs"
// A namespace import: the supervisor bundle's banner declares its own `createRequire`.
import * as nodeModule from "node:module"

export type SqliteBackend = "node:sqlite" | "better-sqlite3"

export type SqlValue = string | number | bigint | null

/** The part of a binding the store uses: both bindings' statements and databases have it. */
export interface SqliteStatement {
  run(...params: Array<SqlValue>): { readonly changes: number | bigint }
  get(...params: Array<SqlValue>): unknown
  all(...params: Array<SqlValue>): Array<unknown>
}

export interface SqliteDatabase {
  exec(sql: string): void
  prepare(sql: string): SqliteStatement
  close(): void
}

type Open = (file: string) => SqliteDatabase

/** A binding, or why it does not load. */
type Loaded = Open | Error

const loadNodeSqlite = (): Loaded => {
  // process.getBuiltinModule: Node >= 20.16 / 22.3; undefined where node:sqlite is absent or flagged off.
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule
  const absent = new Error("this Node has no node:sqlite (it needs >= 22.13, or 22.5 with --experimental-sqlite)")
  if (getBuiltin === undefined) return absent
  // Node 22 warns that node:sqlite is experimental when it loads: a library's users did not ask
  // for it, so that one warning is dropped (Node 24 does not emit it).
  const emitWarning = process.emitWarning
  process.emitWarning = ((warning: string | Error, ...rest: Array<unknown>) => {
    if (!String(warning).includes("SQLite is an experimental feature")) {
      ;(emitWarning as (...args: Array<unknown>) => void).call(process, warning, ...rest)
    }
  }) as typeof process.emitWarning
  try {
    const sqlite = getBuiltin.call(process, "node:sqlite") as
      | { DatabaseSync: new(file: string) => SqliteDatabase }
      | undefined
    return sqlite ? (file) => new sqlite.DatabaseSync(file) : absent
  } catch (e) {
    return e as Error
  } finally {
    process.emitWarning = emitWarning
  }
}

const loadBetterSqlite3 = (): Loaded => {
  try {
    const Database = nodeModule.createRequire(import.meta.url)("better-sqlite3") as new(file: string, options: { fileMustExist: boolean }) => SqliteDatabase
    // Loading the module does not load its native part: opening a database does.
    new Database(":memory:", { fileMustExist: false }).close()
    return (file) => new Database(file, { fileMustExist: true })
  } catch (e) {
    return e as Error
  }
}

const loaded = new Map<SqliteBackend, Loaded>()
const load = (backend: SqliteBackend): Loaded => {
  let binding = loaded.get(backend)
  if (binding === undefined) loaded.set(backend, binding = backend === "node:sqlite" ? loadNodeSqlite() : loadBetterSqlite3())
  return binding
}

/** The bindings this Node can load, preferred first. */
export const availableBackends = (): ReadonlyArray<SqliteBackend> =>
  (["node:sqlite", "better-sqlite3"] as const).filter((backend) => !(load(backend) instanceof Error))

/**
 * Opens the database file with `backend`, or the first binding this Node can load, set up the
 * same on either (busy timeout, WAL, synchronous). With `create`,
 * a missing file is created 0600 first (so not one write lands in a readable file), once a binding
 * has loaded; without, a missing file throws (neither binding creates it: a deleted home stays
 * deleted). Throws too when no binding loads.
 */
export const openSqlite = (file: string, options: { readonly create?: boolean; readonly backend?: SqliteBackend | undefined } = {}): SqliteDatabase => {
  const { backend, create = false } = options
  // node:sqlite first: better-sqlite3 is not even loaded where Node has its own.
  const preferred = load(backend ?? "node:sqlite")
  const open = backend === undefined && preferred instanceof Error ? load("better-sqlite3") : preferred
  if (open instanceof Error) {
    // On one line: better-sqlite3's dlopen message (on several) names the ABI it was built for.
    const why = open.message.replace(/\s*\n\s*/g, " ")
    throw new Error(
      backend === undefined
        ? `no SQLite binding loads on Node ${process.versions.node}: node:sqlite needs Node >= 22.13, and better-sqlite3 (run \`npm rebuild better-sqlite3\` for this Node): ${why}`
        : `the SQLite binding ${backend} does not load on Node ${process.versions.node}: ${why}`
    )
  }
  if (create) fs.closeSync(fs.openSync(file, "a", 0o600))
  // node:sqlite has no fileMustExist: it would create the file.
  else if (!fs.existsSync(file)) throw new Error(`unable to open database file ${file}: it does not exist`)
  const db = open(file)
  try {
    // Many processes share a home: wait for a writer rather than fail with SQLITE_BUSY.
    db.exec("PRAGMA busy_timeout = 30000")
    db.exec("PRAGMA journal_mode = WAL")
    // better-sqlite3 is built with WAL's synchronous at NORMAL, Node's SQLite at FULL (an fsync
    // per commit: ~70x slower here). NORMAL on both: a crash of the process loses nothing, a
    // power cut may lose the last commits but never corrupts.
    db.exec("PRAGMA synchronous = NORMAL")
    return db
  } catch (e) {
    db.close()
    throw e
  }
}

/** Runs `body` in a BEGIN IMMEDIATE transaction (the write lock taken first: no upgrade deadlock), rolled back if it throws. */
export const immediateTransaction = <A>(db: SqliteDatabase, body: () => A): A => {
  db.exec("BEGIN IMMEDIATE")
  try {
    const result = body()
    db.exec("COMMIT")
    return result
  } catch (e) {
    // SQLite may have rolled back already (a full disk, an I/O error): `e` is the error to report.
    try {
      db.exec("ROLLBACK")
    } catch {}
    throw e
  }
}

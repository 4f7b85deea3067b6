/**
 * A home holds secrets (box env values in boxlite.db, disks, logs): only its owner may read
 * any of it. Modes are set at every open, whatever an earlier version, a restored backup or
 * a 022 umask left: the home 0700, its directories 0700, its files 0600. A home that belongs
 * to another user is refused, never chmod-ed: BoxLite must not change someone else's files.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { InvalidOptions } from "../Errors.js"
import { boxesDirOf } from "./BoxFiles.js"

/** The state database and the files SQLite keeps beside it in WAL mode. */
export const databaseFilesOf = (homeDir: string): ReadonlyArray<string> => {
  const db = path.join(homeDir, "boxlite.db")
  return [db, `${db}-wal`, `${db}-shm`]
}

const chmod = (file: string, mode: number): Effect.Effect<void, InvalidOptions> =>
  Effect.try({
    try: () => fs.chmodSync(file, mode),
    catch: (e) => new InvalidOptions("homeDir", `cannot make ${file} private: ${(e as Error).message}`)
  })

const notOurs = (file: string, uid: number, owner: number) =>
  new InvalidOptions(
    "homeDir",
    `${file} belongs to uid ${owner}, not to this user (uid ${uid}); BoxLite keeps secrets there and does not change another user's files: use a home of your own`
  )

/** `mode` on `file` if it exists and is ours; fails on a file of another user. */
const restrict = (file: string, mode: number): Effect.Effect<void, InvalidOptions> =>
  Effect.suspend(() => {
    let stat: fs.Stats
    try {
      stat = fs.lstatSync(file)
    } catch {
      return Effect.void
    }
    // A symlink planted in the home is not followed: its target is not ours to change.
    if (stat.isSymbolicLink()) return Effect.void
    const uid = process.getuid?.()
    if (uid !== undefined && stat.uid !== uid) return Effect.fail(notOurs(file, uid, stat.uid))
    return (stat.mode & 0o777) === mode ? Effect.void : chmod(file, mode)
  })

/**
 * Makes `homeDir` (created when `create`, else it must exist) and its state database private.
 * False when the home does not exist and `create` is false: a supervisor never makes a home.
 */
export const secureHome = (homeDir: string, create: boolean): Effect.Effect<boolean, InvalidOptions> =>
  Effect.gen(function*() {
    if (create) {
      yield* Effect.try({
        try: () => fs.mkdirSync(homeDir, { recursive: true, mode: 0o700 }),
        catch: (e) => new InvalidOptions("homeDir", `cannot create ${homeDir}: ${(e as Error).message}`)
      })
    }
    const stat = fs.statSync(homeDir, { throwIfNoEntry: false })
    if (!stat) return false
    if (!stat.isDirectory()) return yield* new InvalidOptions("homeDir", `${homeDir} is not a directory`)
    const uid = process.getuid?.()
    if (uid !== undefined && stat.uid !== uid) return yield* notOurs(homeDir, uid, stat.uid)
    if ((stat.mode & 0o777) !== 0o700) yield* chmod(homeDir, 0o700)
    // SQLite creates the -wal and -shm files with the database's mode, so 0600 carries over.
    for (const file of databaseFilesOf(homeDir)) yield* restrict(file, 0o600)
    return true
  })

/**
 * Inside the (private) home, a file that is not ours, or cannot be changed, is logged and left:
 * it is already out of other users' reach, and a helper running as another uid (the VMM jail)
 * may own files in a box directory.
 */
const restrictOrWarn = (file: string, mode: number): Effect.Effect<void> =>
  Effect.catch(restrict(file, mode), (e) => Effect.logWarning(e.message))

/** Every file directly in `dir` 0600 (a box directory: disk, console and supervisor logs, socket). */
export const restrictFiles = (dir: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    let entries: Array<fs.Dirent>
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch {
      return Effect.void
    }
    return Effect.forEach(entries.filter((e) => e.isFile() || e.isSocket()), (e) => restrictOrWarn(path.join(dir, e.name), 0o600), { discard: true })
  })

/**
 * The rest of the home, for homes made by earlier versions: `boxes/` and every box directory
 * 0700 with its files 0600, the image store 0700.
 */
export const secureTree = (homeDir: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const boxes = boxesDirOf(homeDir)
    yield* restrictOrWarn(boxes, 0o700)
    yield* restrictOrWarn(path.join(homeDir, "images"), 0o700)
    let entries: Array<fs.Dirent> = []
    try {
      entries = fs.readdirSync(boxes, { withFileTypes: true })
    } catch {
      // No boxes yet.
    }
    for (const entry of entries.filter((e) => e.isDirectory())) {
      const dir = path.join(boxes, entry.name)
      yield* restrictOrWarn(dir, 0o700)
      yield* restrictFiles(dir)
    }
  })

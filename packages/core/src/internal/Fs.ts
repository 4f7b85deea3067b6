/**
 * The file system calls of the runtime as Effects whose failures are typed StorageErrors (a
 * full disk, a permission taken away), not defects. Cleanups that may fail without harm say so
 * where they are used (`orWarn`), instead of dropping the error unseen.
 */
import { Effect } from "effect"
import type { Stats } from "node:fs"
import * as fs from "node:fs/promises"
import { StorageError } from "../Errors.js"

const isMissing = (e: unknown) => (e as NodeJS.ErrnoException).code === "ENOENT"

export const tryFs = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, StorageError> =>
  Effect.tryPromise({ try: f, catch: (e) => new StorageError({ message: `${what}: ${(e as Error).message}` }) })

/** Removes a file or a tree; one that is not there is no failure. */
export const removeTree = (target: string): Effect.Effect<void, StorageError> =>
  tryFs(`cannot remove ${target}`, () => fs.rm(target, { recursive: true, force: true }))

/** The entries of a directory; none when it does not exist. */
export const readDirIfExists = (dir: string): Effect.Effect<ReadonlyArray<string>, StorageError> =>
  tryFs(`cannot read ${dir}`, () => fs.readdir(dir).catch((e: unknown) => (isMissing(e) ? [] : Promise.reject(e))))

/** A path's stat; undefined when it does not exist. */
export const statIfExists = (target: string): Effect.Effect<Stats | undefined, StorageError> =>
  tryFs(`cannot read ${target}`, () => fs.stat(target).catch((e: unknown) => (isMissing(e) ? undefined : Promise.reject(e))))

/** For cleanups whose failure leaves only litter (collected later): logged, not raised. */
export const orWarn = <A>(effect: Effect.Effect<A, StorageError>): Effect.Effect<A | undefined> =>
  Effect.catch(effect, (e) => Effect.as(Effect.logWarning(e.message), undefined))

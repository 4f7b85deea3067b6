/**
 * Where a box's files are: its directory under the home, and the supervisor's socket and log
 * in it. Both the supervisor and its clients compute them from the home and the box id.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { DiskFormat } from "@boxlite/driver"
import { Effect } from "effect"
import { InvalidOptions } from "../Errors.js"
import type { StateStore } from "../StateStore.js"

/** Where the per-image ext4 bases of a home directory live. */
export const rootfsDirOf = (homeDir: string): string => path.join(homeDir, "images", "rootfs")

export const boxesDirOf = (homeDir: string): string => path.join(homeDir, "boxes")

/**
 * Deletes a box for good: its directory, then its record. What cannot be deleted now (EBUSY)
 * goes with the orphaned directories at the next open. Two processes may remove one box at
 * once: only the one that deleted the record counts it.
 */
export const removeBox = (homeDir: string, store: StateStore["Service"], id: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const dir = boxDirOf(homeDir, id)
    yield* Effect.tryPromise(() => fs.promises.rm(dir, { recursive: true, force: true })).pipe(
      Effect.catch((e) => Effect.logWarning(`cannot remove ${dir}: ${e.message}`))
    )
    if (yield* store.delete(id)) yield* store.increment("boxesDestroyed")
  })

export const boxDirOf = (homeDir: string, id: string): string => path.join(boxesDirOf(homeDir), id)

/** A box's root disk in its directory (`dir`), by format. */
export const rootDiskOf = (dir: string, format: DiskFormat): string => path.join(dir, format === "raw" ? "disk.raw" : "disk.qcow2")

/** A suspended box's memory and device state, in its directory. */
export const suspendStateOf = (homeDir: string, id: string): string => path.join(boxDirOf(homeDir, id), "suspended.state")

export const snapshotsDirOf = (homeDir: string): string => path.join(homeDir, "snapshots")

/** A snapshot's directory: `memory.state` and `disk.qcow2`. */
export const snapshotDirOf = (homeDir: string, id: string): string => path.join(snapshotsDirOf(homeDir), id)

/** sun_path holds 108 bytes on Linux (104 on macOS); a longer path cannot be bound. */
const MAX_SOCKET_PATH = 100

/**
 * The supervisor's socket: in the box directory (mode 0700, so only the owner reaches it);
 * when the home is too deep for a socket path, in a per-user directory of the temp dir.
 */
export const supervisorSocketOf = (homeDir: string, id: string): string => {
  const inBox = path.join(boxDirOf(homeDir, id), "supervisor.sock")
  if (Buffer.byteLength(inBox) <= MAX_SOCKET_PATH) return inBox
  const uid = process.getuid?.() ?? 0
  const dir = path.join(os.tmpdir(), `boxlite-${uid}`)
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  // The temp dir is shared: a directory someone else made (or can write) must not hold our sockets.
  const stat = fs.statSync(dir)
  if (stat.uid !== uid || (stat.mode & 0o077) !== 0) {
    throw new InvalidOptions("homeDir", `${dir} is not a private directory of this user, and ${homeDir} is too deep for a socket path in it: use a shorter home`)
  }
  return path.join(dir, `${id}.sock`)
}

export const supervisorLogOf = (homeDir: string, id: string): string => path.join(boxDirOf(homeDir, id), "supervisor.log")


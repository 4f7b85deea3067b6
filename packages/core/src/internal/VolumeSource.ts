/**
 * Volume sources are opened without following symlinks: a guest that writes in one volume must
 * not turn a path that another volume (or box) shares into a way to the host's other files.
 * The user's own symlinks are resolved once, at create (they are the user's intent); from then
 * on the box serves the object it was created with, or does not start.
 */
import * as fs from "node:fs"
import type { VolumeSource } from "../Options.js"

/** O_PATH, the same on x86_64 and aarch64; Node passes numeric open flags through (adding O_CLOEXEC). */
const O_PATH = 0o10000000

/**
 * macOS 11+: open(2) fails with ELOOP if any component of the path is a symlink. (Only there:
 * Linux ignores unknown flags, so it must never be passed on Linux.) Untested by CI, which is Linux.
 */
const O_NOFOLLOW_ANY = 0x20000000

/**
 * A descriptor of `absolute` opened without following a symlink in any component: on Linux an
 * O_PATH descriptor opened one component at a time through the previous one's; on macOS
 * read-only with O_NOFOLLOW_ANY (it has no O_PATH and no /proc).
 */
export const openNoFollow = (absolute: string): number => {
  if (absolute.split("/").some((name) => name === "." || name === "..")) throw new Error(`${absolute} is not a resolved path`)
  if (process.platform === "darwin") {
    try {
      return fs.openSync(absolute, fs.constants.O_RDONLY | O_NOFOLLOW_ANY)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ELOOP") throw new Error(`a component of ${absolute} is a symbolic link`)
      throw e
    }
  }
  let fd = fs.openSync("/", O_PATH | fs.constants.O_DIRECTORY)
  let walked = ""
  try {
    for (const name of absolute.split("/").filter(Boolean)) {
      walked += `/${name}`
      const next = fs.openSync(`/proc/self/fd/${fd}/${name}`, O_PATH | fs.constants.O_NOFOLLOW)
      fs.closeSync(fd)
      fd = next
      if (fs.fstatSync(fd).isSymbolicLink()) throw new Error(`${walked} is a symbolic link`)
    }
    return fd
  } catch (e) {
    fs.closeSync(fd)
    throw e
  }
}

const identityOf = (fd: number): Omit<VolumeSource, "path"> | undefined => {
  const stat = fs.fstatSync(fd, { bigint: true })
  const kind = stat.isDirectory() ? "directory" : stat.isFile() ? "file" : undefined
  return kind && { kind, dev: String(stat.dev), ino: String(stat.ino), birth: String(stat.birthtimeNs) }
}

/** What a volume's host path is at create: its symlinks resolved, and the identity of what it names. */
export const resolveVolumeSource = (hostPath: string): VolumeSource => {
  const resolved = fs.realpathSync(hostPath)
  const fd = openNoFollow(resolved)
  try {
    const identity = identityOf(fd)
    if (!identity) throw new Error(`${hostPath} is neither a directory nor a regular file`)
    return { path: resolved, ...identity }
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * A descriptor (O_PATH on Linux) of the source a volume was created with; throws saying what changed if
 * its path no longer leads, without symlinks, to that same directory or file.
 */
export const openVolumeSource = (source: VolumeSource): number => {
  const fd = openNoFollow(source.path)
  const now = identityOf(fd)
  if (now?.kind !== source.kind || now.dev !== source.dev || now.ino !== source.ino || now.birth !== source.birth) {
    fs.closeSync(fd)
    throw new Error(`${source.path} is no longer the ${source.kind} the box was created with (replaced or moved)`)
  }
  return fd
}

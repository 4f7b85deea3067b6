/**
 * The host's side of copies (PROTOCOL.md, "Copying files"): host trees become tar archives for
 * COPY_IN, and archives from the guest (COPY_OUT) become host files. The guest is hostile here:
 * its archive is extracted by node-tar (strict: no absolute or `..` names, no writing through
 * symlinks) into a private staging directory beside the destination, with our own rules on top
 * (one top entry, no hard links, devices or fifos, no setuid/setgid, owned by the invoking user,
 * bounded bytes and entries), then moved into place as `cp` would; a failure leaves nothing.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { create as createTar, Header, Parser, type ReadEntry, Unpack } from "tar"
import { CopyError, PathNotFound } from "../Errors.js"

/** What a transfer reads from (COPY_OUT) or writes to (COPY_IN); a CopyChannel in practice. */
export interface ArchiveSource {
  /** The next chunk of the archive, null at its end; throws when the copy failed. */
  read(): Promise<Uint8Array | null>
  /** Stop the copy in the guest. */
  cancel(): void
}
export interface ArchiveSink {
  write(bytes: Uint8Array): Promise<void>
  end(): void
  cancel(): void
}

export interface Limits {
  readonly maxBytes: number
  readonly maxEntries: number
}

/** node-tar sniffs compression and would inflate a bomb: the guest must send a plain archive. */
const COMPRESSED = [Buffer.from([0x1f, 0x8b]), Buffer.from([0x28, 0xb5, 0x2f, 0xfd])]
const TAR_BLOCK = 512
/** Reads of host files while packing: bounds what one chunk holds in memory. */
const READ_SIZE = 256 * 1024

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code

const lstatOrUndefined = async (p: string): Promise<fs.Stats | undefined> => {
  try {
    return await fs.promises.lstat(p)
  } catch (e) {
    if (errno(e) === "ENOENT") return undefined
    throw e
  }
}

// ---- host -> guest ----

/**
 * Streams `hostPath` (a file, symlink or tree; symlinks are archived as links, never followed)
 * into `sink`. Devices, fifos and sockets are refused before anything of them is read.
 */
export const packInto = async (hostPath: string, sink: ArchiveSink): Promise<void> => {
  const absolute = path.resolve(hostPath)
  const top = await lstatOrUndefined(absolute)
  if (!top) throw new PathNotFound(hostPath, "host")
  let refused: CopyError | undefined
  const special = (stat: fs.Stats) => !stat.isFile() && !stat.isDirectory() && !stat.isSymbolicLink()
  if (special(top)) throw new CopyError(hostPath, `${hostPath} is not a regular file, directory or symlink: it is not copied`)
  const pack = createTar({
    cwd: path.dirname(absolute),
    portable: true,
    follow: false,
    maxReadSize: READ_SIZE,
    filter: (p, stat) => {
      if (!("isFile" in stat) || !special(stat)) return true
      refused ??= new CopyError(hostPath, `${path.join(path.dirname(absolute), p)} is not a regular file, directory or symlink: it is not copied`)
      return false
    }
    // "./": a name starting with "@" would otherwise be read as an archive to append.
  }, [`./${path.basename(absolute)}`])
  let failure: unknown
  pack.on("error", (e: unknown) => (failure ??= e))
  try {
    for await (const chunk of pack as AsyncIterable<Uint8Array>) {
      if (refused) break
      await sink.write(chunk)
    }
    if (failure !== undefined) throw failure
    if (refused) throw refused
  } catch (e) {
    sink.cancel()
    // The sink's own failures (the guest's answer) go up as they are, for the caller to map.
    throw e === failure ? new CopyError(hostPath, `copying ${hostPath}: ${(e as Error).message}`) : e
  }
  sink.end()
}

/** The archive of one file, for writeFile; the guest names it (exact copy), so its name is a placeholder. */
export const singleFileArchive = (data: Uint8Array, mode: number): Array<Uint8Array> => {
  const header = new Header({ path: "file", mode, size: data.length, type: "File", mtime: new Date() })
  header.encode()
  const padding = (TAR_BLOCK - (data.length % TAR_BLOCK)) % TAR_BLOCK
  return [header.block!, data, new Uint8Array(padding + 2 * TAR_BLOCK)]
}

// ---- guest -> host ----

/** Resolves at the first of `events` (or after `ms`): a parser that met an error may never finish or drain. */
const firstOf = (parser: Parser, events: ReadonlyArray<string>, ms?: number): Promise<void> =>
  new Promise<void>((resolve) => {
    for (const event of events) parser.once(event, () => resolve())
    if (ms !== undefined) setTimeout(resolve, ms).unref()
  })

/**
 * Feeds the guest's archive of `guestPath` to `parser` with backpressure, counting it against
 * `maxBytes`; `problem()` is checked between chunks so a refused entry stops the copy at once.
 */
const feed = async (
  source: ArchiveSource,
  parser: Parser,
  limits: Limits,
  guestPath: string,
  label: string,
  problem: () => unknown
): Promise<void> => {
  try {
    await feedAll(source, parser, limits, guestPath, label, problem)
  } finally {
    // Its pending file operations end first, so that the staging directory can go after it.
    const ended = firstOf(parser, ["finish", "end", "close", "abort"], 5000)
    parser.end()
    await ended
  }
  const seen = problem()
  if (seen) throw seen
}

const feedAll = async (
  source: ArchiveSource,
  parser: Parser,
  limits: Limits,
  guestPath: string,
  label: string,
  problem: () => unknown
): Promise<void> => {
  let received = 0
  let head = Buffer.alloc(0)
  for (let chunk = await source.read(); chunk !== null; chunk = await source.read()) {
    received += chunk.length
    if (received > limits.maxBytes) throw new CopyError(guestPath, `${label}: the box sent more than maxBytes (${limits.maxBytes} bytes); raise the limit with { maxBytes }`)
    let bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
    if (head.length < 4) {
      head = Buffer.concat([head, bytes])
      if (head.length < 4) continue
      if (COMPRESSED.some((magic) => head.subarray(0, magic.length).equals(magic))) throw new CopyError(guestPath, `${label}: the box sent a compressed archive`)
      bytes = head
    }
    const more = parser.write(bytes)
    const seen = problem()
    if (seen) throw seen
    if (!more) await firstOf(parser, ["drain", "abort", "error", "close"])
  }
  if (head.length > 0 && head.length < 4) parser.write(head)
}

/** Which entry types a hostile archive may carry: hard links, devices and fifos never. */
const ALLOWED = new Set(["File", "OldFile", "ContiguousFile", "Directory", "SymbolicLink"])

/**
 * Where a copy of `name` lands for `hostPath`, as cp: inside `hostPath` when it is a directory,
 * else `hostPath` itself, whose parent must exist. Unlike cp, a symlink at `hostPath` is not
 * followed (it may be one a guest made in an earlier copy): it is replaced by a file, and a
 * directory is refused. A trailing "/" ("dir/") asks to follow it into its directory.
 */
export const destinationOf = async (hostPath: string, name: string): Promise<string> => {
  const absolute = path.resolve(hostPath)
  const stat = await (hostPath.endsWith("/") ? fs.promises.stat(absolute) : fs.promises.lstat(absolute)).catch(() => undefined)
  if (stat?.isDirectory()) return path.join(absolute, name)
  if (hostPath.endsWith("/")) throw new PathNotFound(hostPath, "host", `host path ${hostPath} is not an existing directory`)
  const parent = path.dirname(absolute)
  const parentStat = await fs.promises.stat(parent).catch(() => undefined)
  if (!parentStat?.isDirectory()) throw new PathNotFound(parent, "host", `host path ${parent} (the parent of ${hostPath}) is not an existing directory`)
  return absolute
}

/**
 * Extracts the archive of guest `guestPath` from `source` to `target` (from destinationOf).
 * Files and directories get the archive's permission bits without setuid, setgid or sticky,
 * and belong to the invoking user. Existing files and symlinks at a destination are replaced
 * (never written through), existing directories merged into; a directory onto a non-directory
 * or the reverse is refused before anything moves.
 */
export const extractFrom = async (source: ArchiveSource, guestPath: string, target: string, limits: Limits): Promise<void> => {
  const name = path.posix.basename(guestPath)
  const staging = await fs.promises.mkdtemp(path.join(path.dirname(target), ".boxlite-copy-"))
  try {
    const modes = new Map<string, number>()
    const links = new Map<string, string>()
    let problem: CopyError | Error | undefined
    let entries = 0
    let contentBytes = 0
    const refuse = (message: string) => {
      problem ??= new CopyError(guestPath, `copy of ${guestPath}: ${message}`)
      return false
    }
    const unpack = new Unpack({
      cwd: staging,
      strict: true,
      preserveOwner: false,
      unlink: true,
      maxMetaEntrySize: 64 * 1024,
      filter: (entryPath: string, entry: ReadEntry | fs.Stats) => {
        if (problem) return false
        const e = entry as ReadEntry
        if (++entries > limits.maxEntries) return refuse(`more than maxEntries (${limits.maxEntries}) entries; raise the limit with { maxEntries }`)
        // Decompressed or not, what lands on disk counts against maxBytes too.
        contentBytes += TAR_BLOCK + (e.size ?? 0)
        if (contentBytes > limits.maxBytes) return refuse(`more than maxBytes (${limits.maxBytes} bytes); raise the limit with { maxBytes }`)
        if (!ALLOWED.has(e.type)) return refuse(`the box sent ${entryPath} of type ${e.type}, which is not copied`)
        const clean = entryPath.replace(/\/+$/, "")
        if (clean !== name && !clean.startsWith(`${name}/`)) return refuse(`the box sent ${entryPath}, outside ${name}`)
        if (clean.split("/").some((part) => part === ".." || part === "." || part === "")) return refuse(`the box sent an unsafe name: ${entryPath}`)
        if (e.type === "SymbolicLink") {
          // node-tar would rewrite an absolute target and refuse one that leaves the tree: a
          // placeholder goes in, the real target once nothing more is written (restoreLinks).
          links.set(clean, String(e.linkpath ?? ""))
          e.linkpath = LINK_PLACEHOLDER
        } else {
          modes.set(clean.slice(name.length + 1), (e.mode ?? 0o644) & 0o777)
          // Owner-writable while extracting; the real modes are set once everything is in.
          e.mode = e.type === "Directory" ? 0o700 : 0o600
        }
        return true
      }
    })
    unpack.on("error", (e: Error) => (problem ??= new CopyError(guestPath, `copy of ${guestPath}: ${e.message}`)))
    await feed(source, unpack, limits, guestPath, `copy of ${guestPath}`, () => problem)
    const staged = path.join(staging, name)
    if (!(await lstatOrUndefined(staged))) throw new CopyError(guestPath, `copy of ${guestPath}: the box sent an empty archive`)
    await restoreLinks(staging, links)
    await applyModes(staged, modes, false)
    const merged = new Set<string>()
    const moves: Array<[string, string]> = []
    await plan(staged, target, "", merged, moves)
    for (const [from, to] of moves) await fs.promises.rename(from, to)
    await applyModes(target, new Map([...modes].filter(([rel]) => !merged.has(rel))), true)
  } catch (e) {
    source.cancel()
    throw e
  } finally {
    await fs.promises.rm(staging, { recursive: true, force: true, maxRetries: 5 })
  }
}

const LINK_PLACEHOLDER = "boxlite-link-placeholder"

/**
 * Gives each symlink of the archive its real target. Only where a placeholder link still is
 * (a later entry may have replaced it) and only through real directories: a link is never
 * created through another link.
 */
const restoreLinks = async (staging: string, links: Map<string, string>): Promise<void> => {
  for (const [rel, target] of links) {
    let parent = staging
    const parts = rel.split("/")
    let through = true
    for (const part of parts.slice(0, -1)) {
      parent = path.join(parent, part)
      if (!(await lstatOrUndefined(parent))?.isDirectory()) through = false
    }
    const p = path.join(parent, parts.at(-1)!)
    if (!through || !(await lstatOrUndefined(p))?.isSymbolicLink() || (await fs.promises.readlink(p)) !== LINK_PLACEHOLDER) continue
    await fs.promises.unlink(p)
    await fs.promises.symlink(target, p)
  }
}

/**
 * Sets the recorded permission bits under `root`: files (in staging) or directories (once in
 * place, deepest first, so a read-only directory was still writable while it was filled).
 * lstat first: a path that is now a symlink is never chmod-ed through.
 */
const applyModes = async (root: string, modes: Map<string, number>, directories: boolean): Promise<void> => {
  const order = [...modes].sort(([a], [b]) => b.split("/").length - a.split("/").length)
  for (const [rel, mode] of order) {
    const p = rel === "" ? root : path.join(root, rel)
    const stat = await lstatOrUndefined(p)
    if (stat && (directories ? stat.isDirectory() : stat.isFile())) await fs.promises.chmod(p, mode)
  }
}

/** cp's rules for each staged entry, checked for the whole tree before anything moves. */
const plan = async (from: string, to: string, rel: string, merged: Set<string>, moves: Array<[string, string]>): Promise<void> => {
  const existing = await lstatOrUndefined(to)
  const staged = await fs.promises.lstat(from)
  if (!existing) {
    moves.push([from, to])
    return
  }
  if (staged.isDirectory()) {
    if (!existing.isDirectory()) throw new CopyError(to, `cannot overwrite non-directory ${to} with a directory`)
    merged.add(rel)
    for (const child of await fs.promises.readdir(from)) {
      await plan(path.join(from, child), path.join(to, child), rel === "" ? child : `${rel}/${child}`, merged, moves)
    }
    return
  }
  if (existing.isDirectory()) throw new CopyError(to, `cannot overwrite directory ${to} with a non-directory`)
  moves.push([from, to])
}

/** The content of the one regular file the guest sent (readFile, which follows a symlink at `guestPath`). */
export const readSingleFile = async (source: ArchiveSource, guestPath: string, limits: Limits): Promise<Uint8Array> => {
  const chunks: Array<Buffer> = []
  let problem: CopyError | undefined
  let entries = 0
  const parser = new Parser({
    strict: true,
    maxMetaEntrySize: 64 * 1024,
    onReadEntry: (entry: ReadEntry) => {
      if (++entries > 1) problem ??= new CopyError(guestPath, `readFile ${guestPath}: the box sent more than one file`)
      else if (entry.type === "Directory") problem ??= new CopyError(guestPath, `readFile ${guestPath}: is a directory`)
      else if (entry.type !== "File" && entry.type !== "OldFile") problem ??= new CopyError(guestPath, `readFile ${guestPath}: not a regular file (${entry.type})`)
      if (problem) return entry.resume()
      entry.on("data", (chunk: Buffer) => chunks.push(chunk))
    }
  })
  parser.on("error", (e: Error) => (problem ??= new CopyError(guestPath, `readFile ${guestPath}: ${e.message}`)))
  try {
    await feed(source, parser, limits, guestPath, `readFile ${guestPath}`, () => problem)
  } catch (e) {
    source.cancel()
    throw e
  }
  if (entries === 0) throw new CopyError(guestPath, `readFile ${guestPath}: the box sent an empty archive`)
  return Buffer.concat(chunks)
}

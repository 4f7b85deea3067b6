/**
 * Applies image layers, in order, to a directory (OCI image-spec `layer.md`): whiteouts delete
 * what lower layers put there, opaque markers empty a directory of lower-layer content.
 *
 * Run under fakeroot (see build-rootfs.ts): ownership, modes with setuid/setgid/sticky, device
 * nodes and xattrs are then recorded by fakeroot for mke2fs without host root. Entries are
 * applied one at a time, each resolved inside the tree against what is on disk (RootResolver),
 * so no path, symlink or hard link can make the host write outside the tree.
 */
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Transform, Writable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { createGunzip } from "node:zlib"
import { lsetxattr, mknod } from "./libc.js"
import { RootResolver } from "./RootResolver.js"
import { type TarEntry, type TarHandler, TarReader } from "./TarReader.js"

export interface LayerSpec {
  readonly digest: string
  readonly path: string
  readonly compression: "gzip" | "zstd" | "none"
}

/** How many bytes of tar stream (after decompression) the layers of one image may unpack. */
export class UnpackBudget {
  private spent = 0

  constructor(readonly limitBytes: number) {}

  get remainingBytes(): number {
    return this.limitBytes - this.spent
  }

  spend(bytes: number): void {
    this.spent += bytes
    if (this.spent > this.limitBytes) throw this.exceeded()
  }

  exceeded(): Error {
    return new Error(`the image unpacks to more than ${this.limitBytes} bytes (the maxUnpackedBytes limit)`)
  }
}

const WHITEOUT = ".wh."
const OPAQUE = ".wh..wh..opq"
const FILE_TYPE_BITS = { CharacterDevice: fs.constants.S_IFCHR, BlockDevice: fs.constants.S_IFBLK, FIFO: fs.constants.S_IFIFO }
const NEW_FILE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW

class LayerWriter implements TarHandler {
  private readonly resolver: RootResolver
  /** What this layer wrote, and the directories it wrote into: its whiteouts and opaque markers spare them. */
  private readonly written = new Set<string>()
  private readonly holdsWritten = new Set<string>()
  /** Set last, as writing into a directory changes its mtime. */
  private readonly directoryTimes: Array<readonly [string, Date]> = []
  private openFile: { readonly fd: number; readonly file: string; readonly entry: TarEntry } | undefined

  constructor(private readonly root: string, private readonly budget: UnpackBudget) {
    this.resolver = new RootResolver(root)
  }

  private absolute(rel: string): string {
    return rel === "" ? this.root : `${this.root}/${rel}`
  }

  entry(entry: TarEntry): void {
    const name = path.posix.basename(entry.path)
    if (name.startsWith(WHITEOUT)) return this.whiteout(entry.path, name)
    const target = this.resolver.placeEntry(entry.path)
    if (target === "" && entry.type !== "Directory") throw new Error(`${entry.path}: a ${entry.type} cannot replace the root directory`)
    const file = this.absolute(target)
    switch (entry.type) {
      case "Directory":
        if (!this.makeRoom(target, true)) fs.mkdirSync(file, 0o700)
        this.setOwnerAndMode(file, entry)
        if (entry.mtime) this.directoryTimes.push([target, entry.mtime])
        break
      case "File":
        if (entry.size > this.budget.remainingBytes) throw this.budget.exceeded()
        this.makeRoom(target, false)
        this.openFile = { fd: fs.openSync(file, NEW_FILE, 0o600), file, entry }
        break
      case "SymbolicLink":
        this.makeRoom(target, false)
        fs.symlinkSync(entry.linkpath, file)
        fs.lchownSync(file, entry.uid, entry.gid)
        if (entry.mtime) fs.lutimesSync(file, entry.mtime, entry.mtime)
        break
      case "Link": {
        const source = this.resolver.placeEntry(entry.linkpath)
        if (source === "") throw new Error(`${entry.path}: a hard link cannot point to the root directory`)
        if (source === target) return
        this.makeRoom(target, false)
        fs.linkSync(this.absolute(source), file)
        break
      }
      default:
        this.makeRoom(target, false)
        mknod(file, FILE_TYPE_BITS[entry.type] | entry.mode, entry.devmajor, entry.devminor)
        this.setOwnerAndMode(file, entry)
    }
    if (entry.type !== "File") this.setXattrs(file, entry)
    this.noteWritten(target)
  }

  data(chunk: Buffer): void {
    if (this.openFile) fs.writeSync(this.openFile.fd, chunk)
  }

  end(): void {
    if (!this.openFile) return
    const { fd, file, entry } = this.openFile
    this.openFile = undefined
    try {
      // Owner before mode: a chown clears setuid and setgid.
      fs.fchownSync(fd, entry.uid, entry.gid)
      fs.fchmodSync(fd, entry.mode)
      if (entry.mtime) fs.futimesSync(fd, entry.mtime, entry.mtime)
    } finally {
      fs.closeSync(fd)
    }
    this.setXattrs(file, entry)
  }

  /** After the last entry: directory times, for directories still there (and still directories). */
  finish(): void {
    for (const [dir, mtime] of this.directoryTimes) {
      const stillThere = (() => {
        try {
          return this.resolver.resolveDir(dir) === dir && fs.lstatSync(this.absolute(dir), { throwIfNoEntry: false })?.isDirectory() === true
        } catch {
          return false // a symlink loop now sits on its path
        }
      })()
      if (stillThere) fs.utimesSync(this.absolute(dir), mtime, mtime)
    }
  }

  /** Clears `target` for a new entry; a directory there is kept for a directory entry (returns true). */
  private makeRoom(target: string, forDirectory: boolean): boolean {
    const file = this.absolute(target)
    const existing = fs.lstatSync(file, { throwIfNoEntry: false })
    if (existing === undefined) {
      this.resolver.ensureDirectory(path.posix.dirname(target).replace(/^\.$/, ""))
      return false
    }
    if (existing.isDirectory()) {
      if (forDirectory) return true
      fs.rmSync(file, { recursive: true })
      this.resolver.forget()
    } else {
      fs.unlinkSync(file)
    }
    return false
  }

  private setOwnerAndMode(file: string, entry: TarEntry): void {
    fs.lchownSync(file, entry.uid, entry.gid)
    fs.chmodSync(file, entry.mode)
    if (entry.mtime && entry.type !== "Directory") fs.utimesSync(file, entry.mtime, entry.mtime)
  }

  private setXattrs(file: string, entry: TarEntry): void {
    for (const [name, value] of entry.xattrs) lsetxattr(file, name, value)
  }

  private noteWritten(target: string): void {
    this.written.add(target)
    for (let dir = path.posix.dirname(target); dir !== "."; dir = path.posix.dirname(dir)) this.holdsWritten.add(dir)
    this.holdsWritten.add("")
  }

  private whiteout(entryPath: string, name: string): void {
    const dir = path.posix.dirname(entryPath)
    if (name === OPAQUE) return this.removeLowerContent(this.resolver.resolveDir(this.resolver.placeEntry(dir)))
    const hidden = name.slice(WHITEOUT.length)
    if (hidden === "" || hidden === "." || hidden === "..") throw new Error(`${entryPath}: not a valid whiteout`)
    const target = this.resolver.placeEntry(`${dir}/${hidden}`)
    if (this.written.has(target) || this.holdsWritten.has(target)) return
    fs.rmSync(this.absolute(target), { recursive: true, force: true })
    this.resolver.forget()
  }

  /** Empties directory `dir` (resolved) of everything this layer did not write. */
  private removeLowerContent(dir: string): void {
    const file = this.absolute(dir)
    if (!fs.lstatSync(file, { throwIfNoEntry: false })?.isDirectory()) return
    for (const name of fs.readdirSync(file)) {
      const child = dir === "" ? name : `${dir}/${name}`
      if (this.written.has(child) || this.holdsWritten.has(child)) {
        this.removeLowerContent(child) // keep it, but not the lower content of a directory
      } else {
        fs.rmSync(this.absolute(child), { recursive: true, force: true })
        this.resolver.forget()
      }
    }
  }
}

const digestCheck = (expected: string) => {
  const [algorithm, hex] = expected.split(":")
  const hash = createHash(algorithm === "sha512" ? "sha512" : "sha256")
  return new Transform({
    transform(chunk, _enc, done) {
      hash.update(chunk)
      done(null, chunk)
    },
    flush(done) {
      const actual = hash.digest("hex")
      done(actual === hex ? null : new Error(`its content is corrupt: it hashes to ${algorithm}:${actual}`))
    }
  })
}

/** Node 20's zlib has no zstd: decompress with the zstd tool (Debian package zstd). */
const zstdDecompress = async (layer: LayerSpec, sink: Writable): Promise<void> => {
  const child = spawn("zstd", ["-dcq"], { stdio: ["pipe", "pipe", "pipe"] })
  let stderr = ""
  child.stderr.on("data", (d) => (stderr += d))
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code, signal) => (code === 0 || signal === "SIGKILL" ? resolve() : reject(new Error(`zstd failed: ${stderr.trim()}`))))
  })
  try {
    await Promise.all([pipeline(fs.createReadStream(layer.path), digestCheck(layer.digest), child.stdin), pipeline(child.stdout, sink), exited])
  } finally {
    // On a refused layer, stop decompressing (a bomb would otherwise run on).
    child.kill("SIGKILL")
  }
}

const describe = (error: unknown): string => {
  const e = error as NodeJS.ErrnoException
  if (typeof e.code === "string" && e.code.startsWith("Z_")) return `its gzip stream is truncated or corrupt (${e.message})`
  return e instanceof Error ? e.message : String(error)
}

export const applyLayer = async (root: string, layer: LayerSpec, budget: UnpackBudget): Promise<void> => {
  const writer = new LayerWriter(root, budget)
  const reader = new TarReader(writer)
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      try {
        budget.spend(chunk.length)
        reader.write(chunk)
        done()
      } catch (e) {
        done(e as Error)
      }
    },
    final(done) {
      try {
        reader.end()
        writer.finish()
        done()
      } catch (e) {
        done(e as Error)
      }
    }
  })
  try {
    if (layer.compression === "zstd") await zstdDecompress(layer, sink)
    else if (layer.compression === "gzip") await pipeline(fs.createReadStream(layer.path), digestCheck(layer.digest), createGunzip(), sink)
    else await pipeline(fs.createReadStream(layer.path), digestCheck(layer.digest), sink)
  } catch (e) {
    throw new Error(`layer ${layer.digest} refused: ${describe(e)}`)
  }
}

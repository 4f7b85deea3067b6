/**
 * Applies image layers, in order, to a directory (OCI image-spec `layer.md`): whiteouts delete
 * what lower layers put there, opaque markers empty a directory of lower-layer content.
 *
 * Run under fakeroot (see Rootfs.ts): node-tar then "preserves" ownership, modes and links,
 * and fakeroot records them for mke2fs. Paths that would land outside the target are refused.
 */
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Transform } from "node:stream"
import { pipeline } from "node:stream/promises"
import { createGunzip } from "node:zlib"
import * as tar from "tar"
import { RootResolver } from "./RootResolver.js"

export interface LayerSpec {
  readonly digest: string
  readonly path: string
  readonly compression: "gzip" | "zstd" | "none"
}

const WHITEOUT = ".wh."
const OPAQUE = ".wh..wh..opq"

/** Node 20's zlib has no zstd: decompress with the zstd tool (Debian package zstd). */
const zstdDecompress = async (layer: LayerSpec, extract: NodeJS.WritableStream): Promise<void> => {
  const child = spawn("zstd", ["-dcq"], { stdio: ["pipe", "pipe", "pipe"] })
  let stderr = ""
  child.stderr.on("data", (d) => (stderr += d))
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`zstd failed: ${stderr.trim()}`))))
  })
  await Promise.all([pipeline(createReadStream(layer.path), digestCheck(layer.digest), child.stdin), pipeline(child.stdout, extract), exited])
}

const digestCheck = (expected: string) => {
  const [algorithm, hex] = expected.split(":")
  const hash = createHash(algorithm === "sha512" ? "sha512" : "sha256")
  const stream = new Transform({
    transform(chunk, _enc, done) {
      hash.update(chunk)
      done(null, chunk)
    },
    flush(done) {
      const actual = hash.digest("hex")
      done(actual === hex ? null : new Error(`layer ${expected} is corrupt: its content hashes to ${algorithm}:${actual}`))
    }
  })
  return stream
}

export const applyLayer = async (root: string, layer: LayerSpec): Promise<void> => {
  const resolver = new RootResolver(root)
  const written = new Set<string>()
  const opaqueDirs: Array<string> = []
  const pendingWhiteouts: Array<string> = []
  const problems: Array<string> = []

  const extract = tar.x({
    cwd: root,
    unlink: true,
    preserveOwner: true,
    // Paths are confined by RootResolver; node-tar must keep symlink targets verbatim.
    preservePaths: true,
    filter: (entryPath, entry) => {
      const header = entry as tar.ReadEntry
      const name = path.posix.basename(entryPath)
      if (name === OPAQUE || name.startsWith(WHITEOUT)) {
        const dir = resolver.resolveDir(path.posix.dirname(entryPath))
        if (dir === undefined) {
          problems.push(`whiteout ${entryPath} is under a symlink loop`)
        } else if (name === OPAQUE) {
          opaqueDirs.push(dir)
        } else {
          pendingWhiteouts.push(path.posix.join(dir, name.slice(WHITEOUT.length)))
        }
        return false
      }
      const target = resolver.placeEntry(entryPath)
      if (target === undefined) {
        problems.push(`${entryPath}: path leaves the root filesystem`)
        return false
      }
      header.path = target === "" ? "." : target
      if (header.type === "Link") {
        const linkTarget = resolver.placeEntry(String(header.linkpath))
        if (linkTarget === undefined || linkTarget === "") {
          problems.push(`${entryPath}: hard link target ${String(header.linkpath)} leaves the root filesystem`)
          return false
        }
        header.linkpath = linkTarget
      }
      resolver.record(target, header.type === "Directory" ? { type: "dir" } : header.type === "SymbolicLink" ? { type: "symlink", target: String(header.linkpath) } : { type: "file" })
      written.add(target)
      return true
    },
    onwarn: (code: string, message: string) => {
      // Device nodes cannot be made without root; the guest mounts devtmpfs on /dev anyway.
      if (code !== "TAR_ENTRY_UNSUPPORTED") problems.push(`${code}: ${message}`)
    }
  })

  if (layer.compression === "zstd") await zstdDecompress(layer, extract)
  else if (layer.compression === "gzip") await pipeline(createReadStream(layer.path), digestCheck(layer.digest), createGunzip(), extract)
  else await pipeline(createReadStream(layer.path), digestCheck(layer.digest), extract)
  if (problems.length > 0) throw new Error(`layer ${layer.digest} was refused: ${problems.slice(0, 5).join("; ")}`)

  // Whiteouts and opaque markers hide lower layers only, so they are applied after extraction
  // and never remove what this same layer wrote.
  for (const rel of pendingWhiteouts) await fs.rm(path.join(root, rel), { recursive: true, force: true })
  for (const dir of opaqueDirs) {
    const entries = await fs.readdir(path.join(root, dir)).catch(() => [])
    for (const entry of entries) {
      const rel = dir === "" ? entry : `${dir}/${entry}`
      if (!written.has(rel)) await fs.rm(path.join(root, rel), { recursive: true, force: true })
    }
  }
}

/**
 * Resolves paths of layer entries the way the guest will see them: symlinks are followed as if
 * the tree were `/` (absolute targets and `..` stay inside it), so a layer can never make the
 * host write outside the tree, and legitimate layers that write through a symlinked directory
 * (Debian's `/lib -> usr/lib`) land where they should. Like containerd's securejoin, written
 * here because node-tar's own checks strip `/` from symlink targets, which breaks root
 * filesystems. It reads the tree as it is on disk, so entries must be applied one at a time.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const MAX_SYMLINK_HOPS = 40

export class RootResolver {
  /** Paths seen to be real directories; most entries share their parents, so this saves lstat calls. */
  private readonly directories = new Set<string>()

  constructor(private readonly root: string) {}

  /** Must be called when anything in the tree is removed or replaced by something else. */
  forget(): void {
    this.directories.clear()
  }

  private symlinkTarget(rel: string): string | undefined {
    if (this.directories.has(rel)) return undefined
    const file = path.join(this.root, rel)
    const stat = fs.lstatSync(file, { throwIfNoEntry: false })
    if (stat?.isSymbolicLink()) return fs.readlinkSync(file)
    if (stat?.isDirectory()) this.directories.add(rel)
    return undefined // a directory, or not there yet (it will be created as one)
  }

  /** Creates directory `rel` (a resolved path) and its parents if they are missing. */
  ensureDirectory(rel: string): void {
    if (rel === "" || this.directories.has(rel)) return
    fs.mkdirSync(path.join(this.root, rel), { recursive: true, mode: 0o755 })
    this.directories.add(rel)
  }

  /** The real location (relative to the root, "" = root) of directory `rel`. */
  resolveDir(rel: string): string {
    const todo = rel.split("/")
    const resolved: Array<string> = []
    let hops = 0
    while (todo.length > 0) {
      const part = todo.shift()!
      if (part === "" || part === ".") continue
      if (part === "..") {
        resolved.pop()
        continue
      }
      const candidate = [...resolved, part].join("/")
      const target = this.symlinkTarget(candidate)
      if (target !== undefined) {
        if (++hops > MAX_SYMLINK_HOPS) throw new Error(`${rel}: too many levels of symbolic links (a symlink loop)`)
        if (target.startsWith("/")) resolved.length = 0
        todo.unshift(...target.split("/"))
        continue
      }
      resolved.push(part)
    }
    return resolved.join("/")
  }

  /**
   * Where entry `entryPath` must be written, relative to the root ("" = the root itself): its
   * parent resolved inside the root, its own name kept (the entry replaces whatever is there).
   * Leading `/` is dropped, as every tar does; a `..` component is refused rather than guessed
   * at, and so is a parent behind a symlink loop.
   */
  placeEntry(entryPath: string): string {
    const parts = entryPath.split("/").filter((part) => part !== "" && part !== ".")
    if (parts.includes("..")) throw new Error(`${entryPath}: a '..' component would leave the root filesystem`)
    const name = parts.pop()
    if (name === undefined) return ""
    const dir = this.resolveDir(parts.join("/"))
    return dir === "" ? name : `${dir}/${name}`
  }
}

/**
 * Resolves paths of layer entries the way the guest will see them: symlinks are followed as if
 * the tree were `/` (absolute targets and `..` stay inside it), so a layer can never make the
 * host write outside the tree, and legitimate layers that write through a symlinked directory
 * (Debian's `/lib -> usr/lib`) land where they should. Like containerd's securejoin, written
 * here because node-tar's own checks strip `/` from symlink targets, which breaks root
 * filesystems.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const MAX_SYMLINK_HOPS = 40

type Kind = { readonly type: "dir" | "file" } | { readonly type: "symlink"; readonly target: string }

export class RootResolver {
  /** What this layer's earlier entries put at a path; they may not be on disk yet. */
  private readonly pending = new Map<string, Kind>()

  constructor(private readonly root: string) {}

  /** Records an entry so later entries of the same layer resolve through it. */
  record(rel: string, kind: Kind): void {
    this.pending.set(rel, kind)
  }

  private kindOf(rel: string): Kind | undefined {
    const known = this.pending.get(rel)
    if (known) return known
    try {
      const st = fs.lstatSync(path.join(this.root, rel))
      if (st.isSymbolicLink()) return { type: "symlink", target: fs.readlinkSync(path.join(this.root, rel)) }
      return { type: st.isDirectory() ? "dir" : "file" }
    } catch {
      return undefined
    }
  }

  /** The real location (relative to the root, "" = root) of directory `rel`; undefined on a symlink loop. */
  resolveDir(rel: string): string | undefined {
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
      const kind = this.kindOf(candidate)
      if (kind?.type === "symlink") {
        if (++hops > MAX_SYMLINK_HOPS) return undefined
        if (kind.target.startsWith("/")) resolved.length = 0
        todo.unshift(...kind.target.split("/"))
        continue
      }
      resolved.push(part)
    }
    return resolved.join("/")
  }

  /**
   * Where entry `entryPath` must be written: its parent resolved inside the root, its own name
   * kept (the entry replaces whatever is there). Undefined if the path is not acceptable.
   */
  placeEntry(entryPath: string): string | undefined {
    const clean = entryPath.replace(/^(\.?\/)+/, "").replace(/\/+$/, "")
    if (clean === "" || clean === ".") return ""
    const parts = clean.split("/")
    if (parts.includes("..")) return undefined
    const name = parts.pop()!
    const dir = this.resolveDir(parts.join("/"))
    if (dir === undefined) return undefined
    return dir === "" ? name : `${dir}/${name}`
  }
}

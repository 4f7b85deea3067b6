import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import type { ResolvedImage } from "@boxlite/oci"
import { make } from "@boxlite/storage"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "storage-"))

/** A gzip layer made by GNU tar from `files` (path -> content), owned by uid:gid. */
const layer = (dir: string, name: string, files: Record<string, string>, owner = "0:0") => {
  const tree = path.join(dir, `${name}-tree`)
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true })
    fs.writeFileSync(path.join(tree, rel), content)
  }
  const file = path.join(dir, `${name}.tar.gz`)
  const [uid, gid] = owner.split(":")
  execFileSync("tar", ["-czf", file, "-C", tree, `--owner=${uid}`, `--group=${gid}`, "--numeric-owner", "."])
  const bytes = fs.readFileSync(file)
  return { digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`, size: bytes.length, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", compression: "gzip" as const, path: file }
}

const image = (layers: ResolvedImage["layers"], id: string): ResolvedImage => ({
  reference: `test:${id}`, manifestDigest: `sha256:${id}`, configDigest: `sha256:${id.padEnd(64, "0")}`,
  os: "linux", architecture: "amd64", config: { env: [], entrypoint: [], cmd: [], workingDir: undefined, user: undefined }, layers
})

const debugfs = (img: string, cmd: string) => execFileSync("debugfs", ["-R", cmd, img], { stdio: ["ignore", "pipe", "ignore"] }).toString()

describe("DiskStore", () => {
  it("builds an ext4 base with ownership and whiteouts applied, once, and a qcow2 box disk on it", async () => {
    const dir = tmp()
    const lower = layer(dir, "lower", { "etc/owned": "x", "gone/file": "y", "opaque/old": "z", "keep/me": "k" }, "1234:5678")
    const upper = layer(dir, "upper", { "gone/.wh.file": "", "opaque/.wh..wh..opq": "", "opaque/new": "n" })
    const store = make({ rootfsDir: path.join(dir, "rootfs"), headroomBytes: 8 * 1024 * 1024 })
    const img = image([lower, upper], "a1")

    const base = await Effect.runPromise(store.baseFor(img))
    expect(debugfs(base, "stat /etc/owned")).toMatch(/User:\s+1234\s+Group:\s+5678/)
    expect(debugfs(base, "ls /gone")).not.toMatch(/file/)
    const opaque = debugfs(base, "ls /opaque")
    expect(opaque).toMatch(/new/)
    expect(opaque).not.toMatch(/old/)
    expect(debugfs(base, "ls /keep")).toMatch(/me/)
    expect(debugfs(base, "stat /tmp")).toMatch(/Mode:\s+01777/)

    const again = await Effect.runPromise(store.baseFor(img))
    expect(again).toBe(base)
    expect(fs.readdirSync(path.join(dir, "rootfs"))).toEqual([path.basename(base)])

    const disk = path.join(dir, "box.qcow2")
    await Effect.runPromise(store.createBoxDisk(base, disk))
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", disk]).toString())
    expect(info["backing-filename"]).toBe(base)
    expect(info.format).toBe("qcow2")
  })

  it("refuses a layer whose content does not match its digest, and leaves no build behind", async () => {
    const dir = tmp()
    const good = layer(dir, "l", { "a": "1" })
    const rootfsDir = path.join(dir, "rootfs")
    const store = make({ rootfsDir, headroomBytes: 1024 * 1024 })
    const exit = await Effect.runPromiseExit(store.baseFor(image([{ ...good, digest: `sha256:${"0".repeat(64)}` }], "b2")))
    expect(String(exit)).toMatch(/StorageError.*is corrupt/s)
    expect(fs.readdirSync(rootfsDir)).toEqual([])
  })
})

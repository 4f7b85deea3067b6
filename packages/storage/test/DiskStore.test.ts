import { describe, expect, it } from "vitest"
import { Effect, Exit, Fiber } from "effect"
import type { ResolvedImage } from "@boxlite/oci"
import { make } from "@boxlite/storage"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { debugfs, imageOf, layerOf, tarBytes } from "./layers.js"

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

const inode = (img: string, file: string) => /Inode: (\d+)/.exec(debugfs(img, `stat ${file}`))?.[1]

describe("DiskStore", () => {
  it("builds an ext4 base with ownership and whiteouts applied, once, and a qcow2 box disk on it", async () => {
    const dir = tmp()
    const lower = layer(dir, "lower", { "etc/owned": "x", "gone/file": "y", "opaque/old": "z", "keep/me": "k" }, "1234:5678")
    const upper = layer(dir, "upper", { "gone/.wh.file": "", "opaque/.wh..wh..opq": "", "opaque/new": "n" })
    const store = make({ useFakeroot: true, rootfsDir: path.join(dir, "rootfs"), headroomBytes: 8 * 1024 * 1024 })
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

  it("a second caller joins a build under way, and the first giving up does not cancel it for the second", async () => {
    const dir = tmp()
    const rootfsDir = path.join(dir, "rootfs")
    const store = make({ useFakeroot: true, rootfsDir, headroomBytes: 1024 * 1024 })
    const img = image([layer(dir, "l", { "a": "1" })], "c3")
    const [quitter, joiner] = await Effect.runPromise(Effect.gen(function*() {
      const first = yield* Effect.forkChild(store.baseFor(img))
      yield* Effect.sleep("50 millis")
      const second = yield* Effect.forkChild(store.baseFor(img))
      yield* Effect.sleep("20 millis")
      return [yield* Fiber.interrupt(first).pipe(Effect.andThen(Fiber.await(first))), yield* Fiber.join(second)] as const
    }))
    expect(Exit.hasInterrupts(quitter)).toBe(true)
    expect(joiner).toBe(path.join(rootfsDir, `${"sha256-c3".padEnd(71, "0")}.v2.ext4`))
    expect(fs.readdirSync(rootfsDir)).toEqual([path.basename(joiner)])
  })

  it("refuses a layer whose content does not match its digest, and leaves no build behind", async () => {
    const dir = tmp()
    const good = layer(dir, "l", { "a": "1" })
    const rootfsDir = path.join(dir, "rootfs")
    const store = make({ useFakeroot: true, rootfsDir, headroomBytes: 1024 * 1024 })
    const exit = await Effect.runPromiseExit(store.baseFor(image([{ ...good, digest: `sha256:${"0".repeat(64)}` }], "b2")))
    expect(String(exit)).toMatch(/StorageError.*is corrupt/s)
    expect(fs.readdirSync(rootfsDir)).toEqual([])
  })

  it("keeps modes, owners, hard links, symlinks, devices and xattrs, and applies whiteouts across layers", async () => {
    const dir = tmp()
    // security.capability v2 granting cap_net_bind_service: binary, as in real images.
    const capability = Buffer.from("0100000200040000000000000000000000000000", "hex")
    const first = layerOf(dir, tarBytes([
      { path: "bin/", type: "5" },
      { path: "bin/setuid", body: "#!", mode: 0o4755, uid: 1234, gid: 5678 },
      { path: "bin/setgid", body: "#!", mode: 0o2711, gid: 42 },
      { path: "shared/", type: "5", mode: 0o1777 },
      { path: "bin/original", body: "same inode", mode: 0o700 },
      { path: "bin/hardlink", type: "1", linkpath: "bin/original" },
      { path: "bin/absolute", type: "2", linkpath: "/usr/bin/python3" },
      { path: "bin/relative", type: "2", linkpath: "../lib/x" },
      { path: "dev/char", type: "3", mode: 0o666, devmajor: 1, devminor: 3 },
      { path: "dev/block", type: "4", mode: 0o660, gid: 6, devmajor: 259, devminor: 300 },
      { path: "dev/fifo", type: "6", mode: 0o600 },
      { path: "bin/ping", body: "elf", mode: 0o755, pax: { "SCHILY.xattr.security.capability": capability, "SCHILY.xattr.user.note": "hello" } },
      { path: "doomed/", type: "5" },
      { path: "doomed/old", body: "lower" },
      { path: "opaque/old", body: "lower" },
      { path: "file-then-dir", body: "file" },
      { path: "dir-then-file/child", body: "child" }
    ]))
    const second = layerOf(dir, tarBytes([
      { path: ".wh.doomed" },
      { path: "opaque/", type: "5" },
      { path: "opaque/.wh..wh..opq" },
      { path: "opaque/new", body: "upper" },
      { path: "file-then-dir/", type: "5", mode: 0o750 },
      { path: "file-then-dir/inside", body: "inside" },
      { path: "dir-then-file", body: "now a file" }
    ]), "gzip")
    const third = layerOf(dir, tarBytes([{ path: "doomed/new", body: "recreated" }]), "zstd")
    const base = await Effect.runPromise(make({ useFakeroot: true, rootfsDir: path.join(dir, "rootfs"), headroomBytes: 4 * 1024 * 1024 }).baseFor(imageOf([first, second, third])))

    expect(debugfs(base, "stat /bin/setuid")).toMatch(/Mode:\s+04755[\s\S]*User:\s+1234\s+Group:\s+5678/)
    expect(debugfs(base, "stat /bin/setgid")).toMatch(/Mode:\s+02711[\s\S]*Group:\s+42/)
    expect(debugfs(base, "stat /shared")).toMatch(/Type: directory\s+Mode:\s+01777/)
    expect(inode(base, "/bin/hardlink")).toBe(inode(base, "/bin/original"))
    expect(debugfs(base, "stat /bin/original")).toMatch(/Links: 2/)
    expect(debugfs(base, "stat /bin/absolute")).toMatch(/Fast link dest: "\/usr\/bin\/python3"/)
    expect(debugfs(base, "stat /bin/relative")).toMatch(/Fast link dest: "\.\.\/lib\/x"/)
    expect(debugfs(base, "stat /dev/char")).toMatch(/Type: character special\s+Mode:\s+0666[\s\S]*Device major\/minor number: 01:03/)
    expect(debugfs(base, "stat /dev/block")).toMatch(/Type: block special\s+Mode:\s+0660[\s\S]*Group:\s+6[\s\S]*Device major\/minor number: 259:300/)
    expect(debugfs(base, "stat /dev/fifo")).toMatch(/Type: FIFO\s+Mode:\s+0600/)
    const xattrs = debugfs(base, "ea_list /bin/ping")
    expect(xattrs).toContain("security.capability (20) = 01 00 00 02 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
    expect(xattrs).toContain('user.note (5) = "hello"')

    expect(debugfs(base, "cat /doomed/new")).toBe("recreated")
    expect(debugfs(base, "ls /doomed")).not.toMatch(/old/)
    expect(debugfs(base, "ls /opaque")).toMatch(/new/)
    expect(debugfs(base, "ls /opaque")).not.toMatch(/old/)
    expect(debugfs(base, "stat /file-then-dir")).toMatch(/Type: directory\s+Mode:\s+0750/)
    expect(debugfs(base, "cat /file-then-dir/inside")).toBe("inside")
    expect(debugfs(base, "cat /dir-then-file")).toBe("now a file")
  })
})

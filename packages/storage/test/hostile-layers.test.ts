import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Exit } from "effect"
import { make } from "@boxlite/storage"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { gzipSync } from "node:zlib"
import { debugfs, END_OF_ARCHIVE, imageOf, type Layer, layerBlob, layerOf, tarBytes, tarEntry, type TarEntrySpec } from "./layers.js"

/**
 * A temporary "host root": the store lives at <host>/store/rootfs, so the build tree is
 * <host>/store/rootfs/.build-*\/tree and `../../../../canary` from the tree is the canary.
 */
const host = fs.mkdtempSync(path.join(os.tmpdir(), "storage-hostile-"))
const canaryDir = path.join(host, "canary")
const rootfsDir = path.join(host, "store", "rootfs")
const blobs = path.join(host, "blobs")
const UP_TO_HOST = "../../../.."

/** Every file under `dir` with its content hash and mtime: any change shows. */
const snapshot = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (rel: string) => {
    const full = path.join(dir, rel)
    const st = fs.lstatSync(full)
    out[rel] = `${st.mode}:${st.mtimeMs}:${st.isFile() ? createHash("sha256").update(fs.readFileSync(full)).digest("hex") : ""}`
    if (st.isDirectory()) for (const name of fs.readdirSync(full)) walk(path.join(rel, name))
  }
  walk(".")
  return out
}
const hostFiles = () => ({
  etc: fs.readdirSync("/etc").sort(),
  passwd: snapshot("/etc/passwd"),
  shadow: snapshot("/etc/shadow"),
  canary: snapshot(canaryDir)
})
let before: ReturnType<typeof hostFiles>

beforeAll(() => {
  fs.mkdirSync(path.join(canaryDir, "etc"), { recursive: true })
  fs.writeFileSync(path.join(canaryDir, "canary.txt"), "do not touch")
  fs.writeFileSync(path.join(canaryDir, "etc", "passwd"), "canary passwd")
  fs.mkdirSync(blobs)
  before = hostFiles()
})
afterAll(() => fs.rmSync(host, { recursive: true, force: true }))

const store = make({ useFakeroot: true, rootfsDir, headroomBytes: 4 * 1024 * 1024, maxUnpackedBytes: 64 * 1024 * 1024 })

/** Builds an image of `layers`; checks nothing outside the store changed and no build is left. */
const build = async (...layers: ReadonlyArray<Layer>) => {
  const exit = await Effect.runPromiseExit(store.baseFor(imageOf(layers)))
  expect(hostFiles()).toEqual(before)
  expect(fs.readdirSync(rootfsDir).filter((name) => name.startsWith(".build-"))).toEqual([])
  return exit
}

/** The build must fail with a StorageError naming `layer` and matching `problem`. */
const expectRefused = async (layer: Layer, problem: RegExp, ...lower: ReadonlyArray<Layer>) => {
  const exit = await build(...lower, layer)
  expect(Exit.isFailure(exit)).toBe(true)
  const message = String(exit)
  expect(message).toMatch(/StorageError/)
  expect(message).toContain(`layer ${layer.digest} refused`)
  expect(message).toMatch(problem)
}

const expectBuilt = async (...layers: ReadonlyArray<Layer>) => {
  const exit = await build(...layers)
  if (Exit.isFailure(exit)) throw new Error(String(exit))
  return exit.value
}

const plain = (entries: ReadonlyArray<TarEntrySpec>) => layerOf(blobs, tarBytes(entries))

describe("hostile layers", () => {
  it("refuses '..' paths", async () => {
    await expectRefused(plain([{ path: "../etc/passwd", body: "root::0:0::/:/bin/sh\n" }]), /'\.\.' component/)
    await expectRefused(plain([{ path: `${UP_TO_HOST}/canary/canary.txt`, body: "x" }]), /'\.\.' component/)
    await expectRefused(plain([{ path: "a/../../x", body: "x" }]), /'\.\.' component/)
  })

  it("keeps absolute paths inside the tree", async () => {
    const base = await expectBuilt(plain([{ path: "/etc/boxlite-absolute", body: "inside" }]))
    expect(debugfs(base, "cat /etc/boxlite-absolute")).toBe("inside")
    expect(fs.existsSync("/etc/boxlite-absolute")).toBe(false)
  })

  it("writes through symlinks to where they point inside the tree", async () => {
    const base = await expectBuilt(plain([
      { path: "escape", type: "2", linkpath: "/etc" },
      { path: "escape/passwd", body: "in-tree passwd" },
      { path: "up", type: "2", linkpath: UP_TO_HOST },
      { path: "up/canary/canary.txt", body: "in-tree canary" },
      { path: "c1", type: "2", linkpath: "c2" },
      { path: "c2", type: "2", linkpath: "../c3" },
      { path: "c3", type: "2", linkpath: "/escape" },
      { path: "c1/chained", body: "chained" }
    ]))
    expect(debugfs(base, "cat /etc/passwd")).toBe("in-tree passwd")
    expect(debugfs(base, "cat /canary/canary.txt")).toBe("in-tree canary")
    expect(debugfs(base, "cat /etc/chained")).toBe("chained")
    expect(debugfs(base, "stat /escape")).toMatch(/Fast link dest: "\/etc"/)
  })

  it("refuses a path through a symlink loop", async () => {
    await expectRefused(plain([
      { path: "loop1", type: "2", linkpath: "loop2" },
      { path: "loop2", type: "2", linkpath: "/loop1" },
      { path: "loop1/x", body: "x" }
    ]), /symlink loop/)
  })

  it("never links to a file outside the tree", async () => {
    await expectRefused(plain([{ path: "h", type: "1", linkpath: `${UP_TO_HOST}/canary/canary.txt` }]), /'\.\.' component/)
    await expectRefused(plain([{ path: "h", type: "1", linkpath: "../../etc/passwd" }]), /'\.\.' component/)
    // Absolute and symlinked link targets resolve inside the tree, where there is no such file.
    await expectRefused(plain([{ path: "h", type: "1", linkpath: "/etc/shadow" }]), /ENOENT.*tree\/etc\/shadow/)
    await expectRefused(plain([
      { path: "up", type: "2", linkpath: UP_TO_HOST },
      { path: "h", type: "1", linkpath: "up/canary/canary.txt" }
    ]), /ENOENT.*tree\/canary\/canary\.txt/)
  })

  it("refuses sparse files and sizes over the limit without writing them", async () => {
    const hundredGiB = 100 * 1024 ** 3
    await expectRefused(plain([{ path: "sparse", type: "S", declaredSize: 0 }]), /GNU sparse file is not supported/)
    await expectRefused(plain([{
      path: "GNUSparseFile.0/big", declaredSize: 512, body: Buffer.alloc(512),
      pax: { "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "big", "GNU.sparse.realsize": String(hundredGiB) }
    }]), /sparse files \(PAX GNU\.sparse\) are not supported/)
    // A plain file declaring 100 GiB: refused before a byte of it is written.
    const huge = layerOf(blobs, Buffer.concat([tarEntry({ path: "huge", declaredSize: hundredGiB }), Buffer.alloc(4096)]), "gzip")
    await expectRefused(huge, /more than 67108864 bytes \(the maxUnpackedBytes limit\)/)
  })

  it("stops a gzip bomb at the unpacked-bytes limit", async () => {
    // 640 gzip members of one 16 MiB file each: 10 GiB of tar from ~10 MB of gzip.
    const member = gzipSync(Buffer.concat([tarEntry({ path: "zeros", body: Buffer.alloc(16 * 1024 * 1024) })]), { level: 9 })
    const bomb = layerBlob(blobs, Buffer.concat([...Array<Buffer>(640).fill(member), gzipSync(END_OF_ARCHIVE)]), "gzip")
    expect(bomb.size).toBeLessThan(20 * 1024 * 1024)
    const started = Date.now()
    await expectRefused(bomb, /more than 67108864 bytes \(the maxUnpackedBytes limit\)/)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it("refuses truncated layers", async () => {
    const tar = tarBytes([{ path: "first", body: "1" }, { path: "big", body: Buffer.alloc(100_000, 1) }])
    const cut = tar.subarray(0, 512 * 3 + 50_000)
    await expectRefused(layerOf(blobs, cut), /truncated: the archive ends inside big \(50000 bytes of it missing\)/)
    const gzip = gzipSync(tar)
    await expectRefused(layerBlob(blobs, gzip.subarray(0, gzip.length - 100), "gzip"), /gzip stream is truncated or corrupt \(unexpected end of file\)/)
    await expectRefused(layerOf(blobs, tar.subarray(0, 512 * 2)), /ends at byte 1024 without its end-of-archive blocks/)
  })

  it("refuses whiteouts that point outside or at a directory itself", async () => {
    await expectRefused(plain([{ path: "../.wh.x" }]), /'\.\.' component/)
    await expectRefused(plain([{ path: `${UP_TO_HOST}/canary/.wh.canary.txt` }]), /'\.\.' component/)
    await expectRefused(plain([{ path: ".wh.." }]), /not a valid whiteout/)
    await expectRefused(plain([{ path: "d/.wh." }]), /not a valid whiteout/)
  })

  it("refuses what is not a tar archive", async () => {
    // A second gzip inside the first must not be inflated past the limit: it is not tar.
    const inner = gzipSync(tarBytes([{ path: "a", body: randomBytes(4096) }]))
    await expectRefused(layerOf(blobs, inner, "gzip"), /not a tar archive: bad header (checksum )?at byte 0/)
  })
})

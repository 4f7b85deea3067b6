/**
 * The host's extractor against hand-made archives: what a modified (hostile) guest agent could
 * send. Whatever it sends, nothing may land outside the destination, nothing may keep setuid
 * bits or foreign owners, and a failed copy leaves nothing behind.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Header, type HeaderData } from "tar"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { CopyError, PathNotFound } from "../src/Errors.js"
import { type ArchiveSink, type ArchiveSource, destinationOf, extractFrom, packInto, readSingleFile, singleFileArchive } from "../src/internal/FileTransfer.js"

const limits = { maxBytes: 64 * 1024 * 1024, maxEntries: 1000 }

const entry = (header: HeaderData, body: Buffer = Buffer.alloc(0)): Buffer => {
  const h = new Header({ mode: 0o644, mtime: new Date(1_700_000_000_000), ...header, size: body.length })
  h.encode()
  return Buffer.concat([h.block!, body, Buffer.alloc((512 - (body.length % 512)) % 512)])
}
const archive = (...entries: Array<Buffer>): Buffer => Buffer.concat([...entries, Buffer.alloc(1024)])

/** A source that hands out `data` in frame-sized chunks (or an endless generator's chunks). */
const sourceOf = (data: Buffer | Iterable<Buffer>): ArchiveSource & { cancelled: boolean } => {
  const chunks = Buffer.isBuffer(data)
    ? (function*() {
        for (let i = 0; i < data.length; i += 32 * 1024) yield data.subarray(i, i + 32 * 1024)
      })()
    : data[Symbol.iterator]()
  const source = {
    cancelled: false,
    read: async () => {
      if (source.cancelled) return null
      const next = chunks.next()
      return next.done ? null : next.value
    },
    cancel: () => {
      source.cancelled = true
    }
  }
  return source
}

let dir: string
let dest: string
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "boxlite-ft-"))
  dest = path.join(dir, "dest")
  fs.mkdirSync(dest)
  fs.mkdirSync(path.join(dir, "outside"))
})
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Extracts the archive of guest path /src/<name> to `to`, as copyOut does. */
const extract = async (data: Buffer | Iterable<Buffer>, name = "t", to = dest, l = limits) => {
  const source = sourceOf(data)
  const target = await destinationOf(to, name)
  const outcome = await extractFrom(source, `/src/${name}`, target, l).then(() => undefined, (e: unknown) => e)
  return { outcome, source }
}

/** No staging directory left, nothing written outside `dest`. */
const leftNothing = () => {
  expect(fs.readdirSync(dest).filter((n) => n.startsWith(".boxlite-copy-"))).toEqual([])
  expect(fs.readdirSync(path.join(dir, "outside"))).toEqual([])
  expect(fs.readdirSync(dir).sort()).toEqual(["dest", "outside"])
}

describe("copyOut's extractor", () => {
  it("extracts a tree: modes without setuid/setgid, symlinks as links, owned by the caller", async () => {
    const { outcome } = await extract(archive(
      entry({ path: "t/", type: "Directory", mode: 0o555 }),
      entry({ path: "t/run", type: "File", mode: 0o6755, uid: 1234, gid: 5678 }, Buffer.from("#!/bin/sh\n")),
      entry({ path: "t/secret", type: "File", mode: 0o600 }, Buffer.from("s")),
      entry({ path: "t/passwd", type: "SymbolicLink", linkpath: "/etc/passwd" }),
      entry({ path: "t/up", type: "SymbolicLink", linkpath: "../../outside" }),
      entry({ path: "t/sub/", type: "Directory", mode: 0o1777 })
    ))
    expect(outcome).toBeUndefined()
    const t = path.join(dest, "t")
    const run = fs.statSync(path.join(t, "run"))
    expect(run.mode & 0o7777).toBe(0o755)
    expect([run.uid, run.gid]).toEqual([process.getuid!(), process.getgid!()])
    expect(fs.readFileSync(path.join(t, "run"), "utf8")).toBe("#!/bin/sh\n")
    expect(fs.statSync(path.join(t, "secret")).mode & 0o777).toBe(0o600)
    expect(fs.readlinkSync(path.join(t, "passwd"))).toBe("/etc/passwd")
    expect(fs.readlinkSync(path.join(t, "up"))).toBe("../../outside")
    expect(fs.statSync(t).mode & 0o7777).toBe(0o555)
    expect(fs.statSync(path.join(t, "sub")).mode & 0o7777).toBe(0o777)
    fs.chmodSync(t, 0o755)
    leftNothing()
  })

  const attacks: Array<[string, () => Buffer]> = [
    ["a ../ name", () => archive(entry({ path: "t/", type: "Directory" }), entry({ path: "t/../../outside/pwned", type: "File" }, Buffer.from("x")))],
    ["an absolute name", () => archive(entry({ path: "t/", type: "Directory" }), entry({ path: `${dir}/outside/pwned`, type: "File" }, Buffer.from("x")))],
    ["a hard link to a host file", () => archive(entry({ path: "t/", type: "Directory" }), entry({ path: "t/h", type: "Link", linkpath: "/etc/passwd" }))],
    ["a hard link inside the copy", () => archive(entry({ path: "t/", type: "Directory" }), entry({ path: "t/a", type: "File" }, Buffer.from("a")), entry({ path: "t/h", type: "Link", linkpath: "t/a" }))],
    ["a device node", () => archive(entry({ path: "t/", type: "Directory" }), entry({ path: "t/mem", type: "CharacterDevice", devmaj: 1, devmin: 1 }))],
    ["a fifo", () => archive(entry({ path: "t/", type: "Directory" }), entry({ path: "t/fifo", type: "FIFO" }))],
    ["a second top entry", () => archive(entry({ path: "t", type: "File" }, Buffer.from("a")), entry({ path: "other", type: "File" }, Buffer.from("b")))],
    ["a gzip stream", () => Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(2000)])],
    ["garbage", () => Buffer.alloc(4096, 0x41)]
  ]
  for (const [name, make] of attacks) {
    it(`refuses ${name} and leaves nothing`, async () => {
      const { outcome } = await extract(make())
      expect(outcome).toBeInstanceOf(CopyError)
      expect(fs.existsSync(path.join(dest, "t"))).toBe(false)
      leftNothing()
    })
  }

  for (const target of ["OUTSIDE", "../../outside"]) {
    it(`never writes through a symlink of the archive (to ${target}): the link is replaced inside the copy`, async () => {
      const { outcome } = await extract(archive(
        entry({ path: "t/", type: "Directory" }),
        entry({ path: "t/l", type: "SymbolicLink", linkpath: target.replace("OUTSIDE", `${dir}/outside`) }),
        entry({ path: "t/l/pwned", type: "File" }, Buffer.from("x"))
      ))
      expect(outcome).toBeUndefined()
      expect(fs.lstatSync(path.join(dest, "t", "l")).isDirectory()).toBe(true)
      expect(fs.readFileSync(path.join(dest, "t", "l", "pwned"), "utf8")).toBe("x")
      fs.rmSync(path.join(dest, "t"), { recursive: true })
      leftNothing()
    })
  }

  it("stops a guest that streams for ever at maxBytes, cancels it, removes the partial copy", async () => {
    const endless = function*() {
      yield entry({ path: "t", type: "File" }, Buffer.alloc(0)).subarray(0, 0)
      const h = new Header({ path: "t", type: "File", mode: 0o644, size: 8 * 1024 ** 3 })
      h.encode()
      yield h.block!
      const zeros = Buffer.alloc(32 * 1024)
      for (;;) yield zeros
    }
    const { outcome, source } = await extract(endless(), "t", dest, { maxBytes: 4 * 1024 * 1024, maxEntries: 10 })
    expect(outcome).toBeInstanceOf(CopyError)
    expect((outcome as Error).message).toMatch(/maxBytes/)
    expect(source.cancelled).toBe(true)
    leftNothing()
  })

  it("stops at maxEntries", async () => {
    const many = [entry({ path: "t/", type: "Directory" })]
    for (let i = 0; i < 20; i++) many.push(entry({ path: `t/f${i}`, type: "File" }))
    const { outcome } = await extract(archive(...many), "t", dest, { maxBytes: limits.maxBytes, maxEntries: 10 })
    expect((outcome as Error).message).toMatch(/maxEntries/)
    leftNothing()
  })

  it("handles an existing destination as cp: into a directory, replacing files and links, merging directories", async () => {
    // To a new name.
    expect((await extract(archive(entry({ path: "f", type: "File" }, Buffer.from("one"))), "f", path.join(dest, "renamed"))).outcome).toBeUndefined()
    expect(fs.readFileSync(path.join(dest, "renamed"), "utf8")).toBe("one")
    // Onto an existing file: replaced.
    expect((await extract(archive(entry({ path: "f", type: "File" }, Buffer.from("two"))), "f", path.join(dest, "renamed"))).outcome).toBeUndefined()
    expect(fs.readFileSync(path.join(dest, "renamed"), "utf8")).toBe("two")
    // Onto a symlink to a file outside: the link is replaced, the outside file untouched.
    const victim = path.join(dir, "outside", "victim")
    fs.writeFileSync(victim, "safe")
    fs.symlinkSync(victim, path.join(dest, "link"))
    expect((await extract(archive(entry({ path: "f", type: "File" }, Buffer.from("x"))), "f", path.join(dest, "link"))).outcome).toBeUndefined()
    expect(fs.readFileSync(victim, "utf8")).toBe("safe")
    expect(fs.lstatSync(path.join(dest, "link")).isFile()).toBe(true)
    fs.rmSync(victim)
    // A tree merged into an existing one.
    fs.mkdirSync(path.join(dest, "t"))
    fs.writeFileSync(path.join(dest, "t", "keep"), "kept")
    const tree = archive(entry({ path: "t/", type: "Directory" }), entry({ path: "t/new", type: "File" }, Buffer.from("n")))
    expect((await extract(tree)).outcome).toBeUndefined()
    expect(fs.readdirSync(path.join(dest, "t")).sort()).toEqual(["keep", "new"])
    // A directory onto a file, and a file onto a directory: refused, nothing moved.
    fs.writeFileSync(path.join(dest, "t", "sub"), "file")
    const conflict = archive(entry({ path: "t/", type: "Directory" }), entry({ path: "t/aaa", type: "File" }, Buffer.from("a")), entry({ path: "t/sub/", type: "Directory" }))
    expect((await extract(conflict)).outcome).toBeInstanceOf(CopyError)
    expect(fs.existsSync(path.join(dest, "t", "aaa"))).toBe(false)
    expect((await extract(archive(entry({ path: "t", type: "File" }, Buffer.from("f")))))).toMatchObject({ outcome: expect.any(CopyError) })
    leftNothing()
  })

  it("names a missing destination parent, and never follows a symlink at the destination unless asked with a trailing /", async () => {
    await expect(destinationOf(path.join(dir, "no", "such"), "t")).rejects.toBeInstanceOf(PathNotFound)
    fs.symlinkSync(path.join(dir, "outside"), path.join(dest, "out-link"))
    expect(await destinationOf(path.join(dest, "out-link"), "t")).toBe(path.join(dest, "out-link"))
    expect((await extract(archive(entry({ path: "t/", type: "Directory" })), "t", path.join(dest, "out-link"))).outcome).toBeInstanceOf(CopyError)
    expect(await destinationOf(`${path.join(dest, "out-link")}/`, "t")).toBe(path.join(dest, "out-link", "t"))
    fs.rmSync(path.join(dest, "out-link"))
    leftNothing()
  })
})

describe("readFile's reader", () => {
  it("returns the file, refuses a directory, a second file and oversize", async () => {
    const file = archive(entry({ path: "f", type: "File" }, Buffer.from("hello")))
    expect(Buffer.from(await readSingleFile(sourceOf(file), "/f", limits)).toString()).toBe("hello")
    await expect(readSingleFile(sourceOf(archive(entry({ path: "d/", type: "Directory" }))), "/d", limits)).rejects.toThrow(/is a directory/)
    await expect(readSingleFile(sourceOf(archive(entry({ path: "f", type: "File" }), entry({ path: "g", type: "File" }))), "/f", limits)).rejects.toThrow(/more than one/)
    const big = archive(entry({ path: "f", type: "File" }, Buffer.alloc(3 * 1024 * 1024)))
    await expect(readSingleFile(sourceOf(big), "/f", { maxBytes: 1024 * 1024, maxEntries: 1 })).rejects.toThrow(/maxBytes/)
  })
})

describe("copyIn's packer", () => {
  const sink = () => {
    const chunks: Array<Buffer> = []
    const s: ArchiveSink & { chunks: Array<Buffer>; ended: boolean; cancelled: boolean } = {
      chunks,
      ended: false,
      cancelled: false,
      write: async (b) => void chunks.push(Buffer.from(b)),
      end: () => void (s.ended = true),
      cancel: () => void (s.cancelled = true)
    }
    return s
  }

  it("archives a tree with its symlinks as links, in bounded chunks", async () => {
    const src = path.join(dir, "src")
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, "big"), Buffer.alloc(3 * 1024 * 1024, 1))
    fs.symlinkSync("/etc/passwd", path.join(src, "link"))
    const s = sink()
    await packInto(src, s)
    expect(s.ended).toBe(true)
    expect(Math.max(...s.chunks.map((c) => c.length))).toBeLessThanOrEqual(1024 * 1024)
    const listing = execFileSync("tar", ["-tvf", "-"], { input: Buffer.concat(s.chunks) }).toString()
    expect(listing).toMatch(/src\/link -> \/etc\/passwd/)
    expect(listing).toMatch(/3145728 .*src\/big/)
  })

  it("refuses a fifo (never opening it) and names a missing source", async () => {
    const src = path.join(dir, "src")
    fs.mkdirSync(src)
    execFileSync("mkfifo", [path.join(src, "fifo")])
    const s = sink()
    await expect(packInto(src, s)).rejects.toThrow(/fifo is not a regular file/)
    expect(s.cancelled).toBe(true)
    await expect(packInto(path.join(dir, "src", "fifo"), sink())).rejects.toBeInstanceOf(CopyError)
    await expect(packInto(path.join(dir, "missing"), sink())).rejects.toBeInstanceOf(PathNotFound)
  })

  it("passes the guest's refusal up as it is, and reports an unreadable file naming it", async () => {
    const src = path.join(dir, "src")
    fs.mkdirSync(src)
    fs.writeFileSync(path.join(src, "f"), Buffer.alloc(1024 * 1024))
    const refusal = new Error("not_found from the guest")
    const refusing = { ...sink(), write: async () => Promise.reject(refusal) }
    await expect(packInto(src, refusing)).rejects.toBe(refusal)
    if (process.getuid!() !== 0) {
      fs.chmodSync(path.join(src, "f"), 0)
      await expect(packInto(src, sink())).rejects.toThrow(/copying .*src/)
    }
  })

  it("makes the one-file archive of writeFile", () => {
    const listing = execFileSync("tar", ["-tvf", "-"], { input: Buffer.concat(singleFileArchive(Buffer.from("abc"), 0o750)) }).toString()
    expect(listing).toMatch(/^-rwxr-x--- .* 3 .*file$/m)
  })
})

/**
 * Files in and out of a box: copyIn / copyOut of files and trees, readFile / writeFile, typed
 * errors for missing paths, and a guest that turns its tree against the host.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Box, Boxlite, CopyError, InvalidOptions, PathNotFound, SimpleBox } from "boxlite"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { boxDirs, BUSYBOX, qemuProcessesUnder, sh, tempHome } from "./helpers.js"

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-files-"))
let box: Box

beforeAll(async () => {
  box = await runtime.create({ image: BUSYBOX, memoryMib: 512 })
  await box.start()
}, 120_000)

afterAll(async () => {
  await box?.remove()
  await runtime.close()
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
  fs.rmSync(work, { recursive: true, force: true })
  fs.rmSync(home, { recursive: true, force: true })
})

const hostDir = (name: string) => fs.mkdtempSync(path.join(work, `${name}-`))
const mode = (p: string) => fs.lstatSync(p).mode & 0o7777
const sha = (p: string) => createHash("sha256").update(fs.readFileSync(p)).digest("hex")
const caught = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => e)

describe("files in and out", () => {
  it("copies a tree in and back out: contents, modes, symlinks as links, cp's placement", async () => {
    const src = path.join(hostDir("src"), "tree")
    fs.mkdirSync(path.join(src, "sub", "empty"), { recursive: true })
    fs.writeFileSync(path.join(src, "run.sh"), "#!/bin/sh\necho ran\n", { mode: 0o750 })
    fs.writeFileSync(path.join(src, "sub", "secret"), "s3cret", { mode: 0o600 })
    fs.writeFileSync(path.join(src, "sub", "naïve name.txt"), "unicode")
    fs.symlinkSync("/etc/passwd", path.join(src, "passwd"))
    fs.symlinkSync("../run.sh", path.join(src, "sub", "up"))
    fs.chmodSync(path.join(src, "sub"), 0o711)

    // Into an existing directory, then to a new name.
    await box.copyIn(src, "/root")
    await box.copyIn(src, "/root/renamed")
    const inGuest = await sh(box, [
      "cd /root/tree && ./run.sh && stat -c '%a %n' run.sh sub sub/secret && cat sub/secret 'sub/naïve name.txt' && echo",
      "readlink passwd && readlink sub/up && for f in /root/renamed/sub/*; do echo \"${f##*/}\"; done && stat -c '%u' run.sh"
    ].join(" && "))
    expect(inGuest).toMatchObject({ exitCode: 0, err: "" })
    expect(inGuest.out.split("\n")).toEqual([
      "ran", "750 run.sh", "711 sub", "600 sub/secret", "s3cretunicode", "/etc/passwd", "../run.sh", "empty", "naïve name.txt", "secret", "up", "0"
    ])

    // Out into an existing directory (cp: lands inside it), and to a new name.
    const out = hostDir("out")
    await box.copyOut("/root/tree", out)
    await box.copyOut("/root/tree/sub/secret", path.join(out, "secret-copy"))
    const back = path.join(out, "tree")
    expect(fs.readFileSync(path.join(back, "run.sh"), "utf8")).toBe("#!/bin/sh\necho ran\n")
    expect([mode(path.join(back, "run.sh")), mode(path.join(back, "sub")), mode(path.join(back, "sub", "secret"))]).toEqual([0o750, 0o711, 0o600])
    expect(fs.readlinkSync(path.join(back, "passwd"))).toBe("/etc/passwd")
    expect(fs.readlinkSync(path.join(back, "sub", "up"))).toBe("../run.sh")
    expect(fs.readdirSync(path.join(back, "sub", "empty"))).toEqual([])
    expect(fs.readFileSync(path.join(back, "sub", "naïve name.txt"), "utf8")).toBe("unicode")
    expect(fs.readFileSync(path.join(out, "secret-copy"), "utf8")).toBe("s3cret")
    expect(fs.readdirSync(out).sort()).toEqual(["secret-copy", "tree"])
  })

  it("reads and writes small files; a symlink is followed by readFile and replaced by writeFile", async () => {
    await box.writeFile("/root/note.txt", "hello from the host\n", { mode: 0o640 })
    expect((await sh(box, "stat -c '%a %u' /root/note.txt && cat /root/note.txt")).out).toBe("640 0\nhello from the host")
    await sh(box, "ln -s /root/note.txt /root/link && printf 'bin\\0ary' > /root/bin")
    expect(Buffer.from(await box.readFile("/root/link")).toString()).toBe("hello from the host\n")
    expect(Buffer.from(await box.readFile("/root/bin"))).toEqual(Buffer.from("bin\0ary"))
    await box.writeFile("/root/link", new Uint8Array([1, 2, 3]))
    expect((await sh(box, "test -L /root/link || echo replaced; cat /root/note.txt")).out).toBe("replaced\nhello from the host")
    expect(await caught(box.readFile("/root"))).toBeInstanceOf(CopyError)
    expect(await caught(box.writeFile("/root", "x"))).toBeInstanceOf(CopyError)
  })

  it("names missing paths with typed errors, on either side, and refuses bad arguments", async () => {
    const out = hostDir("missing")
    const cases: Array<[() => Promise<unknown>, string, "host" | "guest"]> = [
      [() => box.copyOut("/no/such/file", out), "/no/such/file", "guest"],
      [() => box.readFile("/no/such/file"), "/no/such/file", "guest"],
      [() => box.copyIn(path.join(out, "absent"), "/root"), path.join(out, "absent"), "host"],
      [() => box.copyIn(out, "/no/such/dir/x"), "/no/such/dir", "guest"],
      [() => box.writeFile("/no/such/dir/x", "x"), "/no/such/dir", "guest"],
      [() => box.copyOut("/root/note.txt", path.join(out, "no", "such")), path.join(out, "no"), "host"]
    ]
    for (const [attempt, missing, side] of cases) {
      const error = await caught(attempt())
      expect(error).toBeInstanceOf(PathNotFound)
      expect(error).toMatchObject({ path: missing, side })
      expect((error as Error).message).toContain(missing)
    }
    expect(await caught(box.copyOut("relative/path", out))).toMatchObject({ _tag: "InvalidOptions", field: "guestPath" })
    expect(await caught(box.copyIn(out, "/"))).toBeInstanceOf(InvalidOptions)
    expect(await caught(box.copyOut("/root", out, { maxBytes: -1 }))).toMatchObject({ _tag: "InvalidOptions", field: "copy.maxBytes" })
    expect(await caught(box.writeFile("/root/x", "x", { mode: 0o4755 }))).toMatchObject({ _tag: "InvalidOptions", field: "writeFile.mode" })
    // A special file on the host is refused before anything of it is read.
    fs.mkdirSync(path.join(out, "withfifo"))
    const { execFileSync } = await import("node:child_process")
    execFileSync("mkfifo", [path.join(out, "withfifo", "pipe")])
    expect(await caught(box.copyIn(path.join(out, "withfifo"), "/root"))).toBeInstanceOf(CopyError)
    expect(fs.readdirSync(out).sort()).toEqual(["withfifo"])
  })

  it("a hostile guest tree cannot reach outside the destination, keep setuid bits, owners or special files", async () => {
    const passwdBefore = sha("/etc/passwd")
    const prepared = await sh(box, [
      "mkdir -p /root/evil/dir && cd /root/evil",
      "ln -s /etc/passwd passwd && ln -s ../../../../../../etc up",
      "echo payload > suid && chmod 6755 suid && chown 1234:1234 suid",
      "mkfifo fifo && mknod mem c 1 1",
      "mkdir -p /root/evil2/up && echo pwned > /root/evil2/up/passwd"
    ].join(" && "))
    expect(prepared.exitCode).toBe(0)
    const out = hostDir("hostile")
    await box.copyOut("/root/evil", out)
    const evil = path.join(out, "evil")
    expect(fs.readdirSync(evil).sort()).toEqual(["dir", "passwd", "suid", "up"])
    expect(fs.readlinkSync(path.join(evil, "passwd"))).toBe("/etc/passwd")
    expect(fs.readlinkSync(path.join(evil, "up"))).toBe("../../../../../../etc")
    const suid = fs.statSync(path.join(evil, "suid"))
    expect(suid.mode & 0o7777).toBe(0o755)
    expect([suid.uid, suid.gid]).toEqual([process.getuid!(), process.getgid!()])
    // Second step: a directory "up" whose file would land in the host's /etc through the link
    // the first copy made. The link is not a directory: refused, nothing written through it.
    const error = await caught(box.copyOut("/root/evil2/up", evil))
    expect(error).toBeInstanceOf(CopyError)
    expect((error as Error).message).toMatch(/cannot overwrite non-directory/)
    // Naming the link itself as the destination does not follow it either.
    expect(await caught(box.copyOut("/root/evil2/up", path.join(evil, "up")))).toBeInstanceOf(CopyError)
    expect(sha("/etc/passwd")).toBe(passwdBefore)
    expect(fs.existsSync("/etc/up")).toBe(false)
    expect(fs.readdirSync(evil).filter((n) => n.startsWith(".boxlite-copy-"))).toEqual([])
  })

  it("bounds what the guest may send: past maxBytes the copy fails and leaves nothing; the box goes on", async () => {
    expect((await sh(box, "dd if=/dev/zero of=/root/big8 bs=1M count=8 2>/dev/null && echo ok")).out).toBe("ok")
    const out = hostDir("bounded")
    const error = await caught(box.copyOut("/root/big8", out, { maxBytes: 1024 * 1024 }))
    expect(error).toBeInstanceOf(CopyError)
    expect((error as Error).message).toMatch(/maxBytes/)
    expect(fs.readdirSync(out)).toEqual([])
    expect(await caught(box.readFile("/root/big8", { maxBytes: 1024 * 1024 }))).toBeInstanceOf(CopyError)
    // The cancelled copies left the agent in order.
    expect((await sh(box, "echo still here")).out).toBe("still here")
    expect((await box.readFile("/root/note.txt")).length).toBe(20)
  })

  it("streams a 64 MiB file both ways in frames, with modest host memory", async () => {
    const dir = hostDir("big")
    const big = path.join(dir, "big.bin")
    const fd = fs.openSync(big, "w")
    for (let i = 0; i < 64; i++) fs.writeSync(fd, randomBytes(1024 * 1024))
    fs.closeSync(fd)
    const digest = sha(big)
    let peak = 0
    const base = process.memoryUsage().rss
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - base)), 20)
    try {
      await box.copyIn(big, "/root/big.bin")
      expect((await sh(box, "sha256sum /root/big.bin")).out.split(" ")[0]).toBe(digest)
      await box.copyOut("/root/big.bin", path.join(dir, "back.bin"))
    } finally {
      clearInterval(sampler)
    }
    expect(sha(path.join(dir, "back.bin"))).toBe(digest)
    // The whole file would be 64 MiB: the transfer holds a window's worth, plus GC slack.
    expect(peak).toBeLessThan(48 * 1024 * 1024)
    await sh(box, "rm /root/big.bin")
  }, 300_000)
})

describe("SimpleBox files", () => {
  it("copies in, writes, reads and copies out through a SimpleBox", async () => {
    const dir = hostDir("simple")
    fs.writeFileSync(path.join(dir, "input.txt"), "input")
    // One VM at a time on a shared machine: the box of the tests above is done.
    await box.stop()
    await using simple = new SimpleBox({ image: BUSYBOX, runtime, readyTimeoutMs: 180_000 })
    await simple.copyIn(path.join(dir, "input.txt"), "/root/")
    await simple.writeFile("/root/more.txt", "more")
    expect((await simple.exec("cat", "/root/input.txt", "/root/more.txt")).stdout).toBe("inputmore")
    expect(Buffer.from(await simple.readFile("/root/more.txt")).toString()).toBe("more")
    await simple.copyOut("/root/input.txt", path.join(dir, "output.txt"))
    expect(fs.readFileSync(path.join(dir, "output.txt"), "utf8")).toBe("input")
  }, 240_000)
})

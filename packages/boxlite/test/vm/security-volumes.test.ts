/**
 * Volumes attacked from inside the guest (root there), each threat checked on the host side.
 * The runtime runs as root here, as the README's quick start does: the case where virtiofsd
 * could hand the guest the most.
 */
import { afterAll, describe, expect, it } from "vitest"
import { type Box, Boxlite, BoxStateError } from "boxlite"
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { BUSYBOX, PYTHON, qemuProcessesUnder, sh, tempHome } from "./helpers.js"

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
afterAll(() => runtime.close())

const hostDir = (files: Record<string, string> = {}) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-secvol-"))
  fs.chmodSync(dir, 0o755)
  for (const [file, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), content)
  return dir
}

/** Every entry under `dir` (lstat: symlinks are not followed). */
const walk = (dir: string): Array<{ file: string; stat: fs.Stats }> =>
  fs.readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name)
    const stat = fs.lstatSync(file)
    return [{ file, stat }, ...(stat.isDirectory() ? walk(file) : [])]
  })

const python = async (box: Box, code: string, user?: string) => {
  // Another user than root runs from /tmp: the image's /root is not theirs.
  const execution = await box.exec("python3", ["-c", code], user ? { user, workingDir: "/tmp" } : undefined)
  const [out, err, result] = await Promise.all([execution.stdout().text(), execution.stderr().text(), execution.wait()])
  return { out: out.trim(), err: err.trim(), exitCode: result.exitCode }
}

/** The runtime user's first subordinate range (what `unshare --map-auto` maps guest ids from 1 to). */
const subordinate = (file: "/etc/subuid" | "/etc/subgid", own: number) => {
  const line = (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "").split("\n").map((l) => l.split(":"))
    .find(([owner]) => owner === os.userInfo().username || owner === String(own))
  return line && { start: Number(line[1]), count: Number(line[2]) }
}

/** The host ids a file the guest creates may belong to: the runtime's, or its subordinate range. */
const allowedIds = (file: "/etc/subuid" | "/etc/subgid", own: number) => {
  const range = subordinate(file, own)
  return (id: number) => id === own || (range !== undefined && id !== 0 && id >= range.start && id < range.start + range.count)
}

/** Processes whose command line mentions this box's run directory (its virtiofsd, QEMU). */
const processesOfBox = (id: string): Array<string> => {
  try {
    return execFileSync("pgrep", ["-f", `boxlite-${id.slice(-8)}-`]).toString().trim().split("\n").filter(Boolean)
  } catch {
    return []
  }
}

/** The mounts virtiofsd of this box sees (it is chrooted to its share: "/" is the share). */
const shareMounts = (id: string): Array<{ point: string; options: string; fs: string; superOptions: string }> => {
  const [pid] = execFileSync("pgrep", ["-f", `^/usr/lib/qemu/virtiofsd --socket-path=.*boxlite-${id.slice(-8)}-`]).toString().trim().split("\n")
  return fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8").trim().split("\n").map((line) => {
    const [left, right] = line.split(" - ")
    const fields = left!.split(" ")
    const [type, , superOptions] = right!.split(" ")
    return { point: fields[4]!, options: fields[5]!, fs: type!, superOptions: superOptions! }
  })
}

const shmemKb = () => Number(/^Shmem:\s+(\d+) kB/m.exec(fs.readFileSync("/proc/meminfo", "utf8"))?.[1])

describe("volumes under attack from the guest", () => {
  const rw = hostDir({ "existing.txt": "host file\n" })
  let box: Box
  afterAll(() => box?.remove())

  it("volume-setuid: chmod 4755 / open(O_CREAT,04755) / mkdir 02755 through an rw volume leave no setuid/setgid bit on the host", async () => {
    box = await runtime.create({ image: PYTHON, volumes: [[rw, "/mnt/rw", "rw"]] })
    const copied = await sh(box, "cp /bin/ls /mnt/rw/bb && chmod 4755 /mnt/rw/bb; echo chmod=$?; chmod 2755 /mnt/rw/bb; chmod 6755 /mnt/rw/existing.txt; mkdir /mnt/rw/d && chmod g+s /mnt/rw/d; sync")
    const created = await python(box, [
      "import os",
      "def attempt(what, f):",
      "    try:",
      "        f(); print(what, 'ok')",
      "    except OSError as e:",
      "        print(what, e.errno)",
      "attempt('open', lambda: os.close(os.open('/mnt/rw/created', os.O_CREAT | os.O_WRONLY, 0o4755)))",
      "attempt('open-sgid', lambda: os.close(os.open('/mnt/rw/created-sgid', os.O_CREAT | os.O_WRONLY, 0o2755)))",
      "attempt('mkdir', lambda: os.mkdir('/mnt/rw/sgid-dir', 0o2755))",
      "attempt('chmod', lambda: os.chmod('/mnt/rw/existing.txt', 0o4777))",
      "os.sync()"
    ].join("\n"))
    // The attack went through the volume (the files exist on the host)...
    expect(fs.existsSync(path.join(rw, "bb"))).toBe(true)
    expect(fs.existsSync(path.join(rw, "d"))).toBe(true)
    // ...and nothing there carries a setuid or setgid bit: the guest was told EPERM.
    const flagged = walk(rw).filter(({ stat }) => (stat.mode & 0o6000) !== 0).map(({ file, stat }) => `${file} ${stat.mode.toString(8)}`)
    expect(flagged).toEqual([])
    expect(copied.out).toMatch(/chmod=[1-9]/)
    expect(created.out).toMatch(/^chmod 1$/m)
  }, 240_000)

  it("volume-device-node: mknod c/b fails and leaves nothing", async () => {
    const made = await sh(box, "mknod -m 666 /mnt/rw/null2 c 1 3; echo c=$?; mknod /mnt/rw/blk b 7 0; echo b=$?; mknod -m 666 /mnt/rw/whiteout c 0 0; echo w=$?; sync")
    const viaSyscall = await python(box, "import os, stat\ntry:\n    os.mknod('/mnt/rw/tty2', 0o666 | stat.S_IFCHR, os.makedev(5, 0)); print('made')\nexcept OSError as e:\n    print(e.errno)")
    const devices = walk(rw).filter(({ stat }) => stat.isCharacterDevice() || stat.isBlockDevice()).map(({ file }) => file)
    expect(devices).toEqual([])
    expect(made.out).toMatch(/c=[1-9]/)
    expect(made.out).toMatch(/b=[1-9]/)
    expect(viaSyscall.out).not.toBe("made")
  }, 120_000)

  it("volume-ownership: files created by guest root and guest uid 1000 are owned by the runtime user or an unprivileged mapped uid", async () => {
    const uid = process.getuid!()
    const gid = process.getgid!()
    const rootMade = await sh(box, "touch /mnt/rw/by-root && mkdir -m 777 /mnt/rw/shared && chown 0:0 /mnt/rw/by-root; chown 1234:1234 /mnt/rw/existing.txt; echo chown=$?; sync")
    expect(rootMade.exitCode).toBe(0)
    // Guest uid 1000 creates a file owned by a subordinate id; without subordinate ids it cannot create at all.
    const user = await python(box, "import os\ntry:\n    open('/mnt/rw/shared/by-1000', 'w').write('x'); os.mkdir('/mnt/rw/shared/dir-1000'); print('created')\nexcept OSError as e:\n    print(e.errno)", "1000:1000")
    expect(user.exitCode, user.err).toBe(0)
    expect(fs.statSync(path.join(rw, "by-root")).uid).toBe(uid)
    const range = subordinate("/etc/subuid", uid)
    if (range) {
      expect(user.out).toBe("created")
      expect(fs.statSync(path.join(rw, "shared", "by-1000")).uid).toBe(range.start + 999)
    } else {
      expect(user.out).toMatch(/^\d+$/)
      expect(fs.readdirSync(path.join(rw, "shared"))).toEqual([])
    }
    const uidOk = allowedIds("/etc/subuid", uid)
    const gidOk = allowedIds("/etc/subgid", gid)
    const foreign = walk(rw).filter(({ stat }) => !uidOk(stat.uid) || !gidOk(stat.gid)).map(({ file, stat }) => `${file} ${stat.uid}:${stat.gid}`)
    expect(foreign).toEqual([])
  }, 120_000)

  it("volume-file-capabilities: setfattr security.capability fails", async () => {
    // A file capability v2 blob granting cap_setuid: what `setcap cap_setuid+ep` writes.
    const capability = "bytes([0, 0, 0, 2, 0x80, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])"
    const set = await python(box, `import os\nfor name in ('security.capability', 'user.note', 'trusted.x'):\n    try:\n        os.setxattr('/mnt/rw/bb', name, ${capability}); print(name, 'set')\n    except OSError as e:\n        print(name, e.errno)`)
    expect(set.out).not.toMatch(/set$/m)
    const onHost = spawnSync("python3", ["-c", `import os, sys\nprint(os.listxattr(sys.argv[1]))`, path.join(rw, "bb")], { encoding: "utf8" })
    expect(onHost.stdout.trim()).toBe("[]")
  }, 120_000)
})

describe("single-file volumes under attack from the guest", () => {
  it("ro-single-file-tmpfs: remount rw and write fails; no host Shmem growth", async () => {
    const dir = hostDir({ "app.conf": "setting=1\n" })
    const box = await runtime.create({ image: BUSYBOX, memoryMib: 256, volumes: [[path.join(dir, "app.conf"), "/etc/app.conf", "ro"]] })
    try {
      expect((await sh(box, "cat /etc/app.conf")).out).toBe("setting=1")
      // On the host side, the share is a 4 KiB tmpfs, read-only, holding the file read-only.
      const mounts = shareMounts(box.id)
      expect(mounts.find((m) => m.point === "/")).toMatchObject({ fs: "tmpfs", options: expect.stringMatching(/^ro,/), superOptions: expect.stringContaining("size=4k") })
      expect(mounts.find((m) => m.point === "/app.conf")?.options).toMatch(/^ro,/)
      const before = shmemKb()
      // The share behind the file is /run/boxlite/volumes/v0: remount it, fill it as far as it goes.
      const fill = await sh(box, "mount -o remount,rw /run/boxlite/volumes/v0; echo remount=$?; dd if=/dev/zero of=/run/boxlite/volumes/v0/fill bs=1M count=300; echo dd=$?; mkdir /run/boxlite/volumes/v0/d; echo mkdir=$?; echo x >> /etc/app.conf; echo append=$?; sync")
      const after = shmemKb()
      expect(fill.out).toMatch(/dd=[1-9]/)
      expect(fill.out).toMatch(/mkdir=[1-9]/)
      expect(fill.out).toMatch(/append=[1-9]/)
      expect(fill.err).not.toMatch(/300\+0 records out/)
      // Other boxes on this machine move Shmem too (their RAM is memfd): the bound is loose, the
      // finding was +1.19 GB, and the guest here tried to write 300 MB.
      expect(after - before).toBeLessThan(100 * 1024)
      expect(fs.readdirSync(dir)).toEqual(["app.conf"])
      expect(fs.readFileSync(path.join(dir, "app.conf"), "utf8")).toBe("setting=1\n")
    } finally {
      await box.remove()
    }
  }, 180_000)

  it("rw-single-file-no-siblings", async () => {
    const dir = hostDir({ "log.txt": "", "secret.txt": "do not share" })
    const box = await runtime.create({ image: BUSYBOX, volumes: [[path.join(dir, "log.txt"), "/var/log/app.log", "rw"]] })
    try {
      const attack = await sh(box, [
        "echo logged >> /var/log/app.log; echo write=$?",
        "echo x > /run/boxlite/volumes/v0/sibling; echo sibling=$?",
        "mkdir /run/boxlite/volumes/v0/d; echo mkdir=$?",
        "ln -s /etc /run/boxlite/volumes/v0/link; echo link=$?",
        "mount -o remount,rw /run/boxlite/volumes/v0; echo y > /run/boxlite/volumes/v0/sibling2; echo sibling2=$?",
        "sync"
      ].join("; "))
      const mounts = shareMounts(box.id)
      expect(mounts.find((m) => m.point === "/")).toMatchObject({ fs: "tmpfs", options: expect.stringMatching(/^ro,/) })
      expect(mounts.find((m) => m.point === "/log.txt")?.options).toMatch(/^rw,/)
      expect(attack.out).toMatch(/write=0/)
      for (const what of ["sibling", "mkdir", "link", "sibling2"]) expect(attack.out).toMatch(new RegExp(`${what}=[1-9]`))
      expect(fs.readFileSync(path.join(dir, "log.txt"), "utf8")).toBe("logged\n")
      expect(fs.readdirSync(dir).sort()).toEqual(["log.txt", "secret.txt"])
    } finally {
      await box.remove()
    }
  }, 180_000)
})

describe("volume sources that change after create", () => {
  const refusedStart = async (box: Box, field: string) => {
    const error = await box.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BoxStateError)
    expect(String((error as Error).message)).toContain(field)
    // Nothing of the box is left running: no QEMU, no virtiofsd, no run directory.
    expect(qemuProcessesUnder(home)).toEqual([])
    expect(processesOfBox(box.id)).toEqual([])
    expect(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`boxlite-${box.id.slice(-8)}-`))).toEqual([])
    expect((await box.info()).status).not.toBe("running")
  }

  it("volume-symlink-swap: after the source becomes a symlink the start is refused with the typed error, nothing left running", async () => {
    const secret = path.join(hostDir({ "host-secret.txt": "host secret\n" }), "host-secret.txt")
    const data = hostDir({ "shared.txt": "shared\n" })
    // The file is shared read-only on its own, and read-write through its directory: by the
    // same box, and by a second box that has only the file.
    const box = await runtime.create({ image: BUSYBOX, autoRemove: false, volumes: [[data, "/mnt/rw", "rw"], [path.join(data, "shared.txt"), "/etc/shared.txt", "ro"]] })
    const other = await runtime.create({ image: BUSYBOX, autoRemove: false, volumes: [[path.join(data, "shared.txt"), "/etc/shared.txt", "ro"]] })
    try {
      expect((await sh(other, "cat /etc/shared.txt")).out).toBe("shared")
      await other.stop()
      expect((await sh(box, "cat /etc/shared.txt")).out).toBe("shared")
      expect((await sh(box, `rm /mnt/rw/shared.txt && ln -s ${secret} /mnt/rw/shared.txt && sync`)).exitCode).toBe(0)
      expect(fs.lstatSync(path.join(data, "shared.txt")).isSymbolicLink()).toBe(true)
      await box.stop()
      await refusedStart(box, "volumes[1].hostPath")
      await refusedStart(other, "volumes[0].hostPath")
    } finally {
      await box.remove()
      await other.remove()
    }
  }, 180_000)

  it("volume-identity-changed: source replaced by another dir", async () => {
    const parent = hostDir()
    const source = path.join(parent, "data")
    fs.mkdirSync(source)
    const box = await runtime.create({ image: BUSYBOX, autoRemove: false, volumes: [[source, "/mnt/data", "ro"]] })
    try {
      // Swapped before the first start: a directory of the same name, then a symlink to one.
      fs.renameSync(source, `${source}.old`)
      fs.mkdirSync(source)
      await refusedStart(box, "volumes[0].hostPath")
      fs.rmdirSync(source)
      fs.symlinkSync(`${source}.old`, source)
      await refusedStart(box, "volumes[0].hostPath")
      // The original back in place: the box starts.
      fs.unlinkSync(source)
      fs.renameSync(`${source}.old`, source)
      await box.start()
      expect((await box.info()).status).toBe("running")
    } finally {
      await box.remove()
    }
  }, 180_000)
})

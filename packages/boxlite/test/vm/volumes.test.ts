import { afterAll, describe, expect, it } from "vitest"
import { Boxlite, InvalidOptions } from "boxlite"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { boxDirs, BUSYBOX, PYTHON, tempHome, sh } from "./helpers.js"

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
afterAll(() => runtime.close())

const hostDir = (name: string, files: Record<string, string> = {}) => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bl-vol-")), name)
  fs.mkdirSync(dir, { recursive: true })
  for (const [file, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), content)
  return dir
}

describe("volumes", () => {
  it("a read-only volume refuses writes even after a remount; a read-write one writes to the host", async () => {
    const ro = hostDir("config dir", { "app.conf": "setting=1\n" })
    const rw = hostDir("data")
    // The host's temp dir holds the box's own run directory: sharing it read-only must work too.
    const box = await runtime.create({ image: BUSYBOX, volumes: [[ro, "/etc/app", "ro"], { hostPath: rw, guestPath: "/mnt/data", readOnly: false }, [os.tmpdir(), "/mnt/hosttmp", "ro"]] })
    expect((await sh(box, "cat /etc/app/app.conf")).out).toBe("setting=1")
    expect((await sh(box, "echo x > /etc/app/new")).exitCode).not.toBe(0)
    // The guest is root: it can remount, but the host still refuses the write.
    await sh(box, "mount -o remount,rw /etc/app")
    const afterRemount = await sh(box, "echo x > /etc/app/new; echo y >> /etc/app/app.conf")
    expect(afterRemount.err).toMatch(/Read-only file system|Permission denied/)
    expect(fs.readdirSync(ro)).toEqual(["app.conf"])
    expect(fs.readFileSync(path.join(ro, "app.conf"), "utf8")).toBe("setting=1\n")
    expect((await sh(box, "echo written-in-the-guest > /mnt/data/out.txt && sync")).exitCode).toBe(0)
    expect(fs.readFileSync(path.join(rw, "out.txt"), "utf8")).toBe("written-in-the-guest\n")
    await box.remove()
  })

  it("shares single files, and nothing else of their directories", async () => {
    const dir = hostDir("single", { "settings.json": "{\"a\":1}", "log.txt": "", "secret.txt": "do not share" })
    const box = await runtime.create({
      image: BUSYBOX,
      volumes: [[path.join(dir, "settings.json"), "/etc/settings.json", "ro"], [path.join(dir, "log.txt"), "/var/log/app.log", "rw"]]
    })
    expect((await sh(box, "cat /etc/settings.json")).out).toBe("{\"a\":1}")
    expect((await sh(box, "echo more > /etc/settings.json")).exitCode).not.toBe(0)
    expect((await sh(box, "echo logged >> /var/log/app.log && sync")).exitCode).toBe(0)
    expect(fs.readFileSync(path.join(dir, "log.txt"), "utf8")).toBe("logged\n")
    // The guest's view of the shares holds the shared files only.
    expect((await sh(box, "grep -rl 'do not share' / --exclude-dir=proc --exclude-dir=sys 2>/dev/null; ls /run/boxlite/volumes/*")).out).not.toContain("secret")
    await box.remove()
  })

  it("mounts 16 volumes in one box", async () => {
    const volumes = Array.from({ length: 16 }, (_, i) => [hostDir(`vol ${i}`, { "id.txt": `volume-${i}` }), `/mnt/v${i}`, i % 2 ? "ro" : "rw"] as const)
    const box = await runtime.create({ image: BUSYBOX, volumes })
    const out = (await sh(box, "for i in $(seq 0 15); do cat /mnt/v$i/id.txt; echo; done")).out.split("\n")
    expect(out).toEqual(volumes.map((_, i) => `volume-${i}`))
    await box.remove()
  }, 180_000)

  it("a missing or relative host path is InvalidOptions naming it, nothing left behind", async () => {
    const missing = await runtime.create({ image: BUSYBOX, volumes: [["/nonexistent/boxlite dir", "/mnt"]] }).catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(InvalidOptions)
    expect((missing as InvalidOptions).field).toBe("volumes[0].hostPath")
    expect(String(missing)).toContain("/nonexistent/boxlite dir")
    const relative = await runtime.create({ image: BUSYBOX, volumes: [["data", "/mnt"]] }).catch((e: unknown) => e)
    expect(relative).toBeInstanceOf(InvalidOptions)
    const guestRelative = await runtime.create({ image: BUSYBOX, volumes: [["/tmp", "mnt"]] }).catch((e: unknown) => e)
    expect(guestRelative).toBeInstanceOf(InvalidOptions)
    expect(boxDirs(home)).toEqual([])
  })
})

// A box of a user who is not root: virtiofsd then runs in a user namespace of that user (see
// packages/driver-qemu/src/internal/helpers.ts). `nobody`, without supplementary groups, gets
// the namespace that maps that user alone; a user with subordinate ids gets `--map-auto`.
describe.skipIf(process.getuid?.() !== 0)("volumes without root", () => {
  it("ro, rw and single-file volumes work for nobody, and what the guest writes is nobody's", async () => {
    const nobody = 65534
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-vol-user-"))
    fs.chmodSync(dir, 0o755)
    const files = { ro: path.join(dir, "ro"), rw: path.join(dir, "rw"), single: path.join(dir, "single") }
    for (const d of Object.values(files)) fs.mkdirSync(d, { mode: 0o755 })
    fs.writeFileSync(path.join(files.ro, "app.conf"), "setting=1\n")
    fs.writeFileSync(path.join(files.single, "log.txt"), "")
    fs.writeFileSync(path.join(files.single, "secret.txt"), "do not share")
    fs.chownSync(files.rw, nobody, nobody)
    fs.chownSync(path.join(files.single, "log.txt"), nobody, nobody)
    const userHome = path.join(dir, "home")
    fs.mkdirSync(userHome)
    fs.chownSync(userHome, nobody, nobody)
    const script = `
      import { Boxlite } from ${JSON.stringify(new URL("../../dist/index.js", import.meta.url).pathname)}
      const runtime = new Boxlite({ homeDir: ${JSON.stringify(userHome)} })
      const box = await runtime.create({ image: ${JSON.stringify(BUSYBOX)}, volumes: [
        [${JSON.stringify(files.ro)}, "/etc/app", "ro"], [${JSON.stringify(files.rw)}, "/mnt/data", "rw"],
        [${JSON.stringify(path.join(files.single, "log.txt"))}, "/var/log/app.log", "rw"]] })
      const sh = async (script) => {
        const e = await box.exec("sh", ["-c", script])
        const [out, err, r] = await Promise.all([e.stdout().text(), e.stderr().text(), e.wait()])
        return { out: out.trim(), err: err.trim(), exitCode: r.exitCode }
      }
      const results = {
        read: await sh("cat /etc/app/app.conf"),
        readOnly: await sh("mount -o remount,rw /etc/app; echo x > /etc/app/new"),
        write: await sh("echo written > /mnt/data/out.txt && echo logged >> /var/log/app.log && sync"),
        single: await sh("ls /run/boxlite/volumes/*")
      }
      await box.remove()
      await runtime.close()
      console.log(JSON.stringify(results))`
    const run = spawnSync("setpriv", ["--reuid", String(nobody), "--regid", String(nobody), "--clear-groups", "--", process.execPath, "--input-type=module", "-e", script], {
      env: { PATH: process.env["PATH"], HOME: userHome },
      encoding: "utf8",
      timeout: 150_000
    })
    const lines = run.stdout.trim().split("\n")
    expect(lines.length, run.stderr).toBeGreaterThan(0)
    const results = JSON.parse(lines[lines.length - 1]!)
    expect(results.read).toMatchObject({ out: "setting=1", exitCode: 0 })
    expect(results.readOnly.err).toMatch(/Read-only file system/)
    expect(results.write).toMatchObject({ exitCode: 0 })
    expect(results.single.out).not.toContain("secret")
    expect(fs.readdirSync(files.ro)).toEqual(["app.conf"])
    expect(fs.readFileSync(path.join(files.rw, "out.txt"), "utf8")).toBe("written\n")
    expect(fs.statSync(path.join(files.rw, "out.txt")).uid).toBe(nobody)
    expect(fs.readFileSync(path.join(files.single, "log.txt"), "utf8")).toBe("logged\n")
    fs.rmSync(dir, { recursive: true, force: true })
  }, 180_000)
})

describe("resources", () => {
  it("cpus and memoryMib are what the guest sees", async () => {
    const box = await runtime.create({ image: BUSYBOX, cpus: 2, memoryMib: 384 })
    expect((await sh(box, "nproc")).out).toBe("2")
    const memTotalKb = Number((await sh(box, "awk '/MemTotal/ {print $2}' /proc/meminfo")).out)
    // MemTotal is the RAM minus what the kernel reserves for itself.
    expect(memTotalKb).toBeGreaterThan(300 * 1024)
    expect(memTotalKb).toBeLessThanOrEqual(384 * 1024)
    await box.remove()
  })

  it("a memory hog is OOM-killed inside its VM while another box keeps answering", async () => {
    const hog = await runtime.create({ image: PYTHON, memoryMib: 256 })
    const other = await runtime.create({ image: BUSYBOX })
    await other.start()
    const eat = await hog.exec("python3", ["-c", "x = []\nwhile True: x.append(bytearray(16 * 1024 * 1024))"])
    const result = await eat.wait()
    expect(result.signal).toBe("SIGKILL")
    expect((await sh(other, "echo still here")).out).toBe("still here")
    expect((await sh(hog, "echo survived")).out).toBe("survived")
    await hog.remove()
    await other.remove()
  }, 180_000)
})

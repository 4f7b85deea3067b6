// Issue 9, "State at rest" and "Faults": secrets on disk readable by other users, and what a
// killed supervisor, a closed runtime, an oversized exec or an impossible disk left behind.
// Each test first shows the thing it attacks is really there (the secret is in the database,
// the run folder exists, the spare supervisor runs), so it cannot pass by looking elsewhere.
import { afterAll, describe, expect, it, onTestFinished } from "vitest"
import { Boxlite, BoxliteError, BoxStateError, ExecError, InvalidOptions } from "boxlite"
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { boxDirs, BUSYBOX, qemuProcessesUnder, sh, tempHome } from "./helpers.js"

const NOBODY = 65534
const SECRET = "s3cret-token-4242"

/** Whether `nobody` (no groups) can read `file` (or list it, for a directory). */
const nobodyReads = (file: string): boolean => {
  const program = fs.statSync(file).isDirectory() ? "ls" : "cat"
  return spawnSync("setpriv", ["--reuid", String(NOBODY), "--regid", String(NOBODY), "--clear-groups", "--", program, file], { stdio: "ignore" }).status === 0
}

const modeOf = (file: string) => fs.statSync(file).mode & 0o777

/** Whether `pid` runs (a zombie has ended). */
const running = (pid: number): boolean => {
  try {
    return !/^\S+ \(.*\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

/** Processes whose command line matches `pattern`. */
const pgrep = (pattern: string): Array<string> => {
  try {
    return execFileSync("pgrep", ["-f", pattern]).toString().trim().split("\n").filter(Boolean)
  } catch {
    return []
  }
}

/** The driver's run folders of a box: `<tmp>/boxlite-<last 8 of the id>-*`. */
const runDirsOf = (id: string) => fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith(`boxlite-${id.slice(-8)}-`))

const eventually = async (check: () => Promise<boolean> | boolean, what: string, ms = 30_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const runtimes: Array<Boxlite> = []
const open = (homeDir: string) => {
  const runtime = new Boxlite({ homeDir })
  runtimes.push(runtime)
  return runtime
}
afterAll(async () => {
  for (const runtime of runtimes) {
    for (const box of await runtime.list().catch(() => [])) await runtime.remove(box.id, { force: true }).catch(() => {})
    await runtime.close()
  }
})

describe.skipIf(process.getuid?.() !== 0)("state at rest", () => {
  it("state-at-rest: a pre-existing 0755 home with 0644 files becomes 0700/0600; a nobody process cannot read boxlite.db, its -wal, a box dir, a log", async () => {
    const home = tempHome()
    // Info logs, so the supervisor writes its supervisor.log (warnings only by default).
    const savedLog = process.env["BOXLITE_LOG"]
    process.env["BOXLITE_LOG"] = "info"
    onTestFinished(() => void (savedLog === undefined ? delete process.env["BOXLITE_LOG"] : (process.env["BOXLITE_LOG"] = savedLog)))
    const first = new Boxlite({ homeDir: home })
    const made = await first.create({ image: BUSYBOX, memoryMib: 128, autoRemove: false, env: { TOKEN: SECRET } })
    expect((await sh(made, "echo $TOKEN")).out).toBe(SECRET)
    await made.stop()
    await first.close()

    // What an earlier version (or a 022 umask, or a restored backup) left: everything readable.
    const db = path.join(home, "boxlite.db")
    const boxDir = path.join(home, "boxes", made.id)
    for (const dir of [home, path.join(home, "boxes"), boxDir, path.join(home, "images")]) fs.chmodSync(dir, 0o755)
    for (const file of fs.readdirSync(boxDir)) fs.chmodSync(path.join(boxDir, file), 0o644)
    fs.chmodSync(db, 0o644)
    // The attack works on that layout: nobody reads the box's env value out of the database.
    expect(nobodyReads(db)).toBe(true)
    expect(fs.readFileSync(db).includes(SECRET)).toBe(true)
    expect(nobodyReads(path.join(boxDir, "supervisor.log"))).toBe(true)
    expect(nobodyReads(path.join(boxDir, "console.log"))).toBe(true)

    const runtime = open(home)
    const box = await runtime.get(made.id)
    await box.start()
    expect((await sh(box, "echo $TOKEN")).out).toBe(SECRET)
    // While it runs: the WAL SQLite created since, and the logs the supervisor and VMM write.
    const files = [db, `${db}-wal`, `${db}-shm`, path.join(boxDir, "supervisor.log"), path.join(boxDir, "console.log"), path.join(boxDir, "disk.qcow2")]
    for (const file of files) expect(fs.existsSync(file), file).toBe(true)
    expect(modeOf(home)).toBe(0o700)
    for (const dir of [path.join(home, "boxes"), boxDir, path.join(home, "images")]) expect([dir, modeOf(dir)]).toEqual([dir, 0o700])
    for (const file of files) expect([file, modeOf(file)]).toEqual([file, 0o600])
    for (const file of [...files, boxDir]) expect([file, nobodyReads(file)]).toEqual([file, false])
    await box.remove()
  }, 300_000)

  it("state-at-rest: a home that belongs to another user is refused (InvalidOptions homeDir), not chmod-ed", async () => {
    const home = tempHome()
    fs.chmodSync(home, 0o755)
    fs.chownSync(home, NOBODY, NOBODY)
    const runtime = new Boxlite({ homeDir: home })
    const error = await runtime.list().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidOptions)
    expect((error as InvalidOptions).field).toBe("homeDir")
    expect(modeOf(home)).toBe(0o755)
    expect(fs.readdirSync(home)).toEqual([])
    await runtime.close().catch(() => {})
  })
})

describe("faults", () => {
  it("supervisor-killed-mid-exec: the iterator rejects with ExecError, the box is failed with a reason, no run folder or QEMU is left, the next exec is a BoxStateError, start() brings it back", async () => {
    const home = tempHome()
    const runtime = open(home)
    const box = await runtime.create({ image: BUSYBOX, memoryMib: 128 })
    const execution = await box.exec("sh", ["-c", "while true; do echo tick; sleep 0.2; done"])
    const supervisor = pgrep(`^boxlite-supervisor ${box.id}`)
    expect(supervisor.length).toBe(1)
    expect(runDirsOf(box.id).length).toBe(1)
    // The VMM by its pid (whatever its command line looks like).
    const vmm = (await box.info()).pid!
    expect(running(vmm)).toBe(true)

    const lines: Array<string> = []
    const failure = await (async () => {
      for await (const line of execution.stdout()) {
        lines.push(line)
        if (lines.length === 2) process.kill(Number(supervisor[0]), "SIGKILL")
      }
    })().catch((e: unknown) => e)
    expect(lines.slice(0, 2)).toEqual(["tick", "tick"])
    expect(failure).toBeInstanceOf(ExecError)
    expect(failure).toBeInstanceOf(BoxliteError)
    expect(String((failure as Error).message)).toMatch(/supervisor \(pid \d+\) died/)
    expect(await execution.wait().catch((e: unknown) => e)).toBeInstanceOf(ExecError)
    expect(await execution.stdin().write("x").catch((e: unknown) => e)).toBeInstanceOf(ExecError)

    await eventually(() => !running(vmm), "the VMM ends with its supervisor")
    const info = await box.info()
    expect(info.status).toBe("failed")
    expect(info.reason).toMatch(/supervisor \(pid \d+\) died while the box was running/)
    expect(runDirsOf(box.id)).toEqual([])
    // An autoRemove box that crashed is kept, failed, so its owner learns of it.
    expect((await runtime.list()).map((b) => [b.id, b.status])).toEqual([[box.id, "failed"]])

    const next = await box.exec("true").catch((e: unknown) => e)
    expect(next).toBeInstanceOf(BoxStateError)
    expect(String((next as Error).message)).toMatch(/start\(\)/)
    // Refused, not booted behind the user's back.
    expect((await box.info()).status).toBe("failed")
    expect(qemuProcessesUnder(home)).toEqual([])

    await box.start()
    expect((await sh(box, "echo back")).out).toBe("back")
    expect((await box.info()).reason).toBeUndefined()
    await box.stop()
    // A normal stop of an autoRemove box removes it, as before.
    expect(await runtime.list()).toEqual([])
    expect(runDirsOf(box.id)).toEqual([])
  }, 300_000)

  it("spare-supervisor-after-close: a home deleted after close() stays deleted; the spare ends", async () => {
    const parent = tempHome()
    const home = path.join(parent, "home")
    const runtime = new Boxlite({ homeDir: home })
    // create loads a spare supervisor for the next start. Frozen while it loads (as a loaded
    // host would slow it), it outlives close() and the deletion of the home.
    await runtime.create({ image: BUSYBOX, memoryMib: 128 })
    const spare = pgrep(`supervisor.*js ${home} `)
    expect(spare.length).toBe(1)
    process.kill(Number(spare[0]), "SIGSTOP")
    await runtime.close()
    fs.rmSync(home, { recursive: true, force: true })
    process.kill(Number(spare[0]), "SIGCONT")
    await new Promise((r) => setTimeout(r, 5_000))
    expect(fs.existsSync(home)).toBe(false)
    expect(fs.readdirSync(parent)).toEqual([])
    expect(pgrep(`supervisor.*js ${home} `)).toEqual([])
  }, 120_000)

  it("argv-over-1MiB: InvalidOptions naming the field, nothing sent; the box stays usable", async () => {
    const home = tempHome()
    const runtime = open(home)
    const box = await runtime.create({ image: BUSYBOX, memoryMib: 128 })
    expect((await sh(box, "echo up")).out).toBe("up")
    const argv = await box.exec("echo", ["x".repeat(1024 * 1024 + 1)]).catch((e: unknown) => e)
    expect(argv).toBeInstanceOf(InvalidOptions)
    expect(argv).toBeInstanceOf(BoxliteError)
    expect((argv as InvalidOptions).field).toBe("argv")
    const env = await box.exec("true", [], { env: { BIG: "y".repeat(1024 * 1024) } }).catch((e: unknown) => e)
    expect(env).toBeInstanceOf(InvalidOptions)
    expect((env as InvalidOptions).field).toBe("exec.env")
    // Just under the limit still runs (the guest's own ARG_MAX allows 128 KiB per argument).
    expect((await sh(box, `echo ${"z".repeat(100_000)} | wc -c`)).out).toBe("100001")
    expect((await sh(box, "echo still here")).out).toBe("still here")
    await box.stop()
  }, 180_000)

  it("diskSizeGb-above-free-space: InvalidOptions, nothing left in boxes/", async () => {
    const home = tempHome()
    const runtime = open(home)
    const free = fs.statfsSync(home)
    const freeGb = (free.bavail * free.bsize) / 1024 ** 3
    const tooBig = Math.floor(freeGb) + 1
    expect(tooBig).toBeLessThanOrEqual(16384)
    const error = await runtime.create({ image: BUSYBOX, diskSizeGb: tooBig }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidOptions)
    expect((error as InvalidOptions).field).toBe("diskSizeGb")
    expect(String(error)).toMatch(/free/)
    const bound = await runtime.create({ image: BUSYBOX, diskSizeGb: 16385 }).catch((e: unknown) => e)
    expect(bound).toBeInstanceOf(InvalidOptions)
    expect(boxDirs(home)).toEqual([])
    expect(await runtime.list()).toEqual([])
  }, 120_000)
})

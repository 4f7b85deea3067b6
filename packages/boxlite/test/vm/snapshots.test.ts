/**
 * Pause/resume, snapshots and clones, suspend: real VMs saved with QEMU's migration stream and
 * restored into new QEMUs. Also what can go wrong: damaged or foreign snapshot files, options a
 * clone cannot change, boxes that cannot be saved, snapshots still in use.
 */
import { type Box, Boxlite, BoxStateError, InvalidOptions, SnapshotError } from "boxlite"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openSqlite } from "../../../core/src/internal/Sqlite.js"
import { boxDirs, BUSYBOX, qemuProcessesUnder, sh, tempHome } from "./helpers.js"

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
let box: Box

beforeAll(async () => {
  box = await runtime.create({ image: BUSYBOX, memoryMib: 256 })
  await box.start()
}, 120_000)

afterAll(async () => {
  await box?.remove()
  for (const info of await runtime.list()) await runtime.remove(info.id, { force: true })
  await runtime.snapshots.prune()
  await runtime.close()
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
  expect(fs.existsSync(path.join(home, "snapshots")) ? fs.readdirSync(path.join(home, "snapshots")) : []).toEqual([])
  fs.rmSync(home, { recursive: true, force: true })
}, 120_000)

const caught = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => e)
const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")
const snapshotDir = (id: string) => path.join(home, "snapshots", id)
const sleeping = "ps -o pid,args | grep -c '[s]leep 4242'"

describe("pause and resume", () => {
  it("stops the vCPUs and goes on where it was: a running process keeps its state and its output stream", async () => {
    const ticker = await box.exec("sh", ["-c", "i=0; while [ $i -lt 400 ]; do echo $i; i=$((i+1)); sleep 0.05; done"])
    const lines: Array<number> = []
    const reading = (async () => {
      for await (const line of ticker.stdout()) lines.push(Number(line))
    })()
    while (lines.length < 5) await new Promise((r) => setTimeout(r, 50))
    await box.pause()
    expect((await box.info()).status).toBe("paused")
    const atPause = lines.length
    await new Promise((r) => setTimeout(r, 1500))
    // At most what was in flight when the vCPUs stopped.
    expect(lines.length - atPause).toBeLessThanOrEqual(2)
    const refused = await caught(box.exec("true"))
    expect(refused).toBeInstanceOf(BoxStateError)
    expect((refused as Error).message).toMatch(/paused/)
    await box.resume()
    expect((await box.info()).status).toBe("running")
    while (lines.length < atPause + 10) await new Promise((r) => setTimeout(r, 50))
    await ticker.kill()
    await reading
    // One process counted on, without a restart or a gap.
    expect(lines).toEqual(lines.map((_, i) => i))
    // The guest's clock was set again: it does not lag by the pause.
    const guestSeconds = Number((await sh(box, "date +%s")).out)
    expect(Math.abs(guestSeconds - Date.now() / 1000)).toBeLessThan(3)
  }, 120_000)

  it("pause and resume are idempotent; a stopped box cannot be paused", async () => {
    await box.resume()
    await box.pause()
    await box.pause()
    await box.resume()
    expect((await sh(box, "echo ok")).out).toBe("ok")
    const stopped = await runtime.create({ image: BUSYBOX, memoryMib: 256, autoRemove: false })
    expect(await caught(stopped.pause())).toBeInstanceOf(BoxStateError)
    // A paused box stops gracefully: it is resumed to power off, not killed after the grace period.
    await stopped.start()
    await stopped.pause()
    await stopped.stop()
    expect((await stopped.info()).status).toBe("stopped")
    expect(fs.readFileSync(path.join(home, "boxes", stopped.id, "supervisor.log"), "utf8")).not.toContain("killing the VMM")
    await stopped.remove()
  }, 90_000)
})

describe("snapshots and clones", () => {
  let snapshotId: string

  it("a snapshot keeps the box running; a clone has its files and processes", async () => {
    await sh(box, "echo original > /root/state; echo 0123456789abcdef0123456789abcdef > /etc/machine-id; (sleep 4242 >/dev/null 2>&1 &)")
    const snap = await box.snapshot({ name: "base" })
    snapshotId = snap.id
    expect(snap).toMatchObject({ name: "base", boxId: box.id, image: BUSYBOX, cpus: 1, memoryMib: 256 })
    expect(snap.stateBytes).toBeGreaterThan(1024 * 1024)
    expect(snap.stateBytes).toBeLessThan(256 * 1024 * 1024)
    expect(fs.statSync(path.join(snapshotDir(snap.id), "memory.state")).size).toBe(snap.stateBytes)
    // The box ran on.
    expect((await sh(box, `cat /root/state; ${sleeping}`)).out).toBe("original\n1")
    expect(await runtime.snapshots.list()).toEqual([snap])
    expect(await runtime.snapshots.get("base")).toEqual(snap)

    const clone = await runtime.create({ fromSnapshot: "base" })
    const seen = await sh(clone, `cat /root/state; ${sleeping}`)
    expect(seen).toMatchObject({ exitCode: 0, out: "original\n1" })
    expect((await clone.info()).status).toBe("running")
    await clone.remove()
  }, 120_000)

  it("two clones diverge independently; the snapshot's files are never written", async () => {
    const disk = path.join(snapshotDir(snapshotId), "disk.qcow2")
    const state = path.join(snapshotDir(snapshotId), "memory.state")
    const before = [sha(disk), sha(state)]
    const [a, b] = [await runtime.create({ fromSnapshot: snapshotId, autoRemove: false }), await runtime.create({ fromSnapshot: snapshotId })]
    await Promise.all([a.start(), b.start()])
    await sh(a, "echo a > /root/state; echo only-a > /root/a")
    await sh(b, "echo b > /root/state")
    expect((await sh(a, "cat /root/state /root/a")).out).toBe("a\nonly-a")
    expect(await sh(b, "cat /root/state; ls /root")).toMatchObject({ out: "b\nstate" })
    expect((await sh(box, "cat /root/state")).out).toBe("original")
    // Secrets are not shared: each clone's RNG was reseeded, and its machine-id renewed.
    const [ra, rb] = await Promise.all([a, b].map((c) => sh(c, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; cat /etc/machine-id")))
    const [randomA, idA] = ra!.out.split("\n")
    const [randomB, idB] = rb!.out.split("\n")
    expect(randomA).toMatch(/^[0-9a-f]{64}$/)
    expect(randomA).not.toBe(randomB)
    expect(idA).toMatch(/^[0-9a-f]{32}$/)
    expect(new Set([idA, idB, "0123456789abcdef0123456789abcdef"]).size).toBe(3)
    // Restored clocks are the host's, not the snapshot's.
    expect(Math.abs(Number((await sh(a, "date +%s")).out) - Date.now() / 1000)).toBeLessThan(3)
    // The clone's own later stop and start boots its own disk: the snapshot's disk stays below it.
    await a.stop()
    await a.start()
    expect((await sh(a, "cat /root/state")).out).toBe("original")
    await Promise.all([a.remove(), b.remove()])
    expect([sha(disk), sha(state)]).toEqual(before)
  }, 180_000)

  it("a command streaming output while the box is saved goes on, nothing lost or repeated; stdin still flows", async () => {
    const echo = await box.exec("sh", ["-c", "i=0; while read line; do echo \"$i $line\"; i=$((i+1)); done"])
    const lines: Array<string> = []
    const reading = (async () => {
      for await (const line of echo.stdout()) lines.push(line)
    })()
    const stdin = echo.stdin()
    const feeding = (async () => {
      for (let i = 0; i < 60; i++) {
        await stdin.write(`line-${i}\n`)
        await new Promise((r) => setTimeout(r, 20))
      }
      await stdin.close()
    })()
    await new Promise((r) => setTimeout(r, 300))
    const snap = await box.snapshot()
    await feeding
    expect((await echo.wait()).exitCode).toBe(0)
    await reading
    expect(lines).toEqual(Array.from({ length: 60 }, (_, i) => `${i} line-${i}`))
    await runtime.snapshots.remove(snap.id)
  }, 120_000)

  it("a snapshot of a clone stacks on its snapshot, which stays in use until the newer one goes", async () => {
    const clone = await runtime.create({ fromSnapshot: snapshotId })
    await sh(clone, "echo second > /root/second")
    const second = await clone.snapshot({ name: "second" })
    await clone.remove()
    const grandchild = await runtime.create({ fromSnapshot: "second" })
    expect((await sh(grandchild, "cat /root/state /root/second")).out).toBe("original\nsecond")
    await grandchild.remove()
    const inUse = await caught(runtime.snapshots.remove(snapshotId))
    expect((inUse as SnapshotError).message).toContain("snapshot second")
    await runtime.snapshots.remove(second.id)
  }, 120_000)

  it("each clone has its own network and port forwards", async () => {
    const source = await runtime.create({ image: BUSYBOX, memoryMib: 256 })
    await sh(source, "mkdir -p /www && echo source > /www/index.html && (httpd -p 8080 -h /www &)")
    const snap = await source.snapshot()
    await source.remove()
    const ports = await Promise.all([0, 1].map(freePort))
    const clones = await Promise.all(ports.map((hostPort) => runtime.create({ fromSnapshot: snap.id, ports: [{ hostPort, guestPort: 8080 }] })))
    for (const [i, clone] of clones.entries()) await sh(clone, `echo clone-${i} > /www/index.html`)
    for (const [i, port] of ports.entries()) expect(await fetchText(port)).toBe(`clone-${i}\n`)
    await Promise.all(clones.map((c) => c.remove()))
    await runtime.snapshots.remove(snap.id)
  }, 180_000)

  it("a clone cannot change the machine the snapshot saved; bad snapshot ids are named", async () => {
    for (const [options, field] of [
      [{ memoryMib: 512 }, "memoryMib"],
      [{ cpus: 2 }, "cpus"],
      [{ image: "alpine" }, "image"],
      [{ network: "none" }, "network"],
      [{ volumes: [{ hostPath: os.tmpdir(), guestPath: "/mnt" }] }, "volumes"],
      [{ fromSnapshot: "no-such-snapshot" }, "fromSnapshot"]
    ] as const) {
      const error = await caught(runtime.create({ fromSnapshot: snapshotId, ...options }))
      expect(error).toBeInstanceOf(InvalidOptions)
      expect((error as InvalidOptions).field).toBe(field)
    }
    expect(boxDirs(home)).toEqual([box.id])
    // What a clone may set: its name, env, ports.
    const named = await runtime.create({ fromSnapshot: snapshotId, name: "clone-env", env: { ADDED: "yes" }, memoryMib: 256 })
    expect((await sh(named, "cat /root/state; echo $ADDED")).out).toBe("original\nyes")
    await named.remove()
  }, 120_000)

  it("a snapshot in use cannot be removed; removing it frees its files", async () => {
    const snap = await box.snapshot({ name: "disposable" })
    expect(await caught(box.snapshot({ name: "disposable" }))).toBeInstanceOf(BoxStateError)
    const clone = await runtime.create({ fromSnapshot: "disposable" })
    const inUse = await caught(runtime.snapshots.remove("disposable"))
    expect(inUse).toBeInstanceOf(SnapshotError)
    expect((inUse as SnapshotError).reason).toBe("in-use")
    await clone.remove()
    const dir = snapshotDir(snap.id)
    expect(fs.readdirSync(dir).sort()).toEqual(["disk.qcow2", "memory.state"])
    await runtime.snapshots.remove("disposable")
    expect(fs.existsSync(dir)).toBe(false)
    expect((await runtime.snapshots.list()).map((s) => s.name)).not.toContain("disposable")
    expect(await caught(runtime.snapshots.get("disposable"))).toBeInstanceOf(SnapshotError)
  }, 120_000)

  it("a guest that fills its memory makes a snapshot no larger than its RAM, and a clone gets every byte back", async () => {
    const big = await runtime.create({ image: BUSYBOX, memoryMib: 256 })
    // 160 MiB of random bytes in a tmpfs: memory the guest holds, none of it zero.
    const filled = await sh(big, "mkdir -p /fill && mount -t tmpfs -o size=200m tmpfs /fill && head -c 167772160 /dev/urandom > /fill/r && sha256sum /fill/r | cut -d' ' -f1")
    expect(filled.out).toMatch(/^[0-9a-f]{64}$/)
    const snap = await big.snapshot()
    expect(snap.stateBytes).toBeGreaterThan(160 * 2 ** 20)
    expect(snap.stateBytes).toBeLessThanOrEqual((256 + 64) * 2 ** 20)
    await big.remove()
    const clone = await runtime.create({ fromSnapshot: snap.id })
    expect((await sh(clone, "sha256sum /fill/r | cut -d' ' -f1")).out).toBe(filled.out)
    await clone.remove()
    await runtime.snapshots.remove(snap.id)
  }, 180_000)

  it("a box with volumes cannot be saved", async () => {
    const shared = fs.mkdtempSync(path.join(os.tmpdir(), "bl-snapvol-"))
    const withVolume = await runtime.create({ image: BUSYBOX, volumes: [{ hostPath: shared, guestPath: "/mnt/shared" }] })
    const refused = await caught(withVolume.snapshot())
    expect(refused).toBeInstanceOf(SnapshotError)
    expect((refused as SnapshotError).reason).toBe("unsupported")
    expect(await caught(withVolume.suspend())).toBeInstanceOf(BoxStateError)
    await withVolume.remove()
    fs.rmSync(shared, { recursive: true, force: true })
  }, 60_000)
})

describe("damaged and foreign snapshots", () => {
  const restoreFails = async (damage: (dir: string, id: string) => void, reason: string, message: RegExp) => {
    const snap = await box.snapshot()
    damage(snapshotDir(snap.id), snap.id)
    const clone = await runtime.create({ fromSnapshot: snap.id })
    const error = await caught(clone.start())
    expect(error).toBeInstanceOf(SnapshotError)
    expect((error as SnapshotError).reason).toBe(reason)
    expect((error as Error).message).toMatch(message)
    expect((await clone.info()).status).toBe("failed")
    await clone.remove()
    await runtime.snapshots.remove(snap.id)
    // Only the source box's VMM runs.
    expect(qemuProcessesUnder(path.join(home, "boxes", box.id)).length).toBe(1)
    expect(qemuProcessesUnder(home).length).toBe(1)
  }

  it("a state file with a flipped byte in guest memory is `corrupt` (the hash), and nothing runs", async () => {
    await restoreFails((dir) => {
      const file = path.join(dir, "memory.state")
      const fd = fs.openSync(file, "r+")
      const at = Math.floor(fs.fstatSync(fd).size / 2)
      const byte = Buffer.alloc(1)
      fs.readSync(fd, byte, 0, 1, at)
      byte[0] = byte[0]! ^ 0xff
      fs.writeSync(fd, byte, 0, 1, at)
      fs.closeSync(fd)
    }, "corrupt", /damaged: its sha256/)
  }, 120_000)

  it("a truncated state file is `corrupt` (QEMU refuses it)", async () => {
    await restoreFails((dir) => fs.truncateSync(path.join(dir, "memory.state"), 4096), "corrupt", /cannot be loaded|damaged/)
  }, 120_000)

  it("a snapshot saved by another QEMU is `incompatible`, naming what differs", async () => {
    await restoreFails((_dir, id) => {
      const db = openSqlite(path.join(home, "boxlite.db"))
      const row = db.prepare("SELECT data FROM snapshots WHERE id = ?").get(id) as { data: string }
      const data = JSON.parse(row.data)
      data.state.signature = JSON.stringify({ ...JSON.parse(data.state.signature), qemu: "9.9.9" })
      db.prepare("UPDATE snapshots SET data = ? WHERE id = ?").run(JSON.stringify(data), id)
      db.close()
    }, "incompatible", /qemu: saved "9\.9\.9"/)
  }, 120_000)

  it("a snapshot whose files are gone is refused at create, leaving nothing", async () => {
    const snap = await box.snapshot()
    fs.rmSync(path.join(snapshotDir(snap.id), "disk.qcow2"))
    const error = await caught(runtime.create({ fromSnapshot: snap.id }))
    expect(error).toBeInstanceOf(SnapshotError)
    expect((error as SnapshotError).reason).toBe("corrupt")
    expect(boxDirs(home)).toEqual([box.id])
    await runtime.snapshots.remove(snap.id)
  }, 60_000)
})

describe("warm", () => {
  const warmTemplates = async () => (await runtime.snapshots.list()).filter((s) => s.name?.startsWith("warm-"))

  it("the first warm create makes a template of the image and shape, later ones start from it", async () => {
    const first = await runtime.create({ image: BUSYBOX, memoryMib: 192, warm: true, env: { WHO: "first" } })
    const [template] = await warmTemplates()
    expect(template).toMatchObject({ image: BUSYBOX, memoryMib: 192, cpus: 1 })
    expect((await first.info()).snapshot).toBe(template!.id)
    expect((await sh(first, "echo $WHO; ls /root")).out).toBe("first")
    const second = await runtime.create({ image: BUSYBOX, memoryMib: 192, warm: true, name: "warm-second" })
    expect((await second.info()).snapshot).toBe(template!.id)
    expect((await sh(second, "echo ok")).out).toBe("ok")
    expect((await warmTemplates()).length).toBe(1)
    // Another shape, another template; the template's own box is gone.
    const other = await runtime.create({ image: BUSYBOX, memoryMib: 160, warm: true })
    expect((await warmTemplates()).length).toBe(2)
    await Promise.all([first, second, other].map((b) => b.remove()))
    expect(boxDirs(home)).toEqual([box.id])
    expect((await runtime.snapshots.prune()).removed.length).toBeGreaterThanOrEqual(2)
    expect(await warmTemplates()).toEqual([])
  }, 240_000)

  it("a template that no longer restores is set aside and the box boots; the next warm create makes a new one", async () => {
    const first = await runtime.create({ image: BUSYBOX, memoryMib: 192, warm: true })
    await first.remove()
    const [stale] = await warmTemplates()
    const db = openSqlite(path.join(home, "boxlite.db"))
    const row = db.prepare("SELECT data FROM snapshots WHERE id = ?").get(stale!.id) as { data: string }
    const data = JSON.parse(row.data)
    data.state.signature = JSON.stringify({ ...JSON.parse(data.state.signature), qemu: "0.0.1" })
    db.prepare("UPDATE snapshots SET data = ? WHERE id = ?").run(JSON.stringify(data), stale!.id)
    db.close()
    const booted = await runtime.create({ image: BUSYBOX, memoryMib: 192, warm: true })
    expect((await sh(booted, "echo booted")).out).toBe("booted")
    expect((await runtime.snapshots.get(stale!.id)).name).toBeUndefined()
    const fresh = await runtime.create({ image: BUSYBOX, memoryMib: 192, warm: true })
    const [template] = await warmTemplates()
    expect(template!.id).not.toBe(stale!.id)
    expect((await fresh.info()).snapshot).toBe(template!.id)
    await Promise.all([booted.remove(), fresh.remove()])
    await runtime.snapshots.prune()
  }, 240_000)

  it("warm is refused with volumes, diskSizeGb or fromSnapshot, naming warm", async () => {
    for (const options of [{ volumes: [{ hostPath: os.tmpdir(), guestPath: "/mnt" }] }, { diskSizeGb: 2 }, { fromSnapshot: "x" }]) {
      const error = await caught(runtime.create({ image: BUSYBOX, warm: true, ...options }))
      expect(error).toBeInstanceOf(InvalidOptions)
      expect((error as InvalidOptions).field).toBe("warm")
    }
  }, 30_000)
})

describe("suspend", () => {
  it("frees the VMM, and the next exec resumes with memory and disk as they were", async () => {
    const target = await runtime.create({ image: BUSYBOX, memoryMib: 256 })
    await sh(target, "echo kept > /root/kept; (sleep 4242 >/dev/null 2>&1 &)")
    const dir = path.join(home, "boxes", target.id)
    expect(qemuProcessesUnder(dir).length).toBe(1)
    await target.suspend()
    expect((await target.info()).status).toBe("suspended")
    expect(qemuProcessesUnder(dir)).toEqual([])
    expect(fs.existsSync(path.join(dir, "suspended.state"))).toBe(true)
    // Another handle (as another process would) resumes it by using it.
    const again = await runtime.get(target.id)
    expect(await sh(again, `cat /root/kept; ${sleeping}`)).toMatchObject({ exitCode: 0, out: "kept\n1" })
    expect((await target.info()).status).toBe("running")
    // The saved state is used up: the disk moved on.
    expect(fs.existsSync(path.join(dir, "suspended.state"))).toBe(false)
    // Suspend, then stop: the next start boots afresh.
    await target.suspend()
    await target.stop()
    expect(fs.existsSync(dir)).toBe(false)
  }, 180_000)

  it("resume() starts a suspended box", async () => {
    const target = await runtime.create({ image: BUSYBOX, memoryMib: 256, autoRemove: false })
    await sh(target, "echo kept > /root/kept")
    await target.suspend()
    await target.resume()
    expect((await target.info()).status).toBe("running")
    expect((await sh(target, "cat /root/kept")).out).toBe("kept")
    await target.remove()
  }, 120_000)
})

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const fetchText = async (port: number) => {
  for (let attempt = 0; ; attempt++) {
    try {
      return await (await fetch(`http://127.0.0.1:${port}/`)).text()
    } catch (e) {
      if (attempt > 20) throw e
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

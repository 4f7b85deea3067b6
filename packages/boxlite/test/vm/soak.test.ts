// Soak: many execs on one box and many create/start/exec/remove cycles must not leak host
// resources. Each resource is measured after a warm-up and again at the end, compared with an
// explicit tolerance, and printed. Written against the public `boxlite` API only; helper
// processes are found through /proc (command lines naming this test's dirs, box ids or ports,
// and their descendants), not through the driver's internals, so that it keeps measuring
// whatever the driver spawns. Its own vitest project (`--project soak`): it runs for minutes.
//   SOAK_EXECS (default 1000) and SOAK_CYCLES (default 100) scale it.
import { afterAll, describe, expect, it, onTestFinished } from "vitest"
import { Boxlite } from "boxlite"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { BUSYBOX, tempHome, sh } from "./helpers.js"

const EXECS = Number(process.env["SOAK_EXECS"] ?? 1000)
const CYCLES = Number(process.env["SOAK_CYCLES"] ?? 100)
const WARMUP_EXECS = 30
const WARMUP_CYCLES = 3

// Tolerances, start vs end. Descriptors and processes must come back exactly (a few fds of
// slack for the test process: vitest and Node open some lazily). Host Shmem is machine-wide
// (other VMs' guest RAM is taken out, other tmpfs users remain): the slack is a quarter of one
// box's memfd guest RAM, which a leaked box would exceed at once. The home may grow by the state database's WAL (each
// exec is a write; SQLite's autocheckpoint bounds it at ~4 MiB) and by the box disk's ext4
// journal (circular), not by anything per exec.
const SELF_FD_SLACK = 4
const SUPERVISOR_FD_SLACK = 0
// Each cycle's supervisor is a new process, measured at the same point; allow for a client
// connection that is still closing.
const CYCLE_SUPERVISOR_FD_SLACK = 2
const HOST_SHMEM_SLACK_KIB = 128 * 1024
const HOME_SLACK_KIB = 8 * 1024

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
afterAll(() => runtime.close())

interface Proc { readonly pid: number; readonly ppid: number; readonly argv: Array<string> }

const processes = (): Array<Proc> => {
  const out: Array<Proc> = []
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean)
      // The ppid follows the parenthesised command name, which may itself hold spaces or parens.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      out.push({ pid: Number(entry), ppid, argv })
    } catch {
      // Gone between readdir and read.
    }
  }
  return out
}

type Kind = "qemu" | "virtiofsd" | "passt" | "supervisor" | "other"
const kindOf = (p: Proc): Kind => {
  const name = path.basename(p.argv[0] ?? "")
  // By its own name only: the jail's bwrap, QEMU's parent, names QEMU among its arguments.
  if (/^qemu-system/.test(name)) return "qemu"
  if (/virtiofsd/.test(name)) return "virtiofsd"
  if (/^passt/.test(name)) return "passt"
  // A box's supervisor retitles itself `boxlite-supervisor <box id>`; the spare still runs as `node .../supervisor*.js HOME`.
  if (/^boxlite-supervisor/.test(name) || p.argv.some((a) => /supervisor[^/]*\.js$/.test(a))) return "supervisor"
  return "other"
}

/** Processes of this test: command line naming one of `markers` (the home, dirs, box ids, ports), and their descendants. */
const ourProcesses = (markers: ReadonlyArray<string>): Array<Proc & { kind: Kind }> => {
  const all = processes().filter((p) => p.pid !== process.pid)
  const ours = new Set(all.filter((p) => p.argv.some((a) => markers.some((m) => a.includes(m)))).map((p) => p.pid))
  for (let grown = true; grown;) {
    grown = false
    for (const p of all) {
      if (!ours.has(p.pid) && ours.has(p.ppid)) {
        ours.add(p.pid)
        grown = true
      }
    }
  }
  return all.filter((p) => ours.has(p.pid)).map((p) => ({ ...p, kind: kindOf(p) }))
}

const countByKind = (procs: ReadonlyArray<{ kind: Kind }>): Record<Kind, number> => {
  const counts: Record<Kind, number> = { qemu: 0, virtiofsd: 0, passt: 0, supervisor: 0, other: 0 }
  for (const p of procs) counts[p.kind]++
  return counts
}

const fdCount = (pid: number | "self"): number => fs.readdirSync(`/proc/${pid}/fd`).length

const meminfoKiB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync("/proc/meminfo", "utf8"))?.[1])

/**
 * Host Shmem less the guest RAM (memfd) of VMs that are not this test's: other runs on the
 * machine start and stop boxes meanwhile. Each memfd is counted once, in its QEMU's RssShmem.
 */
const hostShmemKiB = (markers: ReadonlyArray<string>): number => {
  const ours = new Set(ourProcesses(markers).map((p) => p.pid))
  const foreign = processes().filter((p) => kindOf(p) === "qemu" && !ours.has(p.pid)).reduce((sum, p) => {
    try {
      return sum + Number(/^RssShmem:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${p.pid}/status`, "utf8"))?.[1] ?? 0)
    } catch {
      return sum
    }
  }, 0)
  return meminfoKiB("Shmem") - foreign
}

/** Disk space used under `dir` (blocks, not apparent sizes: disks and the image base are sparse), in KiB. */
const duKiB = (dir: string): number => Number(execFileSync("du", ["-sk", dir]).toString().split("\t")[0])

/** Every file under `dir` with its size, to say which grew. */
const fileSizes = (dir: string): Map<string, number> => {
  const sizes = new Map<string, number>()
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const file = path.join(entry.parentPath, entry.name)
    try {
      sizes.set(path.relative(dir, file), fs.statSync(file).size)
    } catch {
      // Removed meanwhile.
    }
  }
  return sizes
}

const grown = (before: Map<string, number>, after: Map<string, number>): string =>
  [...after].filter(([file, size]) => size !== (before.get(file) ?? 0)).map(([file, size]) => `${file} ${before.get(file) ?? 0} -> ${size}`).join(", ") || "none"

/** The supervisor that runs box `id`: it titles itself `boxlite-supervisor <id>` (the jailed QEMU's command line names no box). */
const supervisorOf = (id: string): number => {
  const supervisor = processes().find((p) => kindOf(p) === "supervisor" && p.argv.some((a) => a.includes(id)))
  if (supervisor) return supervisor.pid
  throw new Error(`no supervisor found for box ${id}`)
}

/** Leftover run directories of the driver (`<tmp>/boxlite-<last 8 of the id>-*`). */
const runDirsOf = (ids: ReadonlyArray<string>): Array<string> =>
  fs.readdirSync(os.tmpdir()).filter((name) => ids.some((id) => name.startsWith(`boxlite-${id.slice(-8)}-`)))

/** Polls `f` until `done` holds for its value or 15 s pass; returns the last value (processes exit asynchronously). */
const settle = async <T>(f: () => T, done: (value: T) => boolean): Promise<T> => {
  const deadline = Date.now() + 15_000
  for (;;) {
    const value = f()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((r) => setTimeout(r, 100))
  }
}

const report = (title: string, rows: Record<string, [number, number, number]>) => {
  console.log(`soak: ${title}\n${Object.entries(rows).map(([k, [start, end, slack]]) => `  ${k.padEnd(36)} start ${String(start).padStart(12)}  end ${String(end).padStart(12)}  delta ${String(end - start).padStart(10)}  (tolerance ${slack})`).join("\n")}`)
}

const expectFlat = (rows: Record<string, [number, number, number]>) => {
  for (const [name, [start, end, slack]] of Object.entries(rows)) expect({ name, delta: end - start }).toEqual({ name, delta: Math.min(end - start, slack) })
}

/** A line sent from the host through the box's forwarded TCP port, as the guest's `nc -l` read it. */
const throughPort = async (box: Awaited<ReturnType<Boxlite["create"]>>, guestPort: number, line: string): Promise<string> => {
  const listener = await box.exec("nc", ["-l", "-p", String(guestPort)])
  const received = listener.stdout().text()
  const hostPort = (await box.info()).ports.find((p) => p.guestPort === guestPort)!.hostPort
  const timeout = (ms: number) => new Promise<undefined>((r) => setTimeout(() => r(undefined), ms))
  // Until the listener is up, passt accepts the connection and drops it: send again.
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    await new Promise<void>((resolve) => {
      const socket = net.connect(hostPort, "127.0.0.1", () => socket.end(`${line}\n`))
      socket.on("error", () => resolve())
      socket.on("close", () => resolve())
      socket.setTimeout(5_000, () => socket.destroy())
    })
    const text = await Promise.race([received, timeout(1_000)])
    if (text !== undefined) {
      await listener.wait()
      return text.trim()
    }
  }
  await listener.kill()
  await listener.wait()
  return "(nothing arrived)"
}

describe("soak", () => {
  it(`${EXECS} execs on one box leave descriptors, processes, shared memory and the home flat`, async () => {
    const box = await runtime.create({ image: BUSYBOX })
    onTestFinished(() => box.remove().catch(() => {}))
    const run = async (i: number) => {
      if (i % 50 === 0) {
        // Now and then stdin and stderr too.
        const execution = await box.exec("sh", ["-c", "cat; echo err >&2"])
        const stdin = execution.stdin()
        await stdin.write(`in-${i}`)
        await stdin.close()
        const [out, err, result] = await Promise.all([execution.stdout().text(), execution.stderr().text(), execution.wait()])
        expect([out, err, result.exitCode]).toEqual([`in-${i}`, "err\n", 0])
        return
      }
      const execution = await box.exec("echo", [`exec-${i}`])
      const [out, result] = await Promise.all([execution.stdout().text(), execution.wait()])
      expect([out, result.exitCode]).toEqual([`exec-${i}\n`, 0])
    }
    for (let i = 0; i < WARMUP_EXECS; i++) await run(i)
    const supervisor = supervisorOf(box.id)
    const measure = () => {
      return {
        selfFds: fdCount("self"),
        supervisorFds: fdCount(supervisor),
        procs: countByKind(ourProcesses([home, box.id])),
        hostShmem: hostShmemKiB([home, box.id]),
        home: duKiB(home),
        files: fileSizes(home)
      }
    }
    const start = measure()
    const began = Date.now()
    for (let i = 0; i < EXECS; i++) await run(i)
    const seconds = (Date.now() - began) / 1000
    const end = measure()
    const rows: Record<string, [number, number, number]> = {
      "test process fds": [start.selfFds, end.selfFds, SELF_FD_SLACK],
      "supervisor fds": [start.supervisorFds, end.supervisorFds, SUPERVISOR_FD_SLACK],
      ...Object.fromEntries(Object.keys(start.procs).map((k) => [`processes: ${k}`, [start.procs[k as Kind], end.procs[k as Kind], 0]])),
      "host Shmem KiB (less others' VMs)": [start.hostShmem, end.hostShmem, HOST_SHMEM_SLACK_KIB],
      "home KiB (du)": [start.home, end.home, HOME_SLACK_KIB]
    }
    report(`${EXECS} execs in ${seconds.toFixed(1)} s (${(seconds * 1000 / EXECS).toFixed(0)} ms each); files that changed size: ${grown(start.files, end.files)}`, rows)
    expect(start.procs).toMatchObject({ qemu: 1, supervisor: expect.any(Number) })
    expectFlat(rows)
  }, 3_600_000)

  it(`${CYCLES} create/start/exec/remove cycles with a volume and a port forward leave nothing behind`, async () => {
    const volume = fs.mkdtempSync(path.join(os.tmpdir(), "bl-soak-vol-"))
    const ids: Array<string> = []
    const cycle = async (i: number) => {
      fs.writeFileSync(path.join(volume, "in.txt"), `cycle-${i}`)
      const box = await runtime.create({ image: BUSYBOX, volumes: [[volume, "/mnt/v", "rw"]], ports: [{ hostPort: 0, guestPort: 8080 }] })
      ids.push(box.id)
      await box.start()
      const result = await sh(box, `cat /mnt/v/in.txt && echo out-${i} > /mnt/v/out.txt`)
      expect([result.out, result.exitCode]).toEqual([`cycle-${i}`, 0])
      expect(fs.readFileSync(path.join(volume, "out.txt"), "utf8")).toBe(`out-${i}\n`)
      // Every tenth cycle, a connection through the forwarded port (passt) as well.
      if (i % 10 === 0) expect(await throughPort(box, 8080, `port-${i}`)).toBe(`port-${i}`)
      const running = { procs: countByKind(ourProcesses([home, volume, box.id])), supervisorFds: fdCount(supervisorOf(box.id)) }
      await box.remove()
      return running
    }
    // Measured once every box's processes are gone (they exit asynchronously after remove).
    const measure = async () => {
      const procs = await settle(() => ourProcesses([home, volume, ...ids, ...ids.map((id) => `boxlite-${id.slice(-8)}-`)]), (ps) => ps.every((p) => p.kind === "supervisor") && ps.length <= 1)
      return {
        selfFds: fdCount("self"),
        procs: countByKind(procs),
        hostShmem: hostShmemKiB([home, volume, ...ids]),
        home: duKiB(home),
        files: fileSizes(home),
        runDirs: runDirsOf(ids).length
      }
    }
    let first: Awaited<ReturnType<typeof cycle>> | undefined
    for (let i = 0; i < WARMUP_CYCLES; i++) first = await cycle(i)
    const firstRunning = first!.procs
    // A box with a volume and a network runs one QEMU, one virtiofsd and one passt at least.
    expect(firstRunning).toMatchObject({ qemu: 1 })
    expect(firstRunning.virtiofsd).toBeGreaterThanOrEqual(1)
    expect(firstRunning.passt).toBeGreaterThanOrEqual(1)
    const start = await measure()
    const began = Date.now()
    let last = first!
    for (let i = 0; i < CYCLES; i++) last = await cycle(i)
    const lastRunning = last.procs
    const seconds = (Date.now() - began) / 1000
    const end = await measure()
    const rows: Record<string, [number, number, number]> = {
      "test process fds": [start.selfFds, end.selfFds, SELF_FD_SLACK],
      ...Object.fromEntries(Object.keys(start.procs).map((k) => [`processes: ${k}`, [start.procs[k as Kind], end.procs[k as Kind], 0]])),
      ...Object.fromEntries(Object.keys(firstRunning).map((k) => [`processes while running: ${k}`, [firstRunning[k as Kind], lastRunning[k as Kind], 0]])),
      "supervisor fds while running": [first!.supervisorFds, last.supervisorFds, CYCLE_SUPERVISOR_FD_SLACK],
      "host Shmem KiB (less others' VMs)": [start.hostShmem, end.hostShmem, HOST_SHMEM_SLACK_KIB],
      "home KiB (du)": [start.home, end.home, HOME_SLACK_KIB],
      "run dirs left": [start.runDirs, end.runDirs, 0]
    }
    report(`${CYCLES} cycles in ${seconds.toFixed(1)} s (${(seconds / CYCLES).toFixed(1)} s each); files that changed size: ${grown(start.files, end.files)}`, rows)
    expectFlat(rows)
    // Nothing of any box is left but the spare supervisor.
    expect(end.procs).toMatchObject({ qemu: 0, virtiofsd: 0, passt: 0, other: 0 })
    expect(end.runDirs).toBe(0)
    expect(fs.readdirSync(path.join(home, "boxes"))).toEqual([])
  }, 7_200_000)
})

// Lifecycle across processes: a box's supervisor serves clients in other processes, a box
// dies with its launcher unless detached, and records stay true through kills and restarts.
import { afterAll, describe, expect, it } from "vitest"
import { Boxlite, BoxNotFound, BoxStateError } from "boxlite"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { BUSYBOX, PYTHON, qemuProcessesUnder, sh, tempHome } from "./helpers.js"

const CLIENT = fileURLToPath(new URL("./fixtures/client.mjs", import.meta.url))
const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
// Detached boxes outlive this process by design: a failed test must not leave them running.
afterAll(async () => {
  for (const box of await runtime.list()) await runtime.remove(box.id, { force: true })
  await runtime.close()
})

interface Client {
  readonly child: ChildProcess
  /** The JSON lines the client has printed, in order. */
  readonly line: (n: number) => Promise<any>
  readonly exited: Promise<number | null>
}

const client = (...args: Array<string>): Client => {
  const child = spawn(process.execPath, [CLIENT, ...args], { stdio: ["pipe", "pipe", "pipe"] })
  const lines: Array<any> = []
  const waiters: Array<() => void> = []
  let buffer = ""
  let stderr = ""
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
  child.stdout!.on("data", (d: Buffer) => {
    buffer += d.toString()
    let i: number
    while ((i = buffer.indexOf("\n")) >= 0) {
      lines.push(JSON.parse(buffer.slice(0, i)))
      buffer = buffer.slice(i + 1)
      waiters.splice(0).forEach((w) => w())
    }
  })
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => {
    resolve(code)
    waiters.splice(0).forEach((w) => w())
  }))
  const line = async (n: number): Promise<any> => {
    while (lines.length <= n) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`client ${args[0]} exited (${child.exitCode ?? child.signalCode}): ${stderr}`)
      await new Promise<void>((r) => waiters.push(r))
    }
    return lines[n]
  }
  return { child, line, exited }
}

/** The supervisor process of a box (it names its box in its title). */
const supervisorOf = (id: string): Array<string> => {
  try {
    return execFileSync("pgrep", ["-f", `^boxlite-supervisor ${id}`]).toString().trim().split("\n").filter(Boolean)
  } catch {
    return []
  }
}

/** Polls until `check` holds (these are process deaths and status writes in other processes). */
const eventually = async (check: () => Promise<boolean> | boolean, what: string, ms = 30_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const statusOf = async (id: string) => (await runtime.list()).find((b) => b.id === id)?.status

/** The distinct statuses `list()` shows while `action` runs, in order. */
const statusesDuring = async (id: string, action: Promise<unknown>): Promise<Array<string | undefined>> => {
  const seen: Array<string | undefined> = [await statusOf(id)]
  let done = false
  void action.finally(() => (done = true))
  while (!done) {
    const status = await statusOf(id)
    if (status !== seen.at(-1)) seen.push(status)
    await new Promise((r) => setTimeout(r, 10))
  }
  await action
  const status = await statusOf(id)
  if (status !== seen.at(-1)) seen.push(status)
  return seen
}

describe("lifecycle across processes", () => {
  it("a box created in A serves execs from B and C at once; it stops when A exits", async () => {
    const a = client("create", home, JSON.stringify({ image: BUSYBOX, autoRemove: false, memoryMib: 128 }))
    const { id } = await a.line(0)
    expect(await statusOf(id)).toBe("running")
    const script = ["sh", "-c", "sleep 2; echo $((6*7))"]
    const b = client("exec", home, id, JSON.stringify(script))
    const c = client("exec", home, id, JSON.stringify(script))
    const [fromB, fromC] = await Promise.all([b.line(0), c.line(0)])
    expect([fromB.stdout, fromC.stdout]).toEqual(["42\n", "42\n"])
    // Both ran at the same time: each took ~2 s, and they overlapped.
    expect(Math.max(fromB.start, fromC.start)).toBeLessThan(Math.min(fromB.end, fromC.end))
    // B and C have gone; the box still serves A's runtime and this one.
    const here = await runtime.get(id)
    expect((await sh(here, "echo still here")).out).toBe("still here")

    a.child.stdin!.end()
    expect(await a.exited).toBe(0)
    await eventually(async () => (await statusOf(id)) === "stopped", "the box stops after its creator exits")
    expect(qemuProcessesUnder(home)).toEqual([])
    expect(supervisorOf(id)).toEqual([])
    await runtime.remove(id)
  }, 180_000)

  it("a detached box outlives its creator and serves another process; stop ends it", async () => {
    const a = client("create", home, JSON.stringify({ image: BUSYBOX, detach: true, autoRemove: false, memoryMib: 128 }))
    const { id } = await a.line(0)
    a.child.stdin!.end()
    await a.exited
    expect(await statusOf(id)).toBe("running")
    const b = client("exec", home, id, JSON.stringify(["cat", "/proc/sys/kernel/hostname"]))
    expect((await b.line(0)).exitCode).toBe(0)
    const box = await runtime.get(id)
    await box.stop()
    expect((await box.info()).status).toBe("stopped")
    expect(qemuProcessesUnder(home)).toEqual([])
    await box.remove()
  }, 180_000)

  it("SIGKILL of the creator leaves no QEMU and no running record", async () => {
    const a = client("create", home, JSON.stringify({ image: BUSYBOX, autoRemove: false, memoryMib: 128 }))
    const { id } = await a.line(0)
    expect(qemuProcessesUnder(home).length).toBe(1)
    a.child.kill("SIGKILL")
    await a.exited
    await eventually(() => qemuProcessesUnder(home).length === 0, "QEMU ends after its creator was killed")
    await eventually(async () => (await statusOf(id)) === "stopped", "the record says stopped")
    expect(supervisorOf(id)).toEqual([])
    await runtime.remove(id)
  }, 180_000)

  it("10 processes creating boxes in one home at once all succeed", async () => {
    const clients = Array.from({ length: 10 }, (_, i) =>
      client("createExec", home, JSON.stringify({ image: BUSYBOX, memoryMib: 128, name: `crowd-${i}`, autoRemove: false })))
    const results = await Promise.all(clients.map((c) => c.line(0)))
    expect(new Set(results.map((r) => r.id)).size).toBe(10)
    for (const r of results) expect(r.stdout).toBe(`${r.id}\n`)
    const crowd = (await runtime.list()).filter((b) => b.name?.startsWith("crowd-"))
    expect(crowd.map((b) => b.status)).toEqual(Array(10).fill("stopped"))
    expect((await runtime.metrics()).activeBoxes).toBe(0)
    for (const b of crowd) await runtime.remove(b.id)
  }, 300_000)
})

describe("statuses, restart, reconcile", () => {
  it("list shows true statuses through the lifecycle, and a restart keeps a persistent disk", async () => {
    const box = await runtime.create({ image: BUSYBOX, diskSizeGb: 2, autoRemove: false, name: "keeper" })
    expect((await box.info()).pid).toBeUndefined()
    expect(await statusOf(box.id)).toBe("configured")
    expect(await statusesDuring(box.id, box.start())).toEqual(["starting", "running"])
    const info = await box.info()
    expect(info.status).toBe("running")
    expect(info.pid).toBeGreaterThan(0)
    expect((await sh(box, "echo kept > /root/data && sync")).exitCode).toBe(0)
    // The first read may still see "running": the stop request is on its way to the supervisor.
    expect((await statusesDuring(box.id, box.stop())).filter((s) => s !== "running")).toEqual(["stopping", "stopped"])
    // Started again by another process, with its data.
    const b = client("exec", home, "keeper", JSON.stringify(["cat", "/root/data"]))
    expect((await b.line(0)).stdout).toBe("kept\n")
    // That process started it (not detached), so the box stopped when that process ended.
    await eventually(async () => (await statusOf(box.id)) === "stopped", "the restarted box stops with the process that started it")

    // A VM that dies is not "running": it failed, says why, and only an explicit start revives it.
    await box.start()
    process.kill((await box.info()).pid!, "SIGKILL")
    await eventually(async () => (await statusOf(box.id)) === "failed", "a killed VM is reported failed")
    expect((await box.info()).reason).toMatch(/VM exited without a stop request \(killed by SIGKILL\)/)
    expect(supervisorOf(box.id)).toEqual([])
    await expect(box.exec("true")).rejects.toBeInstanceOf(BoxStateError)
    await box.start()
    expect((await sh(box, "cat /root/data")).out).toBe("kept")
    expect((await box.info()).reason).toBeUndefined()
    await box.remove()
  }, 180_000)

  it("a new runtime reconciles records whose supervisor died: failed with the reason, autoRemove ones too", async () => {
    const box = await runtime.create({ image: BUSYBOX, detach: true, autoRemove: false, memoryMib: 128 })
    const gone = await runtime.create({ image: BUSYBOX, detach: true, memoryMib: 128 })
    await box.start()
    await gone.start()
    const supervisors = [...supervisorOf(box.id), ...supervisorOf(gone.id)]
    expect(supervisors.length).toBe(2)
    for (const pid of supervisors) process.kill(Number(pid), "SIGKILL")
    await eventually(() => qemuProcessesUnder(home).length === 0, "QEMU dies with its supervisor")
    const again = new Boxlite({ homeDir: home })
    try {
      const list = await again.list()
      // Both lost their VM: failed, with why. The autoRemove one is kept too, so its owner learns it crashed.
      // Newest first, as the reference lists.
      expect(list.map((b) => [b.id, b.status])).toEqual([[gone.id, "failed"], [box.id, "failed"]])
      for (const b of list) expect(b.reason).toMatch(/supervisor \(pid \d+\) died while the box was running/)
      const reopened = await again.get(box.id)
      await expect(reopened.exec("true")).rejects.toBeInstanceOf(BoxStateError)
      await reopened.start()
      expect((await sh(reopened, "echo back")).out).toBe("back")
      await reopened.remove()
      await again.remove(gone.id)
    } finally {
      await again.close()
    }
  }, 180_000)
})

describe("metrics", () => {
  it("CPU time grows with a busy loop, network bytes with a transfer, memory is the guest's", async () => {
    const box = await runtime.create({ image: PYTHON, ports: [{ hostPort: 0, guestPort: 7000 }], memoryMib: 256 })
    try {
      await box.start()
      const before = await box.metrics()
      expect(before.memoryUsageBytes).toBeGreaterThan(1024 * 1024)
      expect(before.memoryUsageBytes).toBeLessThan(256 * 1024 * 1024)
      await sh(box, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
      const busy = await box.metrics()
      expect(busy.cpuTimeMs).toBeGreaterThan(before.cpuTimeMs + 200)

      const server = await box.exec("python3", ["-c", "import socket\ns=socket.socket()\ns.bind(('0.0.0.0',7000))\ns.listen(1)\nc,_=s.accept()\nn=0\nwhile True:\n  d=c.recv(65536)\n  if not d: break\n  n+=len(d)\nc.sendall(str(n).encode())\nc.close()"])
      const port = (await box.info()).ports[0]!.hostPort
      const sent = 2 * 1024 * 1024
      const reply = await new Promise<string>((resolve, reject) => {
        const attempt = (left: number) => {
          let answer = ""
          const socket = net.connect(port, "127.0.0.1", () => socket.end(Buffer.alloc(sent)))
          socket.on("data", (d) => (answer += d.toString()))
          socket.on("end", () => (answer ? resolve(answer) : left > 0 ? setTimeout(() => attempt(left - 1), 200) : reject(new Error("no answer"))))
          socket.on("error", (e) => (left > 0 ? setTimeout(() => attempt(left - 1), 200) : reject(e)))
        }
        attempt(50)
      })
      expect(Number(reply)).toBe(sent)
      await server.wait()
      const after = await box.metrics()
      expect(after.networkBytesReceived - busy.networkBytesReceived).toBeGreaterThanOrEqual(sent)
      expect(after.networkBytesSent).toBeGreaterThan(busy.networkBytesSent)
    } finally {
      await box.stop()
    }
  }, 180_000)

  it("runtime metrics count creates, destroys, execs and active boxes", async () => {
    const before = await runtime.metrics()
    const box = await runtime.create({ image: BUSYBOX, memoryMib: 128 })
    await sh(box, "true")
    const during = await runtime.metrics()
    expect(during.boxesCreated).toBe(before.boxesCreated + 1)
    expect(during.totalExecCalls).toBe(before.totalExecCalls + 1)
    expect(during.activeBoxes).toBe(before.activeBoxes + 1)
    await box.stop()
    const after = await runtime.metrics()
    expect(after.boxesDestroyed).toBe(before.boxesDestroyed + 1)
    expect(after.activeBoxes).toBe(before.activeBoxes)
    const stopped = await runtime.create({ image: BUSYBOX, autoRemove: false })
    await expect(stopped.metrics()).rejects.toBeInstanceOf(BoxStateError)
    await stopped.remove()
  }, 180_000)
})

describe("bad input and logs", () => {
  it("unknown ids are BoxNotFound; a running box is removed only with force", async () => {
    await expect(runtime.get("01NOSUCHBOX")).rejects.toBeInstanceOf(BoxNotFound)
    await expect(runtime.remove("nope")).rejects.toBeInstanceOf(BoxNotFound)
    const box = await runtime.create({ image: BUSYBOX, memoryMib: 128, name: "busy" })
    await box.start()
    const refused = await runtime.remove("busy").catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(BoxStateError)
    expect(String((refused as Error).message)).toContain("force")
    expect(await statusOf(box.id)).toBe("running")
    await runtime.remove("busy", { force: true })
    expect(qemuProcessesUnder(home)).toEqual([])
    await expect(box.info()).rejects.toBeInstanceOf(BoxNotFound)
  }, 180_000)

  it("BOXLITE_LOG and RUST_LOG give structured logs; the supervisor logs to the box's supervisor.log", async () => {
    for (const variable of ["BOXLITE_LOG", "RUST_LOG"]) {
      const child = spawn(process.execPath, [CLIENT, "createExec", home, JSON.stringify({ image: BUSYBOX, memoryMib: 128, autoRemove: false })], {
        env: { ...process.env, BOXLITE_LOG: "", RUST_LOG: "", [variable]: "debug" }
      })
      let stderr = ""
      let stdout = ""
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
      await new Promise((r) => child.on("exit", r))
      const { id } = JSON.parse(stdout)
      expect(stderr).toMatch(new RegExp(`level=INFO .*message="box created".*box=${id}`))
      expect(stderr).toContain("supervisor launched")
      const log = fs.readFileSync(path.join(home, "boxes", id, "supervisor.log"), "utf8")
      expect(log).toContain("message=\"box running\"")
      expect(log).toMatch(/message=stopping .*reason=requested/)
      await runtime.remove(id)
    }
  }, 180_000)
})

// Faults and state at rest, without a VM: private homes, records of dead supervisors, every
// error a user sees typed (issue 9). The VM versions are in boxlite/test/vm/security-faults.
import { describe, expect, it } from "vitest"
import { encodeFrame, encodeJson, FrameDecoder, FrameType } from "@boxlite/agent-protocol"
import { Effect, Exit, Fiber, Stream } from "effect"
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { BoxliteError, BoxStateError, ExecError, InvalidOptions, StorageError } from "../src/Errors.js"
import { resolveBoxOptions } from "../src/Options.js"
import { ExecutionImpl } from "../src/Execution.js"
import { AgentConnection } from "../src/internal/AgentConnection.js"
import { BoxHandle, reconcile } from "../src/internal/BoxHandle.js"
import { refOf } from "../src/internal/Proc.js"
import type { SupervisorPool } from "../src/supervisor/SupervisorPool.js"
import { Execution } from "../src/promise/Execution.js"
import { type BoxRecord, layerSqlite, StateStore } from "../src/StateStore.js"
import { socketPair } from "./socketPair.js"
import { openSqlite } from "../src/internal/Sqlite.js"

const tempHome = () => fs.mkdtempSync(path.join(os.tmpdir(), "bl-faults-"))
/** A database file opened directly, as an earlier version would. */
const rawDatabase = (file: string) => {
  fs.closeSync(fs.openSync(file, "a"))
  return openSqlite(file)
}
const modeOf = (file: string) => fs.statSync(file).mode & 0o777

const withStore = <A, E>(home: string, f: (store: StateStore["Service"]) => Effect.Effect<A, E>, create = true) =>
  Effect.runPromiseExit(Effect.provide(Effect.flatMap(StateStore.use(Effect.succeed), f), layerSqlite(home, { create })))

const record = async (id: string, change: Partial<BoxRecord> = {}): Promise<BoxRecord> => ({
  id, name: undefined, status: "configured", image: "busybox", options: await Effect.runPromise(resolveBoxOptions({ image: "busybox" })),
  runConfig: { env: [] } as unknown as BoxRecord["runConfig"], base: "/base", createdAt: new Date(), pid: undefined, supervisor: undefined,
  ports: [], booted: false, reason: undefined, layers: [], snapshot: undefined, restore: undefined, driver: "qemu", diskFormat: "qcow2", ...change
})

describe("state at rest", () => {
  it("a pre-existing 0755 home with 0644 database files becomes 0700/0600, and SQLite's later files are 0600", async () => {
    const home = tempHome()
    fs.chmodSync(home, 0o755)
    const file = path.join(home, "boxlite.db")
    // An earlier version's database, still open elsewhere: its -wal and -shm exist, 0644.
    const previous = process.umask(0o022)
    const old = rawDatabase(file)
    old.exec("PRAGMA journal_mode = WAL")
    old.exec("CREATE TABLE t (x)")
    process.umask(previous)
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(modeOf(f)).toBe(0o644)
    const exit = await withStore(home, (store) => store.list)
    expect(Exit.isSuccess(exit)).toBe(true)
    old.close()
    expect(modeOf(home)).toBe(0o700)
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(f)) expect(modeOf(f)).toBe(0o600)

    // A database created now never exists readable, and the -wal SQLite creates later takes its mode.
    const fresh = path.join(tempHome(), "home")
    const box = await record("NEW")
    process.umask(0o022)
    try {
      const held = await withStore(fresh, (store) => Effect.andThen(store.insert(box), Effect.sync(() => {
        const wal = path.join(fresh, "boxlite.db-wal")
        return { db: modeOf(path.join(fresh, "boxlite.db")), wal: modeOf(wal) }
      })))
      expect(held).toEqual(Exit.succeed({ db: 0o600, wal: 0o600 }))
    } finally {
      process.umask(previous)
    }
    expect(modeOf(fresh)).toBe(0o700)
  })

  it.skipIf(process.getuid?.() !== 0)("a home of another user is refused with InvalidOptions(homeDir), and left as it was", async () => {
    const home = tempHome()
    fs.chmodSync(home, 0o755)
    fs.chownSync(home, 65534, 65534)
    const exit = await withStore(home, (store) => store.list)
    expect(exit).toMatchObject({ _tag: "Failure" })
    const error = Exit.isFailure(exit) ? exit.cause.reasons.map((r) => ("error" in r ? r.error : undefined))[0] : undefined
    expect(error).toBeInstanceOf(InvalidOptions)
    expect((error as InvalidOptions).field).toBe("homeDir")
    expect(String((error as InvalidOptions).message)).toMatch(/belongs to uid 65534/)
    expect(modeOf(home)).toBe(0o755)
    expect(fs.readdirSync(home)).toEqual([])
  })

  it("a supervisor's open (create: false) never makes a home, nor a database", async () => {
    const parent = tempHome()
    const home = path.join(parent, "deleted")
    const exit = await withStore(home, (store) => store.list, false)
    const error = Exit.isFailure(exit) ? exit.cause.reasons.map((r) => ("error" in r ? r.error : undefined))[0] : undefined
    expect(error).toBeInstanceOf(StorageError)
    expect(fs.existsSync(home)).toBe(false)
    fs.mkdirSync(home, { mode: 0o700 })
    await withStore(home, (store) => store.list, false)
    expect(fs.readdirSync(home)).toEqual([])
  })
})

describe("records of dead supervisors", () => {
  // A process that has surely ended: a child we ran to completion.
  const deadRef = () => {
    const pid = Number(execFileSync("sh", ["-c", "echo $$"]).toString().trim())
    return { pid, startTime: "1" }
  }

  it("running -> failed with the reason, stopping -> stopped; the driver's run folders go", async () => {
    const home = tempHome()
    const running = await record("01HXRUNNINGBOX00000000AAAA", { status: "running", supervisor: deadRef(), pid: 1 })
    const stopping = await record("01HXSTOPPINGBOX0000000BBBB", { status: "stopping", supervisor: deadRef() })
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), `boxlite-${running.id.slice(-8)}-`))
    fs.writeFileSync(path.join(runDir, "agent.sock"), "")
    const exit = await withStore(home, (store) =>
      Effect.gen(function*() {
        yield* store.insert(running)
        yield* store.insert(stopping)
        const a = yield* reconcile(store, running)
        const b = yield* reconcile(store, stopping)
        return { a, b, stored: yield* store.find(running.id) }
      }))
    if (!Exit.isSuccess(exit)) throw new Error(String(exit.cause))
    expect(exit.value.a).toMatchObject({ status: "failed", reason: expect.stringMatching(/supervisor \(pid \d+\) died while the box was running/), pid: undefined })
    expect(exit.value.stored).toMatchObject({ status: "failed", reason: exit.value.a.reason })
    expect(exit.value.b).toMatchObject({ status: "stopped", reason: undefined })
    expect(fs.existsSync(runDir)).toBe(false)
  })

  it("the reason column is added to a home of an earlier version", async () => {
    const home = tempHome()
    const old = rawDatabase(path.join(home, "boxlite.db"))
    old.exec(`CREATE TABLE boxes (id TEXT PRIMARY KEY, name TEXT UNIQUE, status TEXT NOT NULL, image TEXT NOT NULL,
      options TEXT NOT NULL, created_at INTEGER NOT NULL, pid INTEGER)`)
    old.prepare("INSERT INTO boxes VALUES ('OLD', 'kept', 'stopped', 'busybox', ?, 1, NULL)").run(JSON.stringify((await record("x")).options))
    old.close()
    const exit = await withStore(home, (store) => Effect.andThen(store.update("OLD", { status: "failed", reason: "it crashed" }), store.find("kept")))
    expect(exit).toEqual(Exit.succeed(expect.objectContaining({ id: "OLD", status: "failed", reason: "it crashed" })))
  })
})

describe("errors users see are BoxliteErrors", () => {
  it("a supervisor that dies mid-exec: the stdout iterator, text(), wait() and stdin reject with ExecError", async () => {
    const [client, supervisor] = await socketPair()
    const decoder = new FrameDecoder()
    supervisor.on("data", (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.type === FrameType.HELLO) supervisor.write(encodeFrame(FrameType.HELLO_ACK, 0, encodeJson({ version: 1, agent: "fake" })))
        if (frame.type === FrameType.EXEC) {
          supervisor.write(encodeFrame(FrameType.STARTED, frame.stream, encodeJson({ pid: 7 })))
          supervisor.write(encodeFrame(FrameType.STDOUT, frame.stream, Buffer.from("line 1\n")))
        }
      }
    })
    const connection = await AgentConnection.open(client, () => "the box's supervisor (pid 42) died")
    const channel = connection.exec({ argv: ["sh"], env: [] })
    const impl = new ExecutionImpl(channel, ["sh"], await channel.started, undefined)
    const execution = new Execution(impl, Effect.runPromise)
    const lines: Array<string> = []
    const iterating = (async () => {
      for await (const line of execution.stdout()) {
        lines.push(line)
        // What SIGKILL of the supervisor does to this end: the socket closes.
        supervisor.destroy()
      }
    })()
    const failure = await iterating.catch((e: unknown) => e)
    expect(lines).toEqual(["line 1"])
    expect(failure).toBeInstanceOf(ExecError)
    expect(failure).toBeInstanceOf(BoxliteError)
    expect(String((failure as ExecError).message)).toMatch(/^sh: the box's supervisor \(pid 42\) died/)
    await expect(execution.wait()).rejects.toBeInstanceOf(ExecError)
    await expect(execution.stderr().text()).rejects.toBeInstanceOf(ExecError)
    const write = await execution.stdin().write("more").catch((e: unknown) => e)
    expect(write).toBeInstanceOf(ExecError)
    expect(String((write as ExecError).message)).toMatch(/supervisor \(pid 42\) died/)
    // The Effect face: the same typed failures.
    const effect = await Effect.runPromise(Effect.all([
      Effect.flip(Stream.runDrain(impl.stderr)),
      Effect.flip(impl.wait),
      Effect.flip(impl.writeStdin("x"))
    ]))
    for (const e of effect) expect(e).toBeInstanceOf(ExecError)
  })

  it("argv or env over one frame: InvalidOptions naming the field, before any supervisor is asked for", async () => {
    const home = tempHome()
    let asked = 0
    const supervisors = { take: () => (asked++, undefined), refill: () => void asked++ } as unknown as SupervisorPool
    const exit = await withStore(home, (store) =>
      Effect.gen(function*() {
        const r = yield* Effect.promise(() => record("BIG"))
        yield* store.insert(r)
        const box = new BoxHandle(r, { homeDir: home, store, supervisors, hypervisorInfo: Effect.succeed(undefined), onRemoved: () => {} })
        const argv = yield* Effect.flip(box.exec("echo", ["x".repeat(1024 * 1024 + 1)]))
        const env = yield* Effect.flip(box.exec("true", [], { env: { BIG: "y".repeat(1024 * 1024) } }))
        return { argv, env, status: (yield* box.info).status }
      }))
    if (!Exit.isSuccess(exit)) throw new Error(String(exit.cause))
    expect(exit.value.argv).toBeInstanceOf(InvalidOptions)
    expect(exit.value.argv).toMatchObject({ field: "argv" })
    expect(exit.value.env).toMatchObject({ field: "exec.env" })
    expect(exit.value.status).toBe("configured")
    expect(asked).toBe(0)
  })

  it("a stop that outwaits a start claim never kills the launcher holding it (a client, not a supervisor)", async () => {
    const home = tempHome()
    const supervisors = { take: () => { throw new Error("must not launch") }, refill: () => {} } as unknown as SupervisorPool
    // The launcher: another live process that claimed the start and has not handed it over.
    const launcher = spawn("sleep", ["300"], { stdio: "ignore" })
    const launcherExit = new Promise<string | null>((resolve) => launcher.once("exit", (_code, signal) => resolve(signal)))
    try {
      const exit = await withStore(home, (store) =>
        Effect.gen(function*() {
          const r = yield* Effect.promise(() => record("CLAIMED"))
          yield* store.insert(r)
          expect(yield* store.claimStart(r.id, refOf(launcher.pid!)!)).toBe(true)
          const box = new BoxHandle(r, { homeDir: home, store, supervisors, hypervisorInfo: Effect.succeed(undefined), onRemoved: () => {} })
          const stopping = yield* Effect.forkChild(box.stop)
          // Past the stop's 30 s wait, where a supervisor that does not finish is SIGKILLed.
          yield* Effect.sleep("32 seconds")
          const aliveAfterDeadline = launcher.exitCode === null && launcher.signalCode === null
          // The launcher dies: its claim is stale, the box failed, and the stop returns.
          launcher.kill("SIGTERM")
          yield* Effect.promise(() => launcherExit)
          yield* Fiber.join(stopping)
          return { aliveAfterDeadline, after: yield* store.find(r.id) }
        }))
      if (!Exit.isSuccess(exit)) throw new Error(String(exit.cause))
      expect(exit.value.aliveAfterDeadline).toBe(true)
      expect(await launcherExit).toBe("SIGTERM")
      // autoRemove (the default): the stop ended with the box removed.
      expect(exit.value.after).toBeUndefined()
    } finally {
      launcher.kill("SIGKILL")
    }
  }, 60_000)

  it("a stop ends with the run it found: a run another process starts meanwhile is not stopped nor killed", async () => {
    const home = tempHome()
    const supervisors = { take: () => { throw new Error("must not launch") }, refill: () => {} } as unknown as SupervisorPool
    // Two live processes standing for the supervisor of the run being stopped and of the next run.
    const [first, next] = [spawn("sleep", ["300"], { stdio: "ignore" }), spawn("sleep", ["300"], { stdio: "ignore" })]
    try {
      const exit = await withStore(home, (store) =>
        Effect.gen(function*() {
          const options = yield* resolveBoxOptions({ image: "busybox", autoRemove: false })
          const r = yield* Effect.promise(() => record("RESTARTED", { status: "stopping", supervisor: refOf(first.pid!)!, options }))
          yield* store.insert(r)
          const box = new BoxHandle(r, { homeDir: home, store, supervisors, hypervisorInfo: Effect.succeed(undefined), onRemoved: () => {} })
          const stopping = yield* Effect.forkChild(box.stop)
          yield* Effect.sleep("300 millis")
          // Between two of the stop's polls the first run ended and another process started the box.
          yield* store.update(r.id, { status: "running", supervisor: refOf(next.pid!)! })
          const returned = yield* Fiber.join(stopping).pipe(Effect.timeout("5 seconds"), Effect.as(true), Effect.orElseSucceed(() => false))
          return { returned, after: yield* store.find(r.id) }
        }))
      if (!Exit.isSuccess(exit)) throw new Error(String(exit.cause))
      expect(exit.value.returned).toBe(true)
      expect(exit.value.after).toMatchObject({ status: "running", supervisor: { pid: next.pid } })
      expect(next.exitCode === null && next.signalCode === null).toBe(true)
    } finally {
      first.kill("SIGKILL")
      next.kill("SIGKILL")
    }
  }, 30_000)

  it("exec on a failed box is a BoxStateError saying to start() it", async () => {
    const home = tempHome()
    const supervisors = { take: () => { throw new Error("must not launch") }, refill: () => {} } as unknown as SupervisorPool
    const exit = await withStore(home, (store) =>
      Effect.gen(function*() {
        const r = yield* Effect.promise(() => record("FAILED", { status: "failed", reason: "the VM exited without a stop request (killed by SIGKILL)" }))
        yield* store.insert(r)
        const box = new BoxHandle(r, { homeDir: home, store, supervisors, hypervisorInfo: Effect.succeed(undefined), onRemoved: () => {} })
        return { exec: yield* Effect.flip(box.exec("true")), ping: yield* Effect.flip(box.ping), info: yield* box.info }
      }))
    if (!Exit.isSuccess(exit)) throw new Error(String(exit.cause))
    expect(exit.value.exec).toBeInstanceOf(BoxStateError)
    expect(String(exit.value.exec.message)).toMatch(/failed \(the VM exited .*SIGKILL\)\): restart it explicitly with start\(\)/)
    expect(exit.value.ping).toBeInstanceOf(BoxStateError)
    expect(exit.value.info).toMatchObject({ status: "failed", reason: expect.stringMatching(/SIGKILL/) })
  })
})

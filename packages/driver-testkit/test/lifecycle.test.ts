/**
 * Runtime, supervisor and box lifecycle on the fake driver: real runtimes on temporary homes,
 * real supervisor processes (core's generic supervisor program, which loads the fake by the
 * name each box records), no VM. Boxes are made from a tiny OCI layout built here (test/image.ts).
 * The supervisor inherits this process's environment: faults go there by BOXLITE_FAKE_FAULT.
 */
import {
  BootError, type Box, BoxNotFound, GuestArtifacts, type GuestFiles, Hypervisor, HypervisorUnavailable, InvalidOptions, layer as runtimeLayer, Runtime, SnapshotError,
  SupervisorEntry
} from "@boxlite/core"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Stream } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll } from "vitest"
import { FAKE_DRIVER_NAME, make as fake, writeFakeGuest } from "../src/index.js"
import { tinyImage } from "./image.js"

const SUPERVISOR = createRequire(import.meta.url).resolve("@boxlite/core/supervisor-program")

let work: string
let image: string
let guest: GuestFiles
beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-tk-"))
  image = await tinyImage(path.join(work, "image"))
  guest = writeFakeGuest(path.join(work, "guest"))
})
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))
// Each test's runtimes have closed: their spare supervisors end, and no VMM is left (a box's
// supervisor ends with its VMM). What a failed test leaves is killed, and fails the test.
afterEach(async () => {
  const gone = await Effect.runPromiseExit(eventually("the processes of the test's homes to end", () => processesNaming(work).length === 0, 5_000))
  if (gone._tag === "Success") return
  const left = processesNaming(work)
  for (const line of left) process.kill(Number(line.trim().split(" ")[0]), "SIGKILL")
  throw new Error(`processes left behind: ${left.join("; ")}`)
})

/** A home of its own for a test, under the file's work directory (short: socket paths live in it). */
const newHome = () => fs.mkdtempSync(path.join(work, "h"))

/** A Runtime of `home` on `hypervisor` (the runtime's driver), open for the rest of the scope. */
const openRuntime = (home: string, hypervisor: Hypervisor["Service"] = fake()) =>
  Effect.map(
    Layer.build(runtimeLayer({ homeDir: home }).pipe(Layer.provide(Layer.mergeAll(
      Layer.succeed(Hypervisor, hypervisor),
      Layer.succeed(GuestArtifacts, GuestArtifacts.of({ files: Effect.succeed(guest) })),
      Layer.succeed(SupervisorEntry, SupervisorEntry.of({ module: SUPERVISOR }))
    )))),
    (context) => Context.get(context, Runtime)
  )

/** Sets environment variables for the rest of the scope (supervisors launched meanwhile inherit them). */
const withEnv = (vars: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
      Object.assign(process.env, vars)
      return saved
    }),
    (saved) =>
      Effect.sync(() => {
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k]
          else process.env[k] = v
        }
      })
  )

/** Processes whose command line names `text` (a home: its supervisors and their stand-in VMMs name it). */
const processesNaming = (text: string): Array<string> =>
  execFileSync("ps", ["-axo", "pid=,args="]).toString().split("\n").filter((line) => line.includes(text) && !line.includes("ps -axo"))

const alive = (pid: number | undefined): boolean => {
  if (pid === undefined) return false
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Waits until `check` holds (processes end a moment after the box says so). */
const eventually = (what: string, check: () => boolean, timeoutMs = 10_000) =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  })

/** Waits until the box's status is `status`. */
const statusBecomes = (box: Box, status: string) =>
  Effect.gen(function*() {
    for (let waited = 0; (yield* box.info).status !== status; waited += 25) {
      if (waited > 10_000) return yield* Effect.die(new Error(`box ${box.id} stayed ${(yield* box.info).status}, not ${status}`))
      yield* Effect.sleep("25 millis")
    }
  })

/** No supervisor of `id` (its process title names the box) and no VMM of it (its command line names the box directory). */
const noProcessesOf = (id: string) => eventually(`no process of box ${id}`, () => processesNaming(id).length === 0)

const boxDirs = (home: string): Array<string> => (fs.existsSync(path.join(home, "boxes")) ? fs.readdirSync(path.join(home, "boxes")) : [])

/** Runs a command to its end: its stdout and exit code. */
const run = (box: Box, command: string, args: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const execution = yield* box.exec(command, args)
    const stdout = yield* Stream.mkString(Stream.decodeText(execution.stdout))
    const { exitCode } = yield* execution.wait
    return { stdout, exitCode }
  })

describe("box lifecycle on the fake driver", { timeout: 30_000 }, () => {
  it.live("create, start, exec, stop, remove: the box runs on the fake, and nothing is left", () =>
    Effect.gen(function*() {
      const home = newHome()
      const runtime = yield* openRuntime(home)
      const box = yield* runtime.create({ image, env: [["FROM_BOX", "2"]], autoRemove: false })
      expect(fs.existsSync(path.join(home, "boxes", box.id, "disk.qcow2"))).toBe(true)
      yield* box.start
      const running = yield* box.info
      expect(running).toMatchObject({ status: "running", driver: FAKE_DRIVER_NAME, accelerator: "fake", transport: "virtio-serial" })
      expect(alive(running.pid)).toBe(true)
      expect(yield* run(box, "echo", ["hello", "fake"])).toEqual({ stdout: "hello fake\n", exitCode: 0 })
      // The request carries the image's env merged with the box's.
      const env = (yield* run(box, "env")).stdout
      expect(env).toContain("FROM_IMAGE=1\n")
      expect(env).toContain("FROM_BOX=2\n")
      expect((yield* run(box, "exit", ["3"])).exitCode).toBe(3)
      // A missing program is exit code 127, as the real agent's words make it.
      const missing = yield* Effect.flip(box.exec("no-such-program"))
      expect(missing).toMatchObject({ _tag: "ExecError", exitCode: 127 })
      // The guest's console is in the box directory, as a real driver keeps it.
      expect(fs.readFileSync(path.join(home, "boxes", box.id, "console.log"), "utf8")).toContain(`fake VMM ${FAKE_DRIVER_NAME}: pid ${running.pid}`)

      yield* box.stop
      const stopped = yield* box.info
      expect(stopped.status).toBe("stopped")
      expect(stopped.pid).toBeUndefined()
      yield* noProcessesOf(box.id)
      yield* box.remove
      expect(boxDirs(home)).toEqual([])
      expect(yield* runtime.list).toEqual([])
    }), 30_000)

  it.live("a second runtime on the same home reattaches to a running box", () =>
    Effect.gen(function*() {
      const home = newHome()
      const first = yield* openRuntime(home)
      const box = yield* first.create({ image })
      yield* box.start
      const vmmPid = (yield* box.info).pid
      yield* Effect.scoped(Effect.gen(function*() {
        const second = yield* openRuntime(home)
        const again = yield* second.get(box.id)
        expect(yield* run(again, "echo", ["from", "the", "second"])).toEqual({ stdout: "from the second\n", exitCode: 0 })
        expect((yield* again.info).pid).toBe(vmmPid)
      }))
      // The second runtime only let go: the box runs on, the same VM.
      expect(yield* box.info).toMatchObject({ status: "running", pid: vmmPid })
      expect((yield* run(box, "true")).exitCode).toBe(0)
      yield* box.remove
      yield* noProcessesOf(box.id)
      expect(boxDirs(home)).toEqual([])
    }), 30_000)

  it.live("a detached box outlives its runtime; closing a runtime stops (and auto-removes) the boxes it owns", () =>
    Effect.gen(function*() {
      const home = newHome()
      const [detached, owned] = yield* Effect.scoped(Effect.gen(function*() {
        const runtime = yield* openRuntime(home)
        const detached = yield* runtime.create({ image, detach: true })
        const owned = yield* runtime.create({ image })
        yield* Effect.all([detached.start, owned.start])
        return [detached.id, owned.id]
      }))
      const runtime = yield* openRuntime(home)
      const stillRunning = yield* Effect.flatMap(runtime.get(detached), (b) => b.info)
      expect(stillRunning.status).toBe("running")
      expect(alive(stillRunning.pid)).toBe(true)
      // The owned box was stopped, and removed (autoRemove, the default).
      expect(yield* Effect.flip(runtime.get(owned))).toBeInstanceOf(BoxNotFound)
      expect(yield* Effect.flatMap(runtime.get(detached), (b) => run(b, "echo", ["still", "here"]))).toEqual({ stdout: "still here\n", exitCode: 0 })
      yield* runtime.remove(detached, { force: true })
      yield* Effect.all([noProcessesOf(detached), noProcessesOf(owned)])
      expect(boxDirs(home)).toEqual([])
    }), 30_000)
})

describe("streams on the fake driver", { timeout: 30_000 }, () => {
  it.live("cat moves 1 MiB through stdin and stdout within the flow-control windows", () =>
    Effect.gen(function*() {
      const runtime = yield* openRuntime(newHome())
      const box = yield* runtime.create({ image })
      const data = Buffer.alloc(1024 * 1024)
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251
      const cat = yield* box.exec("cat")
      const [, out] = yield* Effect.all([
        Effect.andThen(cat.writeStdin(data), cat.closeStdin),
        Stream.runFold(cat.stdout, () => [] as Array<Uint8Array>, (chunks, chunk) => [...chunks, chunk])
      ], { concurrency: 2 })
      expect(Buffer.concat(out).equals(data)).toBe(true)
      expect((yield* cat.wait).exitCode).toBe(0)
      yield* box.remove
    }), 30_000)

  it.live("a signal ends a command with 128 + n, and a timeout is a TimeoutError", () =>
    Effect.gen(function*() {
      const runtime = yield* openRuntime(newHome())
      const box = yield* runtime.create({ image })
      const sleeper = yield* box.exec("sleep", ["60000"])
      yield* sleeper.kill(15)
      expect(yield* sleeper.wait).toEqual({ exitCode: 143, signal: "SIGTERM" })
      const slow = yield* box.exec("sleep", ["60000"], { timeoutMs: 100 })
      expect(yield* Effect.flip(slow.wait)).toMatchObject({ _tag: "TimeoutError" })
      yield* box.remove
    }), 30_000)
})

describe("failures on the fake driver", { timeout: 30_000 }, () => {
  it.live("a boot failure is a BootError with the console tail; the box is failed with the reason, no process is left", () =>
    Effect.gen(function*() {
      yield* withEnv({ BOXLITE_FAKE_FAULT: "boot-fails" })
      const home = newHome()
      const runtime = yield* openRuntime(home)
      const box = yield* runtime.create({ image })
      const error = yield* Effect.flip(box.start)
      expect(error).toBeInstanceOf(BootError)
      expect((error as BootError).consoleTail).toContain("Kernel panic - not syncing")
      const info = yield* box.info
      expect(info.status).toBe("failed")
      expect(info.reason).toContain("the fake VM exited while booting")
      yield* noProcessesOf(box.id)
      // An exec does not quietly boot a failed box again.
      expect(yield* Effect.flip(box.exec("true"))).toMatchObject({ _tag: "BoxStateError" })
      yield* box.remove
      expect(boxDirs(home)).toEqual([])
    }), 30_000)

  it.live("a VM that dies unasked leaves the box failed, with why", () =>
    Effect.gen(function*() {
      const home = newHome()
      const runtime = yield* openRuntime(home)
      // Killed from outside: the VMM's pid is the box's.
      const killed = yield* runtime.create({ image })
      yield* killed.start
      process.kill((yield* killed.info).pid!, "SIGKILL")
      yield* statusBecomes(killed, "failed")
      expect((yield* killed.info).reason).toBe("the VM exited without a stop request (killed by SIGKILL)")
      yield* killed.remove
      yield* noProcessesOf(killed.id)
    }), 30_000)

  it.live("a VMM that crashes after an exec (BOXLITE_FAKE_FAULT=crash-after-exec): the exec's result arrives, then the box is failed", () =>
    Effect.gen(function*() {
      yield* withEnv({ BOXLITE_FAKE_FAULT: "crash-after-exec" })
      const home = newHome()
      const runtime = yield* openRuntime(home)
      const box = yield* runtime.create({ image })
      expect(yield* run(box, "echo", ["last", "words"])).toEqual({ stdout: "last words\n", exitCode: 0 })
      yield* statusBecomes(box, "failed")
      expect((yield* box.info).reason).toMatch(/^the VM exited without a stop request/)
      yield* noProcessesOf(box.id)
      yield* box.remove
    }), 30_000)

  it.live("a silent agent is a BootError naming readyTimeoutMs, and the VM is ended", () =>
    Effect.gen(function*() {
      yield* withEnv({ BOXLITE_FAKE_FAULT: "agent-silent" })
      const home = newHome()
      const runtime = yield* openRuntime(home)
      const box = yield* runtime.create({ image, readyTimeoutMs: 500 })
      const error = yield* Effect.flip(box.start)
      expect(error).toBeInstanceOf(BootError)
      expect(error.message).toContain("did not answer within 500 ms (option readyTimeoutMs)")
      expect((error as BootError).consoleTail).toContain("boxlite-agent: init")
      expect((yield* box.info).status).toBe("failed")
      yield* noProcessesOf(box.id)
      yield* box.remove
    }), 30_000)

  it.live("an unavailable driver, and a driver name that cannot be loaded, are HypervisorUnavailable naming it", () =>
    Effect.gen(function*() {
      const home = newHome()
      // Unavailable in the supervisor (the runtime's own driver is fine).
      yield* Effect.scoped(Effect.gen(function*() {
        yield* withEnv({ BOXLITE_FAKE_FAULT: "unavailable" })
        const runtime = yield* openRuntime(home)
        const box = yield* runtime.create({ image })
        const error = yield* Effect.flip(box.start)
        expect(error).toBeInstanceOf(HypervisorUnavailable)
        expect(error.message).toContain("BOXLITE_FAKE_FAULT=unavailable")
        expect(yield* box.info).toMatchObject({ status: "failed" })
        yield* box.remove
      }))
      const missing = "@boxlite/no-such-driver"
      const runtime = yield* openRuntime(home, fake({ name: missing }))
      const box = yield* runtime.create({ image })
      expect((yield* box.info).driver).toBe(missing)
      const error = yield* Effect.flip(box.start)
      expect(error).toBeInstanceOf(HypervisorUnavailable)
      expect(error.message).toContain(`driver "${missing}" cannot be loaded`)
      expect(yield* box.info).toMatchObject({ status: "failed" })
      yield* box.remove
      yield* noProcessesOf(box.id)
    }), 30_000)

  it.live("a host port taken between create and start is the supervisor's InvalidOptions, field and all", () =>
    Effect.gen(function*() {
      const runtime = yield* openRuntime(newHome())
      const blocker = net.createServer()
      const port = yield* Effect.promise(() => new Promise<number>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as net.AddressInfo).port))))
      yield* Effect.addFinalizer(() => Effect.sync(() => blocker.close()))
      // Free at create (the runtime checks), taken at start: only the supervisor sees it.
      yield* Effect.promise(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
      const box = yield* runtime.create({ image, ports: [[port, 80]] })
      yield* Effect.promise(() => new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", () => resolve())))
      const error = yield* Effect.flip(box.start)
      expect(error).toBeInstanceOf(InvalidOptions)
      expect((error as InvalidOptions).field).toBe("ports")
      expect(error.message).toContain(`127.0.0.1:${port} is already in use`)
      expect(yield* box.info).toMatchObject({ status: "failed" })
      yield* box.remove
      yield* noProcessesOf(box.id)
    }), 30_000)
})

describe("what the driver can do, and which driver runs a box", { timeout: 30_000 }, () => {
  it.live("a driver without volumes refuses a box with volumes (InvalidOptions volumes) and records nothing", () =>
    Effect.gen(function*() {
      const home = newHome()
      const runtime = yield* openRuntime(home, fake({ capabilities: { volumes: false } }))
      const error = yield* Effect.flip(runtime.create({ image, volumes: [{ hostPath: work, guestPath: "/data" }] }))
      expect(error).toBeInstanceOf(InvalidOptions)
      expect((error as InvalidOptions).field).toBe("volumes")
      expect(yield* runtime.list).toEqual([])
      expect(boxDirs(home)).toEqual([])
    }))

  it.live("a driver without a network refuses the default network (InvalidOptions network) but runs a box with network none", () =>
    Effect.gen(function*() {
      const home = newHome()
      const runtime = yield* openRuntime(home, fake({ capabilities: { network: false, portForwards: false, egressPolicy: false } }))
      const error = yield* Effect.flip(runtime.create({ image }))
      expect(error).toBeInstanceOf(InvalidOptions)
      expect((error as InvalidOptions).field).toBe("network")
      expect(yield* runtime.list).toEqual([])
      expect(boxDirs(home)).toEqual([])
      const box = yield* runtime.create({ image, network: "none" })
      expect((yield* run(box, "true")).exitCode).toBe(0)
      yield* box.remove
    }), 30_000)

  it.live("a driver that boots raw disks only: the box's disk is disk.raw, and it cannot be snapshotted", () =>
    Effect.gen(function*() {
      const home = newHome()
      const runtime = yield* openRuntime(home, fake({ capabilities: { diskFormats: ["raw"] } }))
      const box = yield* runtime.create({ image })
      expect(fs.readdirSync(path.join(home, "boxes", box.id))).toContain("disk.raw")
      expect(fs.existsSync(path.join(home, "boxes", box.id, "disk.qcow2"))).toBe(false)
      expect(yield* run(box, "echo", ["raw"])).toEqual({ stdout: "raw\n", exitCode: 0 })
      expect(fs.readFileSync(path.join(home, "boxes", box.id, "console.log"), "utf8")).toMatch(/disk \S+disk\.raw \(raw\)/)
      const error = yield* Effect.flip(box.snapshot())
      expect(error).toBeInstanceOf(SnapshotError)
      expect((error as SnapshotError).reason).toBe("unsupported")
      yield* box.remove
      yield* noProcessesOf(box.id)
    }), 30_000)

  it.live("a box keeps its recorded driver: a runtime on another driver starts it with the fake", () =>
    Effect.gen(function*() {
      const home = newHome()
      const id = yield* Effect.scoped(Effect.flatMap(openRuntime(home), (runtime) => Effect.map(runtime.create({ image }), (box) => box.id)))
      // This runtime's driver cannot even be loaded: only the box's record can name the fake.
      const runtime = yield* openRuntime(home, fake({ name: "@boxlite/driver-testkit/another-fake" }))
      const box = yield* runtime.get(id)
      expect((yield* box.info).driver).toBe(FAKE_DRIVER_NAME)
      expect(yield* run(box, "echo", ["recorded", "driver"])).toEqual({ stdout: "recorded driver\n", exitCode: 0 })
      expect(fs.readFileSync(path.join(home, "boxes", id, "console.log"), "utf8")).toContain(`fake VMM ${FAKE_DRIVER_NAME}:`)
      // Not the runtime's driver: its accelerator is not this runtime's to say.
      expect((yield* box.info).accelerator).toBeUndefined()
      yield* box.remove
      yield* noProcessesOf(box.id)
    }), 30_000)

  it.live("a supervisor whose fake cannot save (BOXLITE_FAKE_CAPS) refuses a snapshot as unsupported", () =>
    Effect.gen(function*() {
      yield* withEnv({ BOXLITE_FAKE_CAPS: JSON.stringify({ snapshots: false }) })
      const runtime = yield* openRuntime(newHome())
      const box = yield* runtime.create({ image })
      yield* box.start
      const error = yield* Effect.flip(box.snapshot())
      expect(error).toBeInstanceOf(SnapshotError)
      expect(error).toMatchObject({ reason: "unsupported", message: "this hypervisor driver cannot pause or save VMs" })
      expect(yield* runtime.snapshots.list).toEqual([])
      yield* box.remove
      yield* noProcessesOf(box.id)
    }), 30_000)

  it.live("snapshot, clone and suspend run on the fake's saved state", () =>
    Effect.gen(function*() {
      const home = newHome()
      const runtime = yield* openRuntime(home)
      const box = yield* runtime.create({ image })
      yield* box.start
      const snapshot = yield* box.snapshot({ name: "fake-snap" })
      expect(snapshot.stateBytes).toBeGreaterThan(0)
      expect((yield* run(box, "echo", ["after", "the", "snapshot"])).stdout).toBe("after the snapshot\n")
      const clone = yield* runtime.create({ fromSnapshot: "fake-snap" })
      expect(yield* run(clone, "echo", ["clone"])).toEqual({ stdout: "clone\n", exitCode: 0 })
      expect(fs.readFileSync(path.join(home, "boxes", clone.id, "console.log"), "utf8")).toContain("fake VMM: state restored")
      yield* box.suspend
      expect((yield* box.info).status).toBe("suspended")
      expect(yield* run(box, "echo", ["resumed"])).toEqual({ stdout: "resumed\n", exitCode: 0 })
      yield* Effect.all([box.remove, clone.remove])
      yield* runtime.snapshots.remove("fake-snap")
      yield* Effect.all([noProcessesOf(box.id), noProcessesOf(clone.id)])
      expect(boxDirs(home)).toEqual([])
    }), 30_000)
})

/**
 * A driver whose VM is a fake: the "VMM" is a stand-in process that runs nothing (so the VM has
 * a real pid, a real exit and can be killed like one) and the guest agent is a FakeAgent in this
 * process, on an in-memory stream. Runtime, supervisor and box lifecycle run on it in
 * milliseconds, with faults injected where a real VM could not be made to fail on cue.
 *
 * A box's supervisor loads it by its name, `@boxlite/driver-testkit/fake` (this module exports
 * `driver`). The supervisor is another process: what a test wants of the fake there comes from
 * the environment it inherits (test-only, read by this module alone):
 * - `BOXLITE_FAKE_FAULT`: `boot-fails` (start fails with a BootError after writing a panic to
 *   the console), `agent-silent` (the agent never answers), `crash-after-exec` (the VMM is
 *   killed once an exec has ended), `unavailable` (info and start are HypervisorUnavailable);
 * - `BOXLITE_FAKE_CAPS`: JSON of DriverCapabilities fields overriding the defaults.
 */
import {
  BootError, CONSOLE_LOG_MAX_BYTES, type DriverCapabilities, type DriverPlugin, type GuestFiles, type GuestNetwork, Hypervisor, HypervisorUnavailable,
  RotatingLog, type SavedState, SnapshotError, type Vm, type VmExit, type VmSpec
} from "@boxlite/driver"
import { Effect, Schema } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { duplexPair, type FakeAgentState, serveFakeAgent } from "./FakeAgent.js"

/** What a supervisor loads the fake by (see loadDriver). */
export const FAKE_DRIVER_NAME = "@boxlite/driver-testkit/fake"

export const FAKE_FAULTS = ["boot-fails", "agent-silent", "crash-after-exec", "unavailable"] as const
export type FakeFault = (typeof FAKE_FAULTS)[number]

/** Everything, so that no test is refused for want of a capability unless it asks. */
export const FAKE_CAPABILITIES: DriverCapabilities = {
  diskFormats: ["qcow2", "raw"],
  network: true,
  portForwards: true,
  egressPolicy: true,
  volumes: true,
  snapshots: true,
  agentTransport: "virtio-serial"
}

/** The addresses a guest would be given (the fake guest configures nothing). */
export const FAKE_GUEST_NETWORK: GuestNetwork = { address: "10.0.2.15", prefixLength: 24, gateway: "10.0.2.2", dns: "10.0.2.3", mtu: 1500 }

export interface FakeDriverOptions {
  /** Its Hypervisor.name (what boxes record). Default FAKE_DRIVER_NAME. */
  readonly name?: string
  /** Overrides of FAKE_CAPABILITIES. */
  readonly capabilities?: Partial<DriverCapabilities>
  readonly fault?: FakeFault
}

const Capabilities = Schema.Struct({
  diskFormats: Schema.optionalKey(Schema.Array(Schema.Literals(["qcow2", "raw"]))),
  network: Schema.optionalKey(Schema.Boolean),
  portForwards: Schema.optionalKey(Schema.Boolean),
  egressPolicy: Schema.optionalKey(Schema.Boolean),
  volumes: Schema.optionalKey(Schema.Boolean),
  snapshots: Schema.optionalKey(Schema.Boolean),
  agentTransport: Schema.optionalKey(Schema.Literals(["virtio-serial", "vsock"]))
})

/**
 * The options BOXLITE_FAKE_FAULT and BOXLITE_FAKE_CAPS give, or what is wrong with them (then
 * the driver is unavailable, saying so: a typo must not quietly test the fault-free path).
 */
export const optionsFromEnv = (env: NodeJS.ProcessEnv = process.env): FakeDriverOptions | string => {
  const fault = env["BOXLITE_FAKE_FAULT"] || undefined
  if (fault !== undefined && !(FAKE_FAULTS as ReadonlyArray<string>).includes(fault)) {
    return `BOXLITE_FAKE_FAULT=${fault} is not one of ${FAKE_FAULTS.join(", ")}`
  }
  let capabilities: Partial<DriverCapabilities> | undefined
  const caps = env["BOXLITE_FAKE_CAPS"] || undefined
  if (caps !== undefined) {
    const decoded = Schema.decodeUnknownExit(Schema.fromJsonString(Capabilities))(caps)
    if (decoded._tag === "Failure") return `BOXLITE_FAKE_CAPS is not JSON of capabilities: ${caps}`
    capabilities = decoded.value
  }
  return { ...(fault ? { fault: fault as FakeFault } : {}), ...(capabilities ? { capabilities } : {}) }
}

/**
 * Placeholder guest files in `dir` (the fake reads no kernel, but checks that it is there, as
 * a real driver would): for GuestArtifacts in tests of the fake.
 */
export const writeFakeGuest = (dir: string): GuestFiles => {
  fs.mkdirSync(dir, { recursive: true })
  const kernel = path.join(dir, "vmlinuz")
  const initrd = path.join(dir, "initrd.img")
  fs.writeFileSync(kernel, "fake kernel\n")
  fs.writeFileSync(initrd, "fake initramfs\n")
  return { kernel, initrd, cmdline: "console=hvc0 boxlite.fake=1" }
}

/** The stand-in VMM: runs nothing, ends when its stdin does (a power-off, or its parent dying). */
const STAND_IN = "process.stdin.on('end', () => process.exit(0)); process.stdin.on('error', () => process.exit(0)); process.stdin.resume()"

/** What must be the same to restore a saved fake VM. */
const signatureOf = (name: string, spec: VmSpec) => JSON.stringify({ vmm: `${name} 1`, cpus: spec.cpus, memoryMib: spec.memoryMib, kernel: spec.kernel, initrd: spec.initrd })

const STATE_FORMAT = "boxlite-fake-state/1"

const sha256Of = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/** The agent state of a saved fake VM, checked as a real driver checks its own. */
const readState = (name: string, spec: VmSpec, saved: SavedState): FakeAgentState => {
  if (!fs.existsSync(saved.file)) throw new SnapshotError("corrupt", `the saved state ${saved.file} is missing`)
  if (sha256Of(saved.file) !== saved.sha256) throw new SnapshotError("corrupt", `the saved state ${saved.file} is damaged (its sha256 differs)`)
  const want = signatureOf(name, spec)
  if (saved.signature !== want) throw new SnapshotError("incompatible", `the state was saved for ${saved.signature}, this VM is ${want}`)
  const content = JSON.parse(fs.readFileSync(saved.file, "utf8")) as { format?: string; agent?: FakeAgentState }
  if (content.format !== STATE_FORMAT || !content.agent) throw new SnapshotError("corrupt", `${saved.file} is not a fake VM's state`)
  return content.agent
}

/** The last bytes of a console kept in memory (the file rotates). */
const tailKeeper = (max: number) => {
  let kept = Buffer.alloc(0)
  return {
    add: (line: string) => {
      kept = Buffer.concat([kept, Buffer.from(line)])
      if (kept.length > max) kept = kept.subarray(kept.length - max)
    },
    tail: (bytes: number) => kept.subarray(Math.max(0, kept.length - bytes)).toString("utf8")
  }
}

/** The fake Hypervisor. */
export const make = (options: FakeDriverOptions = {}): Hypervisor["Service"] => makeWith(options)

/** `problem`: why the driver is unusable (a bad fault variable), if it is. */
const makeWith = (options: FakeDriverOptions, problem?: string): Hypervisor["Service"] => {
  const name = options.name ?? FAKE_DRIVER_NAME
  const capabilities: DriverCapabilities = { ...FAKE_CAPABILITIES, ...options.capabilities }
  const unavailable = problem ?? (options.fault === "unavailable" ? "the fake driver is unavailable (BOXLITE_FAKE_FAULT=unavailable)" : undefined)

  const check = (spec: VmSpec) =>
    Effect.try({
      try: () => {
        const format = spec.rootDiskFormat ?? "qcow2"
        if (!capabilities.diskFormats.includes(format)) throw new Error(`it boots no ${format} disk (diskFormats ${capabilities.diskFormats.join(", ")})`)
        if (spec.network && !capabilities.network) throw new Error("it has no network")
        if (spec.volumes.length > 0 && !capabilities.volumes) throw new Error("it shares no volumes")
        if (spec.restore && !capabilities.snapshots) throw new Error("it restores no saved state")
        const files = [spec.kernel, spec.initrd, spec.rootDisk, ...(spec.rootDiskBase ? [spec.rootDiskBase] : []), ...(spec.rootDiskLayers ?? [])]
        for (const file of files) fs.accessSync(file, fs.constants.R_OK)
        if (fs.lstatSync(spec.rootDisk).isSymbolicLink()) throw new Error(`the root disk ${spec.rootDisk} is a symlink`)
      },
      catch: (e) => new BootError(`box ${spec.boxId} cannot start on the fake driver: ${(e as Error).message}`, "")
    })

  const start = (spec: VmSpec) =>
    Effect.gen(function*() {
      if (unavailable) return yield* new HypervisorUnavailable(unavailable)
      yield* check(spec)
      const restored = spec.restore
        ? yield* Effect.try({
          try: () => readState(name, spec, spec.restore!),
          catch: (e) => (e instanceof SnapshotError ? e : new SnapshotError("corrupt", `${spec.restore!.file}: ${(e as Error).message}`))
        })
        : undefined
      const consoleFile = path.join(spec.dir, "console.log")
      const consoleLog = yield* Effect.acquireRelease(
        Effect.try({
          try: () => RotatingLog.make(consoleFile, spec.consoleLogMaxBytes ?? CONSOLE_LOG_MAX_BYTES),
          catch: (e) => new BootError(`cannot write ${consoleFile}: ${(e as Error).message}`, "")
        }),
        (log) => Effect.sync(log.close)
      )
      const tail = tailKeeper(64 * 1024)
      let consoleOpen = true
      const print = (line: string) => {
        tail.add(line)
        try {
          if (consoleOpen) consoleLog.write(line)
        } catch {
          // The box directory went away under the VM; the tail in memory remains.
        }
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => (consoleOpen = false)))

      const child = spawn(process.execPath, ["-e", STAND_IN, "boxlite-fake-vmm", spec.dir], { stdio: ["pipe", "ignore", "ignore"] })
      child.stdin.on("error", () => undefined)
      const exited = new Promise<VmExit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })))
      const running = () => child.exitCode === null && child.signalCode === null
      const kill = () => {
        if (running()) child.kill("SIGKILL")
      }
      // Closing the scope kills the VM if it still runs, and waits for its end.
      yield* Effect.addFinalizer(() => Effect.promise(() => (kill(), exited)))
      yield* Effect.tryPromise({
        try: () => new Promise<void>((resolve, reject) => child.once("spawn", resolve).once("error", reject)),
        catch: (e) => new BootError(`box ${spec.boxId}: cannot start the fake VMM: ${(e as Error).message}`, tail.tail(4096))
      })
      const pid = child.pid!
      print(`fake VMM ${name}: pid ${pid}, ${spec.cpus} vCPU, ${spec.memoryMib} MiB, disk ${spec.rootDisk} (${spec.rootDiskFormat ?? "qcow2"})\n`)
      print(`fake kernel: command line ${spec.cmdline}\n`)
      if (options.fault === "boot-fails") {
        print("Kernel panic - not syncing: VFS: Unable to mount root fs (BOXLITE_FAKE_FAULT=boot-fails)\n")
        kill()
        const exit = yield* Effect.promise(() => exited)
        return yield* new BootError(`box ${spec.boxId}: the fake VM exited while booting (${exit.signal ?? `code ${exit.code}`})`, tail.tail(4096))
      }
      print(restored ? "fake VMM: state restored\n" : "boxlite-agent: init\n")

      const [host, guest] = duplexPair()
      const agent = serveFakeAgent(guest, {
        agent: `boxlite-fake-agent (${name})`,
        silent: options.fault === "agent-silent",
        memoryMib: spec.memoryMib,
        console: print,
        // The guest powered off: the VMM ends with code 0.
        onPowerOff: () => child.stdin.end(),
        ...(options.fault === "crash-after-exec" ? { onExecEnd: kill } : {}),
        ...(restored ? { restored } : {})
      })
      // The guest lives as long as its VMM.
      void exited.then((exit) => {
        print(`fake VMM: exited (${exit.signal ?? `code ${exit.code}`})\n`)
        agent.close()
      })

      const control = capabilities.snapshots
        ? {
          pause: async () => agent.pause(),
          resume: async () => agent.resume(),
          saveState: async (file: string): Promise<SavedState> => {
            const content = JSON.stringify({ format: STATE_FORMAT, boxId: spec.boxId, agent: agent.state() })
            fs.writeFileSync(file, content, { mode: 0o600 })
            return { file, bytes: Buffer.byteLength(content), sha256: sha256Of(file), signature: signatureOf(name, spec) }
          }
        }
        : undefined
      const vm: Vm = {
        pid,
        agent: host,
        exited,
        consoleTail: async (bytes = 4096) => tail.tail(bytes),
        kill,
        ...(control ? { control } : {})
      }
      return vm
    })

  return Hypervisor.of({
    name,
    capabilities,
    guestNetwork: FAKE_GUEST_NETWORK,
    info: unavailable
      ? Effect.fail(new HypervisorUnavailable(unavailable))
      : Effect.succeed({ driver: name, accelerator: "fake", reason: "a fake VM for tests (@boxlite/driver-testkit): no guest runs", transport: capabilities.agentTransport }),
    start
  })
}

/** The fake as its box's supervisor loads it: configured by BOXLITE_FAKE_FAULT and BOXLITE_FAKE_CAPS. */
export const driver: DriverPlugin = {
  name: FAKE_DRIVER_NAME,
  make: () => {
    const options = optionsFromEnv()
    return typeof options === "string" ? makeWith({}, options) : make(options)
  }
}

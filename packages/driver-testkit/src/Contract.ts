/**
 * The contract every driver keeps, as vitest cases: `driverContract(name, { make, guest })` in a
 * driver's test file registers them. It speaks the agent protocol itself (no runtime, no
 * supervisor), so a failure points at the driver: boot and handshake, an exec's output and exit,
 * power-off on SHUTDOWN, kill(), the console tail, what closing the scope leaves behind (no VMM
 * process, no file outside the box directory), typed failures, and capabilities that agree with
 * `info`.
 */
import {
  decodeJson, encodeFrame, encodeJson, type Frame, FrameDecoder, FrameType, HelloAck, PROTOCOL_VERSION
} from "@boxlite/agent-protocol"
import { BoxliteError, type GuestFiles, type Hypervisor, type Vm, type VmSpec } from "@boxlite/driver"
import { Effect, Exit, Scope } from "effect"
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Duplex } from "node:stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

export interface DriverContractOptions {
  /** The driver under test (called once). */
  readonly make: () => Hypervisor["Service"]
  /** The guest kernel and initramfs it boots (with the BoxLite agent). */
  readonly guest: () => GuestFiles | Promise<GuestFiles>
  /**
   * Fields of every VmSpec; a real driver needs `rootDisk` (and `rootDiskBase` for a qcow2
   * overlay) to a bootable disk: without it each box gets an empty placeholder disk, which
   * only a fake driver boots. Resolved once, before the first case (it may build the disk).
   */
  readonly spec?: Partial<VmSpec> | (() => Partial<VmSpec> | Promise<Partial<VmSpec>>)
  /** Per case and per hook. Default 120 s (a boot under TCG takes seconds). */
  readonly timeoutMs?: number
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/** A minimal client of the agent protocol: frames in order, waited for by predicate. */
class RawAgent {
  private readonly decoder = new FrameDecoder()
  private readonly frames: Array<Frame> = []
  private readonly waiters = new Set<() => void>()
  private nextStream = 1
  ended = false

  constructor(private readonly channel: Duplex) {
    channel.on("data", (chunk: Buffer) => {
      this.frames.push(...this.decoder.push(chunk))
      this.wake()
    })
    const end = () => {
      this.ended = true
      this.wake()
    }
    channel.on("end", end)
    channel.on("close", end)
    channel.on("error", end)
  }

  send(type: number, stream: number, payload?: Uint8Array): void {
    this.channel.write(encodeFrame(type, stream, payload))
  }

  /** Takes the first frame that matches; fails if the channel ends first. */
  async take(what: string, match: (frame: Frame) => boolean): Promise<Frame> {
    while (true) {
      const index = this.frames.findIndex(match)
      if (index >= 0) return this.frames.splice(index, 1)[0]!
      if (this.ended) throw new Error(`the agent channel ended while waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake)
          resolve()
        }
        this.waiters.add(wake)
      })
    }
  }

  async hello(): Promise<HelloAck> {
    this.send(FrameType.HELLO, 0, encodeJson({ version: PROTOCOL_VERSION }))
    const ack = await this.take("HELLO_ACK", (f) => f.stream === 0 && (f.type === FrameType.HELLO_ACK || f.type === FrameType.ERROR))
    const decoded = decodeJson(HelloAck, ack.payload)
    if (ack.type !== FrameType.HELLO_ACK || !decoded) throw new Error(`HELLO was answered with ${ack.type}: ${Buffer.from(ack.payload).toString()}`)
    return decoded
  }

  /** Runs argv to its end: the output of each stream, the EXIT status, or the ERROR that refused it. */
  async exec(argv: ReadonlyArray<string>, stdin?: string) {
    const id = this.nextStream++
    this.send(FrameType.EXEC, id, encodeJson({ argv, env: [["PATH", PATH]], cwd: "/" }))
    if (stdin !== undefined) {
      if (stdin.length > 0) this.send(FrameType.STDIN, id, Buffer.from(stdin))
      this.send(FrameType.STDIN_CLOSE, id)
    }
    const last = await this.take(`the end of ${argv.join(" ")}`, (f) => f.stream === id && (f.type === FrameType.EXIT || f.type === FrameType.ERROR))
    const mine = this.frames.filter((f) => f.stream === id)
    this.frames.splice(0, this.frames.length, ...this.frames.filter((f) => f.stream !== id))
    const text = (type: number) => mine.filter((f) => f.type === type).map((f) => Buffer.from(f.payload).toString()).join("")
    return {
      types: [...mine.map((f) => f.type), last.type],
      stdout: text(FrameType.STDOUT),
      stderr: text(FrameType.STDERR),
      /** Which outputs ended (their empty frame) before the EXIT. */
      ended: [FrameType.STDOUT, FrameType.STDERR].filter((type) => mine.some((f) => f.type === type && f.payload.length === 0)),
      exit: last.type === FrameType.EXIT ? JSON.parse(Buffer.from(last.payload).toString()) as { exitCode: number; signal?: number } : undefined,
      error: last.type === FrameType.ERROR ? JSON.parse(Buffer.from(last.payload).toString()) as { code: string; message: string } : undefined
    }
  }

  private wake(): void {
    for (const wake of [...this.waiters]) wake()
  }
}

/** True while `pid` runs (a process of another user counts). */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** This process's child processes (Linux and macOS: pgrep -P). */
const children = (): Array<number> => {
  try {
    return execFileSync("pgrep", ["-P", String(process.pid)]).toString().split("\n").filter(Boolean).map(Number)
  } catch {
    return []
  }
}

const poll = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Registers the contract's cases for the driver `name` (what `info.driver` and `Hypervisor.name` must say). */
export const driverContract = (name: string, options: DriverContractOptions): void => {
  const timeout = options.timeoutMs ?? 120_000
  describe(`driver contract: ${name}`, () => {
    let driver: Hypervisor["Service"]
    let guest: GuestFiles
    let fixed: Partial<VmSpec>
    /** Where the cases' box directories are. */
    let root: string
    /**
     * TMPDIR while the contract runs: a driver may keep run files there while a VM lives, and
     * none once its scope has closed. Traversable by all: a driver may run its VMM as another uid.
     */
    let tmp: string
    let savedTmpdir: string | undefined
    let before: ReadonlyArray<number>

    beforeAll(async () => {
      driver = options.make()
      guest = await options.guest()
      fixed = typeof options.spec === "function" ? await options.spec() : options.spec ?? {}
      root = fs.mkdtempSync(path.join(os.tmpdir(), "bl-contract-"))
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bl-ctmp-"))
      fs.chmodSync(tmp, 0o1777)
      savedTmpdir = process.env["TMPDIR"]
      process.env["TMPDIR"] = tmp
      before = children()
    }, timeout)
    afterAll(() => {
      if (savedTmpdir === undefined) delete process.env["TMPDIR"]
      else process.env["TMPDIR"] = savedTmpdir
      fs.rmSync(root, { recursive: true, force: true })
      fs.rmSync(tmp, { recursive: true, force: true })
    })

    const specOf = (overrides: Partial<VmSpec> = {}): VmSpec => {
      const boxId = `01CONTRACT${randomBytes(8).toString("hex").toUpperCase()}`
      const dir = path.join(root, boxId)
      fs.mkdirSync(dir, { mode: 0o700 })
      const format = fixed.rootDiskFormat ?? driver.capabilities.diskFormats[0] ?? "qcow2"
      let rootDisk = fixed.rootDisk
      if (rootDisk === undefined) {
        rootDisk = path.join(dir, `disk.${format}`)
        fs.writeFileSync(rootDisk, "")
        fs.truncateSync(rootDisk, 64 * 1024 * 1024)
      }
      return {
        boxId, dir, kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline, rootDisk, rootDiskFormat: format,
        cpus: 1, memoryMib: 512, network: undefined, volumes: [], ...fixed, ...overrides
      }
    }

    const boot = async (spec: VmSpec) => {
      const scope = Scope.makeUnsafe()
      const vm: Vm = await Effect.runPromise(Scope.provide(driver.start(spec), scope))
      return { vm, agent: new RawAgent(vm.agent), close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
    }

    /** After a scope closed: the VMM is gone, no child process of ours is left, TMPDIR is empty, the box's files are in its directory. */
    const expectNothingLeft = async (pid: number | undefined) => {
      if (pid !== undefined) await poll(`the VMM (pid ${pid}) to be gone`, () => !alive(pid), 5_000)
      await poll("no child process left", () => children().every((p) => before.includes(p)), 5_000)
      expect(fs.readdirSync(tmp)).toEqual([])
      for (const entry of fs.readdirSync(root, { withFileTypes: true })) expect(entry.isDirectory(), `${entry.name} in the boxes' directory`).toBe(true)
    }

    const typedFailure = async (spec: VmSpec) => {
      const error = await Effect.runPromise(Effect.flip(Effect.scoped(driver.start(spec))))
      expect(error).toBeInstanceOf(BoxliteError)
      expect(["BootError", "HypervisorUnavailable"]).toContain(error._tag)
      await expectNothingLeft(undefined)
      return error
    }

    describe("what it says of itself", () => {
      it("info names the driver, and its transport is the capabilities' agentTransport", async () => {
        const info = await Effect.runPromise(driver.info)
        expect(driver.name).toBe(name)
        expect(info.driver).toBe(name)
        expect(info.transport).toBe(driver.capabilities.agentTransport)
        expect(info.accelerator).toMatch(/\S/)
      }, timeout)

      it("its capabilities are self-consistent", () => {
        const can = driver.capabilities
        expect(can.diskFormats.length).toBeGreaterThan(0)
        expect(new Set(can.diskFormats).size).toBe(can.diskFormats.length)
        for (const format of can.diskFormats) expect(["qcow2", "raw"]).toContain(format)
        expect(["virtio-serial", "vsock"]).toContain(can.agentTransport)
        // Forwards and egress rules are features of its network.
        if (can.portForwards) expect(can.network).toBe(true)
        if (can.egressPolicy) expect(can.network).toBe(true)
        const net = driver.guestNetwork
        const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/
        for (const address of [net.address, net.gateway, net.dns]) {
          expect(address).toMatch(ipv4)
          expect(address.split(".").every((n) => Number(n) <= 255)).toBe(true)
        }
        expect(net.prefixLength).toBeGreaterThanOrEqual(1)
        expect(net.prefixLength).toBeLessThanOrEqual(32)
        expect(net.mtu).toBeGreaterThanOrEqual(68)
        expect(net.mtu).toBeLessThanOrEqual(65535)
      })
    })

    describe("a booted VM", () => {
      let box: Awaited<ReturnType<typeof boot>>
      let spec: VmSpec
      beforeAll(async () => {
        spec = specOf()
        box = await boot(spec)
      }, timeout)
      afterAll(async () => {
        await box?.close()
      }, timeout)

      it("has a live VMM process, and its agent answers HELLO and CONFIGURE", async () => {
        expect(box.vm.pid).toBeGreaterThan(0)
        expect(alive(box.vm.pid)).toBe(true)
        const ack = await box.agent.hello()
        expect(ack.version).toBe(PROTOCOL_VERSION)
        expect(ack.agent).toMatch(/\S/)
        box.agent.send(FrameType.CONFIGURE, 0, encodeJson({ mounts: [] }))
        const configured = await box.agent.take("CONFIGURED", (f) => f.stream === 0 && (f.type === FrameType.CONFIGURED || f.type === FrameType.ERROR))
        expect(configured.type, Buffer.from(configured.payload).toString()).toBe(FrameType.CONFIGURED)
      }, timeout)

      it("answers PING with PONG", async () => {
        box.agent.send(FrameType.PING, 0, Buffer.from("contract-ping"))
        const pong = await box.agent.take("PONG", (f) => f.type === FrameType.PONG)
        expect(Buffer.from(pong.payload).toString()).toBe("contract-ping")
      }, timeout)

      it("runs execs through the raw protocol: output, stdin, exit codes, a spawn failure", async () => {
        const echo = await box.agent.exec(["echo", "contract", "hello"])
        expect(echo.types[0]).toBe(FrameType.STARTED)
        expect(echo.stdout).toBe("contract hello\n")
        expect(echo.exit).toEqual({ exitCode: 0 })
        // Both outputs end (an empty frame each) before the EXIT, which is the stream's last frame.
        expect(echo.ended).toEqual([FrameType.STDOUT, FrameType.STDERR])
        expect(echo.types.at(-1)).toBe(FrameType.EXIT)
        const cat = await box.agent.exec(["cat"], "through stdin")
        expect(cat.stdout).toBe("through stdin")
        expect(cat.exit).toEqual({ exitCode: 0 })
        expect((await box.agent.exec(["false"])).exit).toEqual({ exitCode: 1 })
        const missing = await box.agent.exec(["no-such-command-in-the-guest"])
        expect(missing.error?.code).toBe("spawn_failed")
      }, timeout)

      it("keeps the guest console in console.log of the box directory, and consoleTail is its end", async () => {
        const log = () => fs.readFileSync(path.join(spec.dir, "console.log"), "utf8")
        // The agent's first and last boot lines (PROTOCOL.md): the console is the guest's.
        await poll("the agent's ready line in console.log", () => log().includes("boxlite-agent: ready"), timeout / 2)
        expect(log()).toContain("boxlite-agent: init")
        const tail = await box.vm.consoleTail(4096)
        expect(tail.length).toBeGreaterThan(0)
        expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(4096)
        // Read after the tail: the log may have grown since, never lost it. (A character cut at the tail's start decodes as U+FFFD.)
        expect(log()).toContain(tail.replace(/^\uFFFD+/, ""))
        expect(Buffer.byteLength(await box.vm.consoleTail(16))).toBeLessThanOrEqual(16)
      }, timeout)

      it("powers off on SHUTDOWN: exited resolves with code 0 and the channel ends", async () => {
        box.agent.send(FrameType.SHUTDOWN, 0)
        expect(await box.vm.exited).toEqual({ code: 0, signal: null })
        await poll("the agent channel to end", () => box.agent.ended, 10_000)
        // The tail outlives the VM (a BootError quotes it).
        expect((await box.vm.consoleTail()).length).toBeGreaterThan(0)
        const pid = box.vm.pid
        await box.close()
        await expectNothingLeft(pid)
      }, timeout)
    })

    it("kill() ends the VM with a signal", async () => {
      const box = await boot(specOf())
      try {
        await box.agent.hello()
        box.vm.kill()
        const exit = await box.vm.exited
        expect(exit.signal).toMatch(/^SIG/)
        expect(exit.code).toBeNull()
      } finally {
        await box.close()
      }
      await expectNothingLeft(box.vm.pid)
    }, timeout)

    it("closing the scope kills a running VM and leaves no VMM process and no files outside its directory", async () => {
      const box = await boot(specOf())
      await box.agent.hello()
      let settled = false
      void box.vm.exited.then(() => (settled = true))
      await box.close()
      // The scope closed only once the VMM had ended.
      await Promise.resolve()
      expect(settled).toBe(true)
      await expectNothingLeft(box.vm.pid)
    }, timeout)

    describe("failures are typed", () => {
      it("a missing kernel is a BootError or HypervisorUnavailable, never a raw error", async () => {
        const spec = specOf()
        await typedFailure({ ...spec, kernel: path.join(spec.dir, "no-such-kernel") })
      }, timeout)

      it("a root disk that does not exist is a typed error", async () => {
        const spec = specOf()
        await typedFailure({ ...spec, rootDisk: path.join(spec.dir, "no-such-disk"), rootDiskFormat: driver.capabilities.diskFormats[0]! })
      }, timeout)
    })
  })
}

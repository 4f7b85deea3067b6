import { encodeFrame, encodeJson, FrameDecoder, FrameType } from "@boxlite/agent-protocol"
import type { Vm, VmSpec, VmVolume } from "@boxlite/driver"
import { CAPABILITIES, GUEST_NETWORK, type HvfDriverOptions, kernelProblem, macOf, make } from "@boxlite/driver-hvf"
import { Effect, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "vitest"

const FAKE = fileURLToPath(new URL("./fixtures/fake-vfkit.mjs", import.meta.url))
/** The project's x86_64 guest kernel: what the hvf driver must refuse. */
const X86_KERNEL = fileURLToPath(new URL("../../../guest/dist/", import.meta.url))
const onMac: HvfDriverOptions = { platform: "darwin", arch: "arm64", hvSupport: () => true, binary: FAKE }

const temps: Array<string> = []
/** Scopes of VMs a failed test left open: closed so that no vfkit outlives its test. */
const open: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((close) => close()))
  temps.splice(0).forEach((dir) => fs.rmSync(dir, { recursive: true, force: true }))
  delete process.env["FAKE_VFKIT_MODE"]
  delete process.env["BOXLITE_VFKIT"]
})

/** An arm64 boot image as far as its header goes: "ARM\x64" at offset 56. */
const arm64Image = (file: string) => {
  const header = Buffer.alloc(64)
  header.write("ARM\x64", 56, "latin1")
  fs.writeFileSync(file, header)
}

let boxes = 0
const setup = (overrides: Partial<VmSpec> = {}) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hvf-test-"))
  temps.push(tmp)
  const dir = path.join(tmp, "box")
  fs.mkdirSync(dir)
  arm64Image(path.join(tmp, "Image"))
  fs.writeFileSync(path.join(tmp, "initrd"), "initrd")
  fs.writeFileSync(path.join(dir, "disk.raw"), Buffer.alloc(1024))
  const record = path.join(tmp, "record.jsonl")
  process.env["FAKE_VFKIT_RECORD"] = record
  const spec: VmSpec = {
    boxId: `01HVFTEST${process.pid}X${++boxes}`, dir, kernel: path.join(tmp, "Image"), initrd: path.join(tmp, "initrd"), cmdline: "console=ttyS0 quiet",
    rootDisk: path.join(dir, "disk.raw"), rootDiskFormat: "raw", cpus: 2, memoryMib: 512, network: undefined, volumes: [], ...overrides
  }
  const records = (): Array<{ argv?: Array<string>; rest?: string; body?: unknown }> =>
    fs.existsSync(record) ? fs.readFileSync(record, "utf8").trim().split("\n").map((l) => JSON.parse(l)) : []
  /** The driver's run directories of this box still on disk. */
  const runDirs = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`boxlite-${spec.boxId.slice(-8)}-`))
  return { tmp, spec, records, runDirs }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts a VM in a scope the test closes (or not). */
const boot = async (spec: VmSpec, options: HvfDriverOptions = onMac) => {
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(Scope.provide(make(options).start(spec), scope))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw Effect.runSync(Effect.flip(exit))
  }
  const close = () => Effect.runPromise(Scope.close(scope, Exit.void))
  open.push(close)
  return { vm: exit.value, close }
}
const failure = (spec: VmSpec, options: HvfDriverOptions = onMac) => boot(spec, options).then(() => expect.unreachable("booted"), (e: unknown) => e as Error & { _tag: string })

/** Sends frames on the agent stream and collects the answers until `until` says enough. */
const converse = (vm: Vm, frames: Array<Buffer>, until: (seen: Array<{ type: number; payload: Uint8Array }>) => boolean) =>
  new Promise<Array<{ type: number; payload: Uint8Array }>>((resolve) => {
    const decoder = new FrameDecoder()
    const seen: Array<{ type: number; payload: Uint8Array }> = []
    const onData = (chunk: Buffer) => {
      seen.push(...decoder.push(chunk))
      if (until(seen)) {
        vm.agent.off("data", onData)
        resolve(seen)
      }
    }
    vm.agent.on("data", onData)
    frames.forEach((f) => vm.agent.write(f))
  })

const restOf = (argv: Array<string>) => argv[argv.indexOf("--restful-uri") + 1]!.slice("unix://".length)

describe("hvf driver: the host", { timeout: 30_000 }, () => {
  it("on this Linux host, the default driver says it runs on macOS only", async () => {
    const { spec, runDirs } = setup()
    const info = await Effect.runPromise(Effect.flip(make().info))
    expect(info._tag).toBe("HypervisorUnavailable")
    expect(info.message).toMatch(/runs on macOS only.*this host runs linux/)
    expect((await failure(spec, {}))._tag).toBe("HypervisorUnavailable")
    expect(runDirs()).toEqual([])
  })

  it("names what is missing: Apple Silicon, Hypervisor.framework, vfkit", async () => {
    const { spec } = setup()
    const unavailable = async (options: HvfDriverOptions) => (await Effect.runPromise(Effect.flip(make(options).info))).message
    expect(await unavailable({ ...onMac, arch: "x64" })).toMatch(/Apple Silicon.*this one is x64/)
    expect(await unavailable({ ...onMac, hvSupport: () => false })).toMatch(/kern\.hv_support is 0/)
    expect(await unavailable({ ...onMac, hvSupport: () => { throw new Error("no libSystem") } })).toMatch(/cannot ask macOS.*no libSystem/)
    expect(await unavailable({ ...onMac, binary: "/nonexistent/vfkit" })).toMatch(/vfkit \(\/nonexistent\/vfkit\) is not installed.*brew install vfkit.*BOXLITE_VFKIT/)
    const missing = await failure(spec, { ...onMac, binary: "vfkit-not-on-path" })
    expect(missing._tag).toBe("HypervisorUnavailable")
    expect(missing.message).toMatch(/brew install vfkit/)
    // BOXLITE_VFKIT names the binary when the options do not.
    process.env["BOXLITE_VFKIT"] = FAKE
    const { binary: _, ...withoutBinary } = onMac
    const info = await Effect.runPromise(make(withoutBinary).info)
    expect(info).toMatchObject({ driver: "hvf", accelerator: "hvf", transport: "vsock", confinement: { user: "this user", cgroup: "none" } })
  })

  it("refuses a guest kernel that is not an arm64 Image (the project's x86_64 guest), starting nothing", async () => {
    const { spec, records, runDirs } = setup()
    const x86 = fs.readdirSync(X86_KERNEL).find((n) => n.startsWith("vmlinux"))
    expect(x86).toBeDefined()
    const e = await failure({ ...spec, kernel: path.join(X86_KERNEL, x86!) })
    expect(e._tag).toBe("HypervisorUnavailable")
    expect(e.message).toMatch(/is an ELF kernel.*uncompressed arm64 Linux Image.*BOXLITE_HVF_GUEST/)
    expect(kernelProblem(spec.kernel)).toBeUndefined()
    fs.writeFileSync(path.join(spec.dir, "gz"), Buffer.from([0x1f, 0x8b, 8, 0, ...Buffer.alloc(60)]))
    expect(kernelProblem(path.join(spec.dir, "gz"))).toMatch(/compressed kernel/)
    expect(records()).toEqual([])
    expect(runDirs()).toEqual([])
  })

  it("boots BOXLITE_HVF_GUEST's arm64 guest instead of the runtime's", async () => {
    const { tmp, spec, records } = setup()
    const guest = path.join(tmp, "arm64-guest")
    fs.mkdirSync(guest)
    arm64Image(path.join(guest, "Image-arm64"))
    fs.writeFileSync(path.join(guest, "initrd.cpio"), "")
    fs.writeFileSync(path.join(guest, "manifest.json"), JSON.stringify({ kernel: "Image-arm64", initrd: "initrd.cpio", cmdline: "quiet panic=-1" }))
    const { close } = await boot({ ...spec, kernel: "/nonexistent" }, { ...onMac, guest })
    await close()
    expect(records()[0]!.argv).toContain(`linux,kernel=${guest}/Image-arm64,initrd=${guest}/initrd.cpio,cmdline="quiet panic=-1 console=hvc0 boxlite.vsock=1024 boxlite.virtio=pci"`)
  })
})

describe("hvf driver: a VM", { timeout: 30_000 }, () => {
  it("declares what vfkit can do", () => {
    expect(CAPABILITIES).toEqual({ diskFormats: ["raw"], network: true, portForwards: false, egressPolicy: false, volumes: true, snapshots: false, agentTransport: "vsock" })
    expect(GUEST_NETWORK).toEqual({ address: "192.168.64.250", prefixLength: 24, gateway: "192.168.64.1", dns: "192.168.64.1", mtu: 1500 })
  })

  it("boots a plain box with vfkit's exact command line; the agent answers over vsock; pause, resume and scope close go through REST", async () => {
    const { spec, records, runDirs } = setup()
    const { vm, close } = await boot(spec)
    const argv = records()[0]!.argv!
    const run = path.dirname(restOf(argv))
    expect(path.basename(run)).toMatch(new RegExp(`^boxlite-${spec.boxId.slice(-8)}-`))
    expect(argv).toEqual([
      "--cpus", "2", "--memory", "512",
      "--bootloader", `linux,kernel=${spec.kernel},initrd=${spec.initrd},cmdline="console=ttyS0 quiet console=hvc0 boxlite.vsock=1024 boxlite.virtio=pci"`,
      "--device", `virtio-blk,path=${spec.rootDisk}`,
      "--device", `virtio-vsock,port=1024,socketURL=${run}/agent.sock,connect`,
      "--device", `virtio-serial,logFilePath=${spec.dir}/console.log`,
      "--device", "virtio-rng",
      "--restful-uri", `unix://${run}/rest.sock`
    ])
    // The fake drops the first connection, as vfkit does before the agent listens: HELLO is sent again.
    const hello = await converse(vm, [encodeFrame(FrameType.HELLO, 0, encodeJson({ version: 1 }))], (s) => s.length >= 1)
    expect(hello[0]!.type).toBe(FrameType.HELLO_ACK)
    const exec = await converse(vm, [encodeFrame(FrameType.EXEC, 1, encodeJson({ argv: ["echo", "hi"], env: [] }))], (s) => s.some((f) => f.type === FrameType.EXIT))
    expect(Buffer.from(exec.find((f) => f.type === FrameType.STDOUT)!.payload).toString()).toBe("hi\n")
    expect(await vm.consoleTail(4096)).toMatch(/Kernel command line: console=ttyS0 quiet console=hvc0 boxlite\.vsock=1024 boxlite\.virtio=pci\n[\s\S]*boxlite-agent: ready/)
    expect(await vm.consoleTail(6)).toBe("ready\n")
    await vm.control!.pause()
    await vm.control!.resume()
    await expect(vm.control!.saveState(path.join(spec.dir, "state"))).rejects.toMatchObject({ _tag: "SnapshotError", reason: "unsupported" })
    await close()
    expect(records().filter((r) => r.rest).map((r) => [r.rest, r.body])).toEqual([
      ["POST /vm/state", { state: "Pause" }],
      ["POST /vm/state", { state: "Resume" }],
      ["POST /vm/state", { state: "HardStop" }]
    ])
    expect(alive(vm.pid)).toBe(false)
    expect(await vm.exited).toEqual({ code: 0, signal: null })
    expect(runDirs()).toEqual([])
  })

  it("adds a NAT NIC with the box's MAC and a virtio-fs share per volume", async () => {
    const { tmp, spec, records } = setup()
    const shared = [path.join(tmp, "data"), path.join(tmp, "src")]
    shared.forEach((d) => fs.mkdirSync(d))
    const fds = shared.map((d) => fs.openSync(d, "r"))
    const volumes: Array<VmVolume> = shared.map((hostPath, i) => ({ tag: `v${i}`, hostPath, fd: fds[i]!, readOnly: false }))
    try {
      const { close } = await boot({ ...spec, network: { allowHostLoopback: false, ports: [] }, volumes }, { ...onMac, networkLock: path.join(tmp, "net.sock") })
      await close()
    } finally {
      fds.forEach((fd) => fs.closeSync(fd))
    }
    const argv = records()[0]!.argv!
    const devices = argv.flatMap((a, i) => (argv[i - 1] === "--device" ? [a] : []))
    expect(devices.slice(4)).toEqual([`virtio-net,nat,mac=${macOf(spec.boxId)}`, `virtio-fs,sharedDir=${shared[0]},mountTag=v0`, `virtio-fs,sharedDir=${shared[1]},mountTag=v1`])
    expect(macOf(spec.boxId)).toMatch(/^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/)
  })

  it("runs one networked box at a time (one static address on vmnet's shared NAT); a stale lock is taken over", async () => {
    const { tmp, spec, runDirs } = setup()
    const options = { ...onMac, networkLock: path.join(tmp, "net.sock") }
    const networked = { ...spec, network: { allowHostLoopback: false, ports: [] } }
    const first = await boot(networked, options)
    const e = await failure(networked, options)
    expect([e._tag, e.message]).toEqual(["BootError", expect.stringMatching(`another hvf box with a network runs \\(its supervisor is pid ${process.pid}\\)`)])
    // Without a network, no lock.
    await (await boot(spec, options)).close()
    await first.close()
    expect(fs.existsSync(options.networkLock)).toBe(false)
    // A holder killed without cleanup leaves its socket file: nobody accepts there any more.
    spawnSync(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(options.networkLock)}, () => process.kill(process.pid, "SIGKILL"))`])
    expect(fs.existsSync(options.networkLock)).toBe(true)
    await (await boot(networked, options)).close()
    expect(runDirs()).toEqual([])
  })

  it("refuses what vfkit cannot do, typed and before starting anything", async () => {
    const { tmp, spec: withFormat, records, runDirs } = setup()
    const { rootDiskFormat: _, ...spec } = withFormat
    // A spec without a format is qcow2 (VmSpec.rootDiskFormat's default).
    expect((await failure(spec)).message).toMatch(/boots raw disks only.*is qcow2/)
    const dir = path.join(tmp, "data")
    fs.mkdirSync(dir)
    fs.writeFileSync(path.join(dir, "f"), "")
    const fd = fs.openSync(dir, "r")
    const volume: VmVolume = { tag: "v0", hostPath: dir, fd, readOnly: false }
    const net = { allowHostLoopback: false, ports: [] }
    try {
      const cases: Array<[Partial<VmSpec>, string, RegExp]> = [
        [{ rootDiskFormat: "qcow2" }, "BootError", /raw disks only/],
        [{ rootDiskLayers: ["/snap/disk.qcow2"] }, "BootError", /raw disks only/],
        [{ network: { ...net, ports: [{ protocol: "tcp", hostIp: "127.0.0.1", hostPort: 8080, guestPort: 80 }] } }, "BootError", /cannot forward host ports/],
        [{ network: { ...net, egress: { deny: [{ cidrs: ["10.0.0.0/8"] }] } as never } }, "BootError", /allow\/deny/],
        [{ volumes: [{ ...volume, file: "f" }] }, "BootError", /shares directories only/],
        [{ volumes: [{ ...volume, readOnly: true }] }, "BootError", /cannot make a share read-only/],
        [{ volumes: [{ ...volume, hostPath: path.join(tmp, "a,b") }] }, "BootError", /a,b: vfkit cannot take a path with a comma/],
        [{ volumes: [{ ...volume, hostPath: tmp }] }, "BootError", /was replaced since the box was created/],
        [{ cmdline: "init=\"x\"" }, "BootError", /double quote/],
        [{ rootDisk: path.join(tmp, "no-such-disk") }, "BootError", /its root disk: ENOENT/],
        [{ restore: { file: "/s", bytes: 1, sha256: "", signature: "" } }, "SnapshotError", /cannot restore/]
      ]
      for (const [overrides, tag, text] of cases) {
        const e = await failure({ ...withFormat, ...overrides })
        expect([e._tag, e.message]).toEqual([tag, expect.stringMatching(text)])
      }
    } finally {
      fs.closeSync(fd)
    }
    expect(records()).toEqual([])
    expect(runDirs()).toEqual([])
  })

  it("a vfkit that dies during boot is a BootError with vfkit's complaint and the console tail; nothing is left", async () => {
    const { spec, runDirs } = setup()
    process.env["FAKE_VFKIT_MODE"] = "die"
    const e = await failure(spec) as Error & { _tag: string; consoleTail: string }
    expect(e._tag).toBe("BootError")
    expect(e.message).toMatch(/vfkit exited during boot \(code 1\): level=error msg="virtualization error"/)
    expect(e.consoleTail).toMatch(/Kernel panic - not syncing: VFS: Unable to mount root fs/)
    // An executable that cannot be run at all (its interpreter is missing): no exit ever comes.
    const broken = path.join(spec.dir, "vfkit")
    fs.writeFileSync(broken, "#!/nonexistent/interpreter\n", { mode: 0o755 })
    const unrunnable = await failure(spec, { ...onMac, binary: broken })
    expect([unrunnable._tag, unrunnable.message]).toEqual(["BootError", expect.stringContaining(`cannot run ${broken}: spawn ${broken} ENOENT`)])
    expect(runDirs()).toEqual([])
  })

  it("kill() kills vfkit; closing the scope HardStops it, and kills a vfkit that ignores that; SHUTDOWN through the agent ends vfkit", async () => {
    const { spec, records } = setup()
    const killed = await boot(spec)
    killed.vm.kill()
    expect(await killed.vm.exited).toEqual({ code: null, signal: "SIGKILL" })
    await killed.close()
    expect(records().filter((r) => r.rest)).toEqual([])

    process.env["FAKE_VFKIT_MODE"] = "ignore-hardstop"
    const stubborn = await boot(spec)
    await stubborn.close()
    expect(await stubborn.vm.exited).toEqual({ code: null, signal: "SIGKILL" })
    expect(records().filter((r) => r.rest).map((r) => r.body)).toEqual([{ state: "HardStop" }])
    delete process.env["FAKE_VFKIT_MODE"]

    const polite = await boot(spec)
    await converse(polite.vm, [encodeFrame(FrameType.HELLO, 0, encodeJson({ version: 1 }))], (s) => s.length >= 1)
    polite.vm.agent.write(encodeFrame(FrameType.SHUTDOWN, 0))
    expect(await polite.vm.exited).toEqual({ code: 0, signal: null })
    expect(polite.vm.agent.destroyed).toBe(true)
    await polite.close()
    expect(await polite.vm.consoleTail()).toMatch(/reboot: Power down\n$/)
    // The previous boot's console stays beside the current one.
    expect(fs.readFileSync(path.join(spec.dir, "console.log.1"), "utf8")).toMatch(/Booting Linux/)
  })
})

import { BootError, HypervisorUnavailable, type Vm, type VmSpec } from "@boxlite/driver"
import { findPasst, passtArgs } from "@boxlite/driver-qemu"
import { CAPABILITIES, hasVhostUser, kernelCmdline, make } from "@boxlite/driver-kvm"
import { Effect, Exit, Scope } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { alive, boxFiles, callsOf, execThroughAgent, FAKE_CH, fakeKvm, processesMentioning, runDirsOf, specFor } from "./helpers.js"

const driver = (options: Parameters<typeof make>[0] = {}) => make({ binary: FAKE_CH, kvm: fakeKvm, ...options })

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** Starts a VM in a scope the test closes (or afterEach does). */
const boot = async (spec: VmSpec, options: Parameters<typeof make>[0] = {}) => {
  const scope = Effect.runSync(Scope.make())
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
  cleanups.push(close)
  const vm: Vm = await Effect.runPromise(Scope.provide(driver(options).start(spec), scope))
  return { vm, close }
}

const failure = async (spec: VmSpec, options: Parameters<typeof make>[0] = {}) => {
  const exit = await Effect.runPromiseExit(Effect.scoped(driver(options).start(spec)))
  if (Exit.isSuccess(exit)) throw new Error("the start succeeded")
  return exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error : r)).at(0) as unknown
}

const files = () => {
  const f = boxFiles()
  cleanups.push(() => fs.rmSync(f.dir, { recursive: true, force: true }))
  return f
}

/** Nothing of the box is left: no process naming its run directory, no run directory. */
const expectNothingLeft = (boxId: string) => {
  expect(runDirsOf(boxId)).toEqual([])
  expect(processesMentioning(`boxlite-${boxId.slice(-8)}-`)).toEqual([])
}

// Generous: helpers (virtiofsd, passt, pasta) start slower on a loaded machine.
describe("kvm driver with the fake cloud-hypervisor", { timeout: 20_000 }, () => {
  it("boots a plain box: exact command line, REST calls and VmConfig, vsock agent, console; closing leaves nothing", async () => {
    const f = files()
    const spec = specFor(f)
    const { vm, close } = await boot(spec)
    const { runDir, calls } = callsOf(spec.boxId)
    // Jailed: no capabilities, none of the host's /etc or home directories, /dev/kvm bound in.
    expect(calls[0]).toEqual({
      kind: "argv", argv: ["--api-socket", `path=${runDir}/api.sock`, "--seccomp", "true"], fds: [1000, 2000, 3000],
      sees: { capEff: "0000000000000000", etc: false, home: false, kvm: true }
    })
    const api = calls.filter((c) => c.kind === "api")
    expect(api.map((c) => `${c.method} ${c.endpoint}`)).toEqual(["GET vmm.ping", "PUT vm.create", "PUT vm.boot", "GET vm.info"])
    expect(api[1]!.body).toEqual({
      payload: {
        kernel: "/proc/self/fd/4",
        initramfs: "/proc/self/fd/5",
        cmdline: "quiet reboot=t panic=-1 console=ttyS0 boxlite.vsock=1024 boxlite.virtio=pci"
      },
      cpus: { boot_vcpus: 2, max_vcpus: 2 },
      memory: { size: 512 * 1024 * 1024, shared: false },
      disks: [{ path: "/proc/self/fd/6", image_type: "Raw", readonly: false }],
      vsock: { cid: 3, socket: `${runDir}/vsock.sock` },
      rng: { src: "/dev/urandom" },
      balloon: { size: 0, free_page_reporting: true },
      serial: { mode: "Tty" },
      console: { mode: "Off" }
    })
    // The jailed VMM could open the payload and disk it was given by descriptor.
    expect(calls.find((c) => c.kind === "opened")).toEqual({ kind: "opened", payload: [true, true], disks: [true], sockets: [] })
    // The agent was reached by CONNECT 1024 once the guest listened.
    const vsock = calls.filter((c) => c.kind === "vsock")
    expect(vsock.at(-1)).toEqual({ kind: "vsock", request: "CONNECT 1024", accepted: true })
    expect(await execThroughAgent(vm.agent, ["echo", "hi"])).toBe("hi\n")
    expect(await vm.consoleTail()).toContain("Linux version 6.1.0-fake")
    expect(fs.readFileSync(path.join(f.dir, "console.log"), "utf8")).toContain("boxlite.vsock=1024 boxlite.virtio=pci")
    expect(alive(vm.pid)).toBe(true)
    await close()
    expect(alive(vm.pid)).toBe(false)
    expectNothingLeft(spec.boxId)
  })

  it("retries CONNECT while the guest agent is not listening yet", async () => {
    const spec = specFor(files(), { cmdline: "console=ttyS0 fake.agent-delay-ms=1500" })
    const { vm } = await boot(spec)
    const vsock = callsOf(spec.boxId).calls.filter((c) => c.kind === "vsock")
    expect(vsock.length).toBeGreaterThan(1)
    expect(vsock.slice(0, -1).every((c) => c.kind === "vsock" && !c.accepted)).toBe(true)
    expect(await execThroughAgent(vm.agent, ["echo", "late"])).toBe("late\n")
  })

  it("boots a qcow2 overlay with backing files, its base visible in the jail only, read-only, at its own path", async () => {
    const f = files()
    const spec = specFor(f, { rootDiskFormat: "qcow2", rootDiskBase: f.base })
    await boot(spec)
    const { runDir, calls } = callsOf(spec.boxId)
    const create = calls.find((c) => c.kind === "api" && c.endpoint === "vm.create")
    expect((create as { body: { disks: unknown } }).body.disks).toEqual([{ path: "/proc/self/fd/6", image_type: "Qcow2", backing_files: true, readonly: false }])
    const jail = processesMentioning(`--ro-bind ${f.base} ${f.base} --bind ${runDir} ${runDir}`)
    expect(jail.length).toBe(1)
    // The disk itself is a descriptor: no bind of the box's directory.
    expect(processesMentioning(`--bind ${f.dir}`)).toEqual([])
  })

  it("shares volumes through virtiofsd: fs devices on its sockets, shared memory", async () => {
    const f = files()
    const shared = fs.mkdtempSync(path.join(f.dir, "share-"))
    const fd = fs.openSync(shared, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
    cleanups.push(() => fs.closeSync(fd))
    const spec = specFor(f, { volumes: [{ tag: "v0", hostPath: shared, fd, readOnly: true }] })
    await boot(spec)
    const { runDir, calls } = callsOf(spec.boxId)
    const create = calls.find((c) => c.kind === "api" && c.endpoint === "vm.create") as { body: { fs: unknown; memory: unknown } }
    expect(create.body.fs).toEqual([{ tag: "v0", socket: `${runDir}/fs0.sock`, num_queues: 1, queue_size: 1024 }])
    expect(create.body.memory).toEqual({ size: 512 * 1024 * 1024, shared: true })
    // virtiofsd was listening when vm.create came.
    expect(calls.find((c) => c.kind === "opened")).toMatchObject({ sockets: [true] })
    expect(processesMentioning(`${runDir}/fs0.sock`).length).toBeGreaterThan(0)
  })

  const passt = findPasst()
  it.skipIf(!passt || !hasVhostUser(passt.passt))("gives a network through passt's vhost-user back end, with port forwards", async () => {
    const hostPort = 40000 + (process.pid % 20000)
    const spec = specFor(files(), { network: { allowHostLoopback: false, ports: [{ protocol: "tcp", hostIp: "127.0.0.1", hostPort, guestPort: 80 }] } })
    const { close } = await boot(spec)
    const { runDir, calls } = callsOf(spec.boxId)
    const create = calls.find((c) => c.kind === "api" && c.endpoint === "vm.create") as { body: { net: unknown; memory: unknown } }
    expect(create.body.net).toEqual([{ vhost_user: true, vhost_socket: `${runDir}/net/passt.sock`, vhost_mode: "Client", num_queues: 2, queue_size: 256 }])
    // passt maps the guest's RAM like virtiofsd.
    expect(create.body.memory).toEqual({ size: 512 * 1024 * 1024, shared: true })
    expect(calls.find((c) => c.kind === "opened")).toMatchObject({ sockets: [true] })
    const passtPids = processesMentioning(`--vhost-user --one-off --socket ${runDir}/net/passt.sock`)
    expect(passtPids.length).toBeGreaterThan(0)
    // The forward is set up as under QEMU (passt, or pasta in front of the egress namespace).
    expect(processesMentioning(`127.0.0.1/${hostPort}:`).length).toBeGreaterThan(0)
    await close()
    expect(processesMentioning(`--vhost-user --one-off --socket ${runDir}/net/passt.sock`)).toEqual([])
    expectNothingLeft(spec.boxId)
  })

  it.skipIf(!passt || !hasVhostUser(passt.passt) || process.getuid?.() !== 0)("enforces the egress policy around passt: the box's rules are in passt's network namespace", async () => {
    const spec = specFor(files(), { network: { allowHostLoopback: false, ports: [], egress: { deny: ["203.0.113.0/24"] } } })
    await boot(spec)
    const { runDir } = callsOf(spec.boxId)
    const [pid] = processesMentioning(`--vhost-user --one-off --socket ${runDir}/net/passt.sock`).filter((p) => fs.readFileSync(`/proc/${p}/comm`, "utf8").startsWith("passt"))
    expect(pid).toBeDefined()
    const rules = execFileSync("nsenter", ["--target", pid!, "--net", "nft", "list", "ruleset"]).toString()
    expect(rules).toContain("ip daddr 203.0.113.0/24 drop")
  })

  it.skipIf(!fs.existsSync("/usr/bin/passt") || hasVhostUser("/usr/bin/passt"))("refuses a network with a passt that has no vhost-user, naming what to install", async () => {
    const saved = process.env["BOXLITE_PASST"]
    process.env["BOXLITE_PASST"] = "/usr/bin/passt"
    try {
      const spec = specFor(files(), { network: { allowHostLoopback: false, ports: [] } })
      const error = await failure(spec)
      expect(error).toBeInstanceOf(HypervisorUnavailable)
      expect((error as Error).message).toBe(
        `the kvm driver's network is passt's vhost-user back end (passt from late 2024 on); /usr/bin/passt has no --vhost-user: run scripts/build-passt.sh, or set BOXLITE_PASST to a current passt; without it use network "none"`
      )
      expectNothingLeft(spec.boxId)
    } finally {
      if (saved === undefined) delete process.env["BOXLITE_PASST"]
      else process.env["BOXLITE_PASST"] = saved
    }
  })

  it("kill() ends the VMM at once; SHUTDOWN through the agent lets it exit by itself", async () => {
    const killed = await boot(specFor(files()))
    killed.vm.kill()
    expect(await killed.vm.exited).toEqual({ code: null, signal: "SIGKILL" })
    const { vm } = await boot(specFor(files()))
    vm.agent.write(Buffer.from([0, 0, 0, 5, 15, 0, 0, 0, 0]))
    expect(await vm.exited).toEqual({ code: 0, signal: null })
  })

  it("a VMM that dies during boot is a BootError with the console tail, and leaves nothing", async () => {
    const spec = specFor(files(), { cmdline: "console=ttyS0 fake.mode=exit-on-boot" })
    const error = await failure(spec)
    expect(error).toBeInstanceOf(BootError)
    expect((error as BootError).message).toMatch(/cloud-hypervisor exited before the guest agent answered \(code 1\)/)
    expect((error as BootError).consoleTail).toContain("Kernel panic - not syncing: fake panic during boot")
    expectNothingLeft(spec.boxId)
  })

  it("an API refusal is a BootError quoting cloud-hypervisor", async () => {
    const spec = specFor(files(), { cmdline: "console=ttyS0 fake.mode=reject-create" })
    const error = await failure(spec)
    expect(error).toBeInstanceOf(BootError)
    expect((error as BootError).message).toContain("PUT vm.create: HTTP 400")
    expect((error as BootError).message).toContain("fake refusal")
    expectNothingLeft(spec.boxId)
  })

  it("a VM that is not Running after vm.boot is a BootError", async () => {
    const spec = specFor(files(), { cmdline: "console=ttyS0 fake.mode=stay-created" })
    const error = await failure(spec)
    expect(error).toBeInstanceOf(BootError)
    expect((error as BootError).message).toContain("the VM is Created after vm.boot")
    expectNothingLeft(spec.boxId)
  })

  it("a guest agent that never answers is a BootError after bootTimeoutMs", async () => {
    const spec = specFor(files(), { cmdline: "console=ttyS0 fake.mode=no-agent" })
    const error = await failure(spec, { bootTimeoutMs: 800 })
    expect(error).toBeInstanceOf(BootError)
    expect((error as BootError).message).toMatch(/did not answer on vsock port 1024/)
    expect((error as BootError).consoleTail).toContain("Linux version")
    expectNothingLeft(spec.boxId)
  })

  it("refuses, naming what to install, when cloud-hypervisor is missing", async () => {
    const spec = specFor(files())
    const error = await failure(spec, { binary: "/nonexistent/cloud-hypervisor" })
    expect(error).toBeInstanceOf(HypervisorUnavailable)
    expect((error as Error).message).toMatch(/\/nonexistent\/cloud-hypervisor not found.*github\.com\/cloud-hypervisor\/cloud-hypervisor\/releases.*BOXLITE_CLOUD_HYPERVISOR/)
    expectNothingLeft(spec.boxId)
  })

  it("refuses without usable KVM, saying why and pointing at the qemu driver", async () => {
    const spec = specFor(files())
    const error = await failure(spec, { kvm: async () => ({ usable: false, reason: "/dev/kvm is PVM (kvm_pvm)" }) })
    expect(error).toBeInstanceOf(HypervisorUnavailable)
    expect((error as Error).message).toBe(
      `the kvm driver needs usable KVM: /dev/kvm is PVM (kvm_pvm). The qemu driver runs boxes without it (TCG): new Boxlite({ driver: "qemu" })`
    )
    expectNothingLeft(spec.boxId)
  })

  it("reports KVM, vsock and the jail in info, and declares no snapshots", async () => {
    const info = await Effect.runPromise(driver().info)
    expect(info).toMatchObject({ driver: "kvm", accelerator: "kvm", transport: "vsock" })
    expect(info.confinement?.user).toMatch(/user namespace/)
    expect(CAPABILITIES).toEqual({ diskFormats: ["raw", "qcow2"], network: true, portForwards: true, egressPolicy: true, volumes: true, snapshots: false, agentTransport: "vsock" })
  })
})

describe("passt as a vhost-user back end", () => {
  it("listens on the socket instead of taking QEMU's socketpair", () => {
    const network = { allowHostLoopback: false, ports: [] }
    expect(passtArgs(network, "namespace", "/run/x/net/passt.sock").slice(0, 6)).toEqual(["--quiet", "--foreground", "--vhost-user", "--one-off", "--socket", "/run/x/net/passt.sock"])
    expect(passtArgs(network, "direct")).toContain("--fd")
    expect(passtArgs(network, "direct", "/s")).not.toContain("--fd")
  })
})

describe("kernelCmdline", () => {
  it("adds the serial console (unless one is given), vsock and virtio-pci", () => {
    expect(kernelCmdline("quiet")).toBe("quiet console=ttyS0 boxlite.vsock=1024 boxlite.virtio=pci")
    expect(kernelCmdline("console=hvc0 quiet")).toBe("console=hvc0 quiet boxlite.vsock=1024 boxlite.virtio=pci")
    expect(kernelCmdline("quiet")).toBe("quiet console=ttyS0 boxlite.vsock=1024 boxlite.virtio=pci")
  })
})

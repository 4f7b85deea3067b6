/**
 * The QEMU driver: boots a box as a `microvm` (x86_64) or `virt` (aarch64) machine with direct
 * kernel boot, its disk on virtio-blk and the agent channel on a virtio-serial port.
 */
import { BootError, Hypervisor, HypervisorUnavailable, type Vm, type VmExit, type VmSpec } from "@boxlite/core"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { Writable } from "node:stream"
import { type AcceleratorChoice, chooseAccelerator, probeHost } from "./Accelerator.js"
import { hostTscKhz } from "./internal/cmdline.js"
import {
  type Helper,
  PASST_FD,
  probeVirtiofsdUser,
  startHelper,
  stopHelper,
  VIRTIOFSD,
  VIRTIOFSD_FD,
  VIRTIOFSD_PID_DIR,
  virtiofsdArgv,
  type VirtiofsdUser,
  waitForSocket
} from "./internal/helpers.js"
import { findPasst, hasExplicitPolicy, type NetworkPlan, probeNamespace, startNetwork, type StartedNetwork } from "./internal/network.js"
import { virtiofsdFilter } from "./internal/seccomp.js"

export interface QemuDriverOptions {
  /** The qemu-system binary; default `qemu-system-x86_64` or `qemu-system-aarch64` from PATH. */
  readonly binary?: string
  /** How long QEMU may take to connect to the agent socket. Default 10 s. */
  readonly connectTimeoutMs?: number
}

const MACHINE: Record<string, { binary: string; machine: string; install: string }> = {
  x64: { binary: "qemu-system-x86_64", machine: "microvm,x-option-roms=off", install: "apt-get install qemu-system-x86 qemu-utils" },
  arm64: { binary: "qemu-system-aarch64", machine: "virt", install: "apt-get install qemu-system-arm qemu-utils" }
}

const findOnPath = (name: string): string | undefined => {
  if (name.includes("/")) return fs.existsSync(name) ? name : undefined
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {
      continue
    }
  }
  return undefined
}

/** Where a VM's sockets live while it runs. */
export interface VmSockets {
  readonly agent: string
  readonly console: string
  /** The descriptor QEMU inherits its end of passt's socketpair on, when the VM has a network. */
  readonly network: number | undefined
  /** One virtiofsd socket per volume, in spec.volumes order. */
  readonly volumes: ReadonlyArray<string>
}

export const qemuArgs = (spec: VmSpec, machine: string, accel: AcceleratorChoice, sockets: VmSockets): Array<string> => {
  const tsc = accel.accelerator === "tcg" && machine.startsWith("microvm") ? hostTscKhz() : undefined
  const cmdline = [spec.cmdline, tsc ? `tsc_early_khz=${tsc}` : ""].filter(Boolean).join(" ")
  // vhost-user devices need guest RAM the daemon can map, and modern virtio-mmio: only then.
  const shared = spec.volumes.length > 0
  return [
    "-M", shared ? `${machine},memory-backend=mem` : machine,
    "-accel", accel.accelerator,
    ...(accel.accelerator === "tcg" ? [] : ["-cpu", "host"]),
    "-m", `${spec.memoryMib}M`,
    ...(shared ? ["-object", `memory-backend-memfd,id=mem,size=${spec.memoryMib}M,share=on`, "-global", "virtio-mmio.force-legacy=false"] : []),
    "-smp", String(spec.cpus),
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    "-chardev", `file,id=con0,path=${sockets.console}`, "-serial", "chardev:con0",
    "-kernel", spec.kernel, "-initrd", spec.initrd, "-append", cmdline,
    "-drive", `file=${spec.rootDisk},if=none,id=root,format=qcow2,discard=unmap`,
    "-device", "virtio-blk-device,drive=root",
    "-device", "virtio-serial-device",
    "-chardev", `socket,id=agent,path=${sockets.agent},server=off`,
    "-device", "virtserialport,chardev=agent,name=boxlite.agent",
    ...(sockets.network
      ? ["-netdev", `stream,id=n0,server=off,addr.type=fd,addr.str=${sockets.network}`, "-device", "virtio-net-device,netdev=n0"]
      : []),
    ...spec.volumes.flatMap((volume, i) => [
      "-chardev", `socket,id=vfs${i},path=${sockets.volumes[i]}`,
      "-device", `vhost-user-fs-device,chardev=vfs${i},tag=${volume.tag}`
    ])
  ]
}

export const make = (options: QemuDriverOptions = {}): Hypervisor["Service"] => {
  const host = MACHINE[process.arch]
  let choice: AcceleratorChoice | undefined
  const accelerator = Effect.suspend(() => {
    if (choice) return Effect.succeed(choice)
    try {
      choice = chooseAccelerator(probeHost())
    } catch (e) {
      return Effect.fail(new HypervisorUnavailable((e as Error).message))
    }
    const chosen = choice
    return Effect.as(chosen.accelerator === "tcg" ? Effect.logWarning(`boxlite: using QEMU TCG: ${chosen.reason}`) : Effect.logInfo(`boxlite: using QEMU ${chosen.accelerator}`), chosen)
  })
  let probedUser: VirtiofsdUser | undefined
  const virtiofsdUser = Effect.suspend(() => {
    if (probedUser) return Effect.succeed(probedUser)
    try {
      const choice = probeVirtiofsdUser(process.getuid?.() === 0)
      probedUser = choice.user
      return Effect.as(choice.warning ? Effect.logWarning(`boxlite: ${choice.warning}`) : Effect.void, choice.user)
    } catch (e) {
      return Effect.fail(new HypervisorUnavailable((e as Error).message))
    }
  })
  // Probed once: which passt, and whether it can run behind the egress policy; each
  // shortcoming is logged once, the first time a box wants a network.
  let plan: NetworkPlan | undefined
  const networkPlan = Effect.suspend(() => {
    if (plan) return Effect.succeed(plan)
    const build = findPasst()
    if (!build) return Effect.fail(new HypervisorUnavailable("networking needs passt; on Debian/Ubuntu: apt-get install passt (or scripts/build-passt.sh for a current one)"))
    const isRoot = process.getuid?.() === 0
    const support = probeNamespace(build, isRoot)
    const chosen: NetworkPlan = { build, namespace: support.ok ? support : undefined, isRoot, reason: support.reason }
    plan = chosen
    return Effect.as(Effect.all([
      build.current ? Effect.void : Effect.logWarning(`boxlite: ${build.passt} is passt from before 2024: a guest server that speaks first (SMTP, MySQL, VNC, FTP) waits for the client's first byte through a port forward, and UDP forwards are refused; scripts/build-passt.sh builds a current one (or set BOXLITE_PASST)`),
      support.ok ? Effect.void : Effect.logWarning(`boxlite: the egress policy cannot be enforced: ${support.reason}. Boxes with network allow/deny rules are refused; other boxes reach every address passt can, the host's own included`)
    ]), chosen)
  })
  const binary = Effect.suspend(() => {
    if (!host) return Effect.fail(new HypervisorUnavailable(`the QEMU driver does not support ${process.arch} hosts`))
    const found = findOnPath(options.binary ?? host.binary)
    return found ? Effect.succeed(found) : Effect.fail(new HypervisorUnavailable(`QEMU (${options.binary ?? host.binary}) is not installed or not on PATH; on Debian/Ubuntu: ${host.install}`))
  })

  const start = (spec: VmSpec) =>
    Effect.gen(function*() {
      const qemu = yield* binary
      const accel = yield* accelerator
      if (spec.volumes.length > 0 && !fs.existsSync(VIRTIOFSD)) {
        return yield* new HypervisorUnavailable(`volumes need ${VIRTIOFSD}; on Debian/Ubuntu: ${host!.install}`)
      }
      if (spec.volumes.length > 0 && !findOnPath("bwrap")) {
        return yield* new HypervisorUnavailable("volumes need bwrap (virtiofsd's sandbox); on Debian/Ubuntu: apt-get install bubblewrap")
      }
      const daemonUser = spec.volumes.length > 0 ? yield* virtiofsdUser : undefined
      const netPlan = spec.network ? yield* networkPlan : undefined
      if (spec.network && netPlan && !netPlan.namespace && hasExplicitPolicy(spec.network)) {
        return yield* new HypervisorUnavailable(`network allow/deny rules cannot be enforced on this host: ${netPlan.reason}`)
      }
      if (spec.network && netPlan && !netPlan.build.current && spec.network.ports.some((p) => p.protocol === "udp")) {
        return yield* new HypervisorUnavailable(`UDP port forwards need passt from 2024 on (${netPlan.build.passt} loses the replies): run scripts/build-passt.sh or set BOXLITE_PASST`)
      }
      // Short paths: unix socket names are limited to 108 bytes, wherever the home is.
      const runDir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), `boxlite-${spec.boxId.slice(-8)}-`))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const setpriv = process.platform === "linux" ? findOnPath("setpriv") : undefined
      const helpers: Array<Helper> = []
      yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all(helpers.map(stopHelper))))
      const sockets: VmSockets = {
        agent: path.join(runDir, "agent.sock"),
        console: path.join(spec.dir, "console.log"),
        network: spec.network ? PASST_FD : undefined,
        volumes: spec.volumes.map((_, i) => path.join(runDir, `fs${i}.sock`))
      }
      yield* Effect.tryPromise({
        try: async () => {
          const pidDir = fs.existsSync(VIRTIOFSD_PID_DIR) ? fs.realpathSync(VIRTIOFSD_PID_DIR) : undefined
          const filter = virtiofsdFilter()
          const daemons = spec.volumes.map((volume, i) => {
            const stage = path.join(runDir, `fs${i}.d`)
            fs.mkdirSync(stage)
            const argv = virtiofsdArgv(sockets.volumes[i]!, volume, daemonUser!, stage, pidDir)
            // Descriptors VIRTIOFSD_FD.seccomp (a pipe we write the program to) and .source.
            const daemon = startHelper(`virtiofsd for ${volume.hostPath}`, argv, setpriv, ["pipe", volume.fd])
            ;(daemon.process.stdio[VIRTIOFSD_FD.seccomp] as Writable | null)?.end(filter)
            helpers.push(daemon)
            return waitForSocket(daemon, sockets.volumes[i]!, 10_000)
          })
          await Promise.all(daemons)
        },
        catch: (e) => new BootError(`box ${spec.boxId} cannot start: ${(e as Error).message}`, "")
      })
      const network = spec.network && (yield* Effect.tryPromise({
        try: () => startNetwork(spec.network!, netPlan!, helpers),
        catch: (e) => new BootError(`box ${spec.boxId} cannot start its network: ${(e as Error).message}`, "")
      }))
      const vm = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => launch(qemu, qemuArgs(spec, host!.machine, accel, sockets), sockets, network, options.connectTimeoutMs ?? 10_000),
          catch: (e) => e as BootError
        }),
        (vm) => Effect.promise(async () => {
          vm.kill()
          await vm.exited
        })
      )
      // The VM's helpers are useless without it: when it ends, so do they.
      void vm.exited.then(() => helpers.forEach((h) => void stopHelper(h)))
      return vm
    })

  return Hypervisor.of({
    info: Effect.map(Effect.andThen(binary, accelerator), (a) => ({ driver: "qemu", accelerator: a.accelerator, reason: a.reason })),
    start
  })
}

const tail = (file: string, bytes: number): string => {
  try {
    const fd = fs.openSync(file, "r")
    try {
      const size = fs.fstatSync(fd).size
      const buffer = Buffer.alloc(Math.min(bytes, size))
      fs.readSync(fd, buffer, 0, buffer.length, size - buffer.length)
      return buffer.toString("utf8")
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return ""
  }
}

/** passt or pasta says why it stopped (e.g. a port it cannot bind) among notices that are no error. */
const complaint = (helper: Helper): string =>
  helper.stderr().split("\n").filter((line) => !/^Failed to send \d+ bytes to syslog$|^Don't run as root|^Started as root/.test(line)).join("\n").trim()

/**
 * Listens on the agent socket, starts QEMU (which connects to it, and gets its end of passt's
 * socketpair when the VM has a network), resolves once it has.
 */
const launch = (
  qemu: string,
  args: Array<string>,
  sockets: VmSockets,
  network: StartedNetwork | undefined,
  connectTimeoutMs: number
): Promise<Vm> =>
  new Promise((resolve, reject) => {
    const socket = sockets.agent
    const consoleLog = sockets.console
    fs.rmSync(socket, { force: true })
    const server = net.createServer()
    server.on("error", (e) => fail(`cannot listen on ${socket}: ${e.message}`))
    let stderr = ""
    let settled = false
    let child: ReturnType<typeof spawn> | undefined
    const timer = setTimeout(() => fail(`QEMU did not connect to the agent socket within ${connectTimeoutMs} ms`), connectTimeoutMs)
    const fail = (problem: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      server.close()
      child?.kill("SIGKILL")
      fs.rmSync(socket, { force: true })
      reject(new BootError(`${problem}${stderr ? `: ${stderr.trim()}` : ""}`, tail(consoleLog, 4096)))
    }
    server.listen(socket, () => {
      // setpriv makes the kernel kill QEMU if this process dies, even by SIGKILL.
      const setpriv = process.platform === "linux" ? findOnPath("setpriv") : undefined
      const [file, argv] = setpriv ? [setpriv, ["--pdeathsig", "KILL", "--", qemu, ...args]] : [qemu, args]
      const tap = network?.fdForQemu
      const proc = spawn(file, argv, { stdio: ["ignore", "ignore", "pipe", ...(tap ? [tap] : [])] })
      // passt and QEMU now hold the two ends; this process's copy goes in the same tick, before
      // it could read a frame meant for QEMU, and so that only QEMU keeps passt alive.
      tap?.destroy()
      for (const helper of network?.helpers ?? []) {
        helper.process.once("exit", () => fail(`the network (${helper.name}) stopped while the VM was booting: ${complaint(helper) || `code ${helper.process.exitCode}`}`))
      }
      child = proc
      proc.stderr?.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4096)
      })
      const exited = new Promise<VmExit>((done) => proc.on("exit", (code, signal) => done({ code, signal })))
      proc.on("error", (e) => fail(`cannot start ${qemu}: ${e.message}`))
      void exited.then((exit) => fail(`QEMU exited before the guest started (${exit.signal ?? `code ${exit.code}`})`))
      server.once("connection", (agent) => {
        if (settled) return agent.destroy()
        settled = true
        clearTimeout(timer)
        // One agent connection per VM: stop listening and drop the socket file.
        server.close()
        fs.rmSync(socket, { force: true })
        resolve({
          pid: proc.pid ?? -1,
          agent,
          exited,
          consoleTail: async (bytes = 4096) => tail(consoleLog, bytes),
          kill: () => {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL")
          }
        })
      })
    })
  })

/** The QEMU Hypervisor, accelerator chosen by probing (BOXLITE_ACCEL=kvm|tcg overrides). */
export const layer = (options?: QemuDriverOptions): Layer.Layer<Hypervisor> => Layer.succeed(Hypervisor, make(options))

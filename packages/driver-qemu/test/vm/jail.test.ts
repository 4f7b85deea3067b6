/**
 * The VMM jail and the console cap, attacked as issue 9 found them: QEMU ran as root with every
 * capability, no seccomp, in the host's namespaces and file system; a guest flooding its
 * console filled the host's disk. Each test looks at the running QEMU from the host
 * (/proc/<pid>/...) or floods from inside the guest (root there).
 */
import type { VmSpec } from "@boxlite/driver"
import { make, tcgCacheMib, vmLimits, VMM_OVERHEAD_MIB } from "@boxlite/driver-qemu"
import { Effect, Exit, Scope } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Agent, connectAgent, specMaker } from "./guest.js"

const driver = make()
let maker: Awaited<ReturnType<typeof specMaker>>
beforeAll(async () => {
  maker = await specMaker()
})
afterAll(() => maker.cleanup())

const boot = async (spec: VmSpec) => {
  const scope = Scope.makeUnsafe()
  const vm = await Effect.runPromise(Scope.provide(driver.start(spec), scope))
  const agent: Agent = await connectAgent(vm.agent)
  return { vm, agent, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const status = (pid: number) => fs.readFileSync(`/proc/${pid}/status`, "utf8")
const field = (text: string, name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(text)?.[1]?.trim()

/** A file of the cgroup `pid` is in for `controller` (cgroup v2 when the host has it, else v1). */
const cgroupFile = (pid: number, controller: string, v2File: string, v1File: string): string => {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").map((l) => l.split(":"))
  if (fs.existsSync("/sys/fs/cgroup/cgroup.controllers")) return path.join("/sys/fs/cgroup", lines.find((f) => f[0] === "0")![2]!, v2File)
  const own = lines.find((f) => f[1]?.split(",").includes(controller))![2]!
  return path.join("/sys/fs/cgroup", controller, own, v1File)
}
/** The caller (core) hands the driver an O_PATH descriptor of each volume source. */
const O_PATH = 0o10000000
const readNumber = (file: string) => Number(fs.readFileSync(file, "utf8").trim())

describe("the VMM jail", () => {
  it("qemu-unconfined: the VMM has no capabilities, NoNewPrivs 1, Seccomp 2, a uid of its own, its own namespaces, rlimits, and sees no host file outside its own", async () => {
    const shared = fs.mkdtempSync(path.join(maker.home, "share-"))
    const spec = await maker.spec({ network: { allowHostLoopback: false, ports: [] }, volumes: [{ tag: "v0", hostPath: shared, fd: fs.openSync(shared, O_PATH), readOnly: false }] })
    const box = await boot(spec)
    const pid = box.vm.pid
    let cgroupDir = ""
    try {
      expect(fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim()).toMatch(/^qemu-system/)
      const s = status(pid)
      for (const caps of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) expect(field(s, caps), caps).toBe("0000000000000000")
      expect(field(s, "NoNewPrivs")).toBe("1")
      expect(field(s, "Seccomp")).toBe("2")
      const uids = field(s, "Uid")!.split(/\s+/).map(Number)
      const gids = field(s, "Gid")!.split(/\s+/).map(Number)
      for (const id of [...uids, ...gids]) {
        expect(id).not.toBe(0)
        expect(id).not.toBe(process.getuid!())
        expect(id).toBeGreaterThanOrEqual(0x70000000)
        expect(id).toBeLessThan(0x71000000)
      }
      expect(field(s, "Groups")).toBe("")

      for (const ns of ["pid", "net", "mnt", "user", "ipc", "uts", "cgroup"]) {
        expect(fs.readlinkSync(`/proc/${pid}/ns/${ns}`), ns).not.toBe(fs.readlinkSync(`/proc/self/ns/${ns}`))
      }
      // Its own network namespace has nothing but a loopback that is down: the NIC is passt's socketpair.
      const netns = spawnSync("nsenter", ["--net=/proc/" + pid + "/ns/net", "ip", "-o", "link"]).stdout.toString()
      expect(netns.trim().split("\n").map((l) => l.split(":")[1]!.trim())).toEqual(["lo"])

      // Its root: /usr (read-only), the top-level symlinks into it, a private /proc and a minimal /dev.
      const root = fs.readdirSync(`/proc/${pid}/root`).sort()
      expect(root.filter((e) => !["bin", "lib", "lib32", "lib64", "libx32", "sbin"].includes(e))).toEqual(["dev", "proc", "usr"])
      for (const hostPath of [spec.dir, spec.rootDisk, spec.rootDiskBase!, maker.home, shared, "/etc/shadow", "/root", "/home", "/tmp", "/work", "/var", "/sys"]) {
        expect(fs.existsSync(path.join(`/proc/${pid}/root`, hostPath)), hostPath).toBe(false)
      }
      const mounts = fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8").trim().split("\n").map((l) => l.split(" "))
      for (const m of mounts) expect(m[4], m.join(" ")).toMatch(/^\/$|^\/usr$|^\/proc$|^\/dev(\/|$)/)
      expect(mounts.find((m) => m[4] === "/usr")![5]).toMatch(/(^|,)ro(,|$)/)
      // Its /proc is its pid namespace's: QEMU is process 1 there, alone.
      expect(fs.readdirSync(`/proc/${pid}/root/proc`).filter((e) => /^\d+$/.test(e))).toEqual(["1"])

      // What it holds open is what the driver gave it: the box's disk and base, the kernel and
      // initrd, and (O_PATH) the driver's socket that saved state goes to, in the VM's run folder.
      const files = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`)).filter((t) => t.startsWith("/"))
      const given = [spec.rootDisk, spec.rootDiskBase!, spec.kernel, spec.initrd].map((f) => fs.realpathSync(f))
      const stateSocket = new RegExp(`^${os.tmpdir()}/boxlite-${spec.boxId.slice(-8)}-[^/]+/state\\.sock$`)
      expect(files.filter((f) => !given.includes(f) && !stateSocket.test(f) && !/^\/dev\/(null|urandom|pts\/|ptmx)|^\/memfd:|^\/proc\//.test(f))).toEqual([])
      expect(files.filter((f) => stateSocket.test(f))).toHaveLength(1)

      const limits = fs.readFileSync(`/proc/${pid}/limits`, "utf8")
      expect(limits).toMatch(/^Max core file size\s+0\s+0\s/m)
      expect(limits).toMatch(/^Max open files\s+1024\s+1024\s/m)
      expect(limits).toMatch(new RegExp(`^Max processes\\s+${vmLimits(spec, { accelerator: "tcg", reason: "" }).pids}\\s+`, "m"))

      // And the VM works through all of it: disk, volume, network device.
      expect(await box.agent.configure({ mounts: [{ tag: "v0", path: "/mnt/v0", readOnly: false }] })).toMatchObject({ ok: true })
      expect((await box.agent.sh("echo from-guest > /mnt/v0/f && ls /sys/class/net && echo disk > /root-disk && sync && cat /root-disk")).output).toMatch(/eth0[\s\S]*disk/)
      expect(fs.readFileSync(path.join(shared, "f"), "utf8")).toBe("from-guest\n")
      cgroupDir = path.dirname(cgroupFile(pid, "pids", "pids.max", "pids.max"))
      expect(path.basename(cgroupDir)).toBe(spec.boxId)
    } finally {
      await box.close()
      fs.closeSync(spec.volumes[0]!.fd)
    }
    // The VM's cgroup goes with it.
    expect(fs.existsSync(cgroupDir)).toBe(false)
  })

  it("memory: the VMM's cgroup memory.max is set and a box's QEMU, its guest filling its RAM, stays within it", async () => {
    const spec = await maker.spec({ memoryMib: 256 })
    const box = await boot(spec)
    try {
      const pid = box.vm.pid
      const max = cgroupFile(pid, "memory", "memory.max", "memory.limit_in_bytes")
      const expected = (256 + tcgCacheMib(256) + VMM_OVERHEAD_MIB) * 1024 * 1024
      expect(readNumber(max)).toBe(expected)
      // The guest touches (almost) all its RAM: a tmpfs filled with random data.
      const fill = await box.agent.sh("mkdir -p /fill && mount -t tmpfs -o size=90% tmpfs /fill && head -c 160000000 /dev/urandom > /fill/x; echo exit=$?; free -m")
      expect(fill.output).toContain("exit=0")
      const peak = readNumber(cgroupFile(pid, "memory", "memory.peak", "memory.max_usage_in_bytes"))
      console.log(`VMM peak ${Math.round(peak / 1048576)} MiB, limit ${expected / 1048576} MiB (guest 256 + TCG cache ${tcgCacheMib(256)} + overhead ${VMM_OVERHEAD_MIB})`)
      // The guest's RAM is counted there (QEMU is in the cgroup), and the VMM lives within the limit.
      expect(peak).toBeGreaterThan(160_000_000)
      expect(peak).toBeLessThanOrEqual(expected)
      expect((await box.agent.sh("echo alive")).output).toBe("alive\n")
      expect(status(pid)).toMatch(/^State:\s+[RS]/m)
    } finally {
      await box.close()
    }
  })

  it("pids: the VMM's cgroup pids.max is set and its threads, under a disk write storm, stay below it", async () => {
    const spec = await maker.spec({ cpus: 2 })
    const box = await boot(spec)
    try {
      const pid = box.vm.pid
      const max = readNumber(cgroupFile(pid, "pids", "pids.max", "pids.max"))
      expect(max).toBe(vmLimits(spec, { accelerator: "tcg", reason: "" }).pids)
      // Parallel writers: QEMU's block layer starts I/O worker threads.
      await box.agent.sh("for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=/w$i bs=64k count=400 conv=fsync 2>/dev/null & done; wait")
      const current = readNumber(cgroupFile(pid, "pids", "pids.current", "pids.current"))
      console.log(`VMM tasks: ${current} (pids.max ${max}), QEMU threads ${field(status(pid), "Threads")}`)
      expect(current).toBeGreaterThan(2)
      expect(current).toBeLessThan(max)
    } finally {
      await box.close()
    }
  })
})

describe("the VMM's lifetime", () => {
  it("orphaned VMM: QEMU dies when the process that started it is SIGKILLed", async () => {
    const spec = await maker.spec({})
    const driverModule = fileURLToPath(new URL("../../dist/index.js", import.meta.url))
    const script = `
      import { make } from ${JSON.stringify(driverModule)}
      import { Effect, Scope } from "effect"
      const vm = await Effect.runPromise(Scope.provide(make().start(JSON.parse(process.argv[1])), Scope.makeUnsafe()))
      console.log("vmm-pid=" + vm.pid)
      setInterval(() => undefined, 1000)
    `
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, JSON.stringify(spec)], { cwd: fileURLToPath(new URL(".", import.meta.url)), stdio: ["ignore", "pipe", "inherit"] })
    // (stdout also has the driver's log lines)
    let out = ""
    const pid = await new Promise<number>((resolve) =>
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString()
        const found = /^vmm-pid=(\d+)$/m.exec(out)?.[1]
        if (found) resolve(Number(found))
      }))
    expect(fs.readFileSync(`/proc/${pid}/comm`, "utf8")).toMatch(/^qemu-system/)
    const cgroups = [...new Set(["memory", "pids", "cpu"].map((c) => path.dirname(cgroupFile(pid, c, "x", "x"))))].filter((d) => d.endsWith(spec.boxId))
    child.kill("SIGKILL")
    const deadline = Date.now() + 20_000
    while (fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(status(pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect(fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(status(pid))).toBe(false)
    // A killed runtime cannot remove the VM's cgroup (the box's next start would take it back).
    for (const dir of cgroups) {
      for (let i = 0; i < 50 && fs.existsSync(dir); i++) {
        try {
          fs.rmdirSync(dir)
        } catch {
          await new Promise((r) => setTimeout(r, 100))
        }
      }
    }
  })
})

describe("the guest console", () => {
  it("console flood: a guest writing to ttyS0 and /dev/console for 8 s leaves console.log + console.log.1 under the cap, and the tail in memory", async () => {
    const cap = 64 * 1024
    const spec = await maker.spec({ consoleLogMaxBytes: cap })
    const box = await boot(spec)
    try {
      await box.agent.sh("(timeout 8 sh -c 'while :; do echo ttyS0-flood-0123456789abcdefghijklmnopqrstuvwxyz; done > /dev/ttyS0' &); timeout 8 sh -c 'while :; do echo console-flood-0123456789; done > /dev/console'; sleep 1; echo last-line-of-the-flood > /dev/ttyS0")
      expect((await box.agent.sh("echo still-answering")).output).toBe("still-answering\n")
      const log = path.join(spec.dir, "console.log")
      const sizes = [fs.statSync(log).size, fs.statSync(`${log}.1`).size]
      console.log(`console.log ${sizes[0]} bytes, console.log.1 ${sizes[1]} bytes, cap ${cap}`)
      expect(sizes[0]).toBeLessThanOrEqual(cap)
      expect(sizes[1]).toBe(cap)
      expect(fs.readdirSync(spec.dir).filter((f) => f.startsWith("console"))).toEqual(["console.log", "console.log.1"])
      expect(fs.readFileSync(`${log}.1`, "utf8")).toMatch(/flood/)
      const tail = await box.vm.consoleTail(64 * 1024)
      expect(tail.length).toBeGreaterThan(60 * 1024)
      expect(tail).toMatch(/last-line-of-the-flood\r?\n$/)
    } finally {
      await box.close()
    }
  })
})

describe("a runtime that is not root", () => {
  it("qemu-unconfined, rootless: QEMU keeps the user's uid in its own namespaces, with no capabilities and seccomp; no cgroup is one logged reason", async () => {
    const nobody = 65534
    const rootless = await specMaker()
    try {
      const spec = await rootless.spec({ network: { allowHostLoopback: false, ports: [] } })
      spawnSync("chown", ["-R", `${nobody}:${nobody}`, rootless.home])
      const driverModule = fileURLToPath(new URL("../../dist/index.js", import.meta.url))
      const script = `
        import { make } from ${JSON.stringify(driverModule)}
        import { Effect, Exit, Scope } from "effect"
        import * as fs from "node:fs"
        const spec = JSON.parse(process.argv[1])
        const scope = Scope.makeUnsafe()
        const vm = await Effect.runPromise(Scope.provide(make().start(spec), scope))
        const ns = (pid) => Object.fromEntries(["pid", "net", "mnt", "user"].map((n) => [n, fs.readlinkSync("/proc/" + pid + "/ns/" + n)]))
        const report = { status: fs.readFileSync("/proc/" + vm.pid + "/status", "utf8"), qemu: ns(vm.pid), self: ns("self"), limits: fs.readFileSync("/proc/" + vm.pid + "/limits", "utf8") }
        for (let i = 0; i < 600 && !(await vm.consoleTail()).includes("boxlite-agent: ready"); i++) await new Promise((r) => setTimeout(r, 100))
        report.console = await vm.consoleTail()
        await Effect.runPromise(Scope.close(scope, Exit.void))
        console.log(JSON.stringify(report))
      `
      const run = spawnSync("setpriv", ["--reuid", String(nobody), "--regid", String(nobody), "--clear-groups", "--", process.execPath, "--input-type=module", "-e", script, JSON.stringify(spec)], {
        cwd: fileURLToPath(new URL(".", import.meta.url)), timeout: 120_000
      })
      const stderr = run.stderr.toString()
      const stdout = run.stdout.toString()
      expect(run.status, stderr).toBe(0)
      const report = JSON.parse(stdout.trim().split("\n").pop()!) as { status: string; qemu: Record<string, string>; self: Record<string, string>; limits: string; console: string }
      expect(field(report.status, "Uid")).toBe(`${nobody}\t${nobody}\t${nobody}\t${nobody}`)
      for (const caps of ["CapPrm", "CapEff", "CapBnd", "CapAmb"]) expect(field(report.status, caps)).toBe("0000000000000000")
      expect(field(report.status, "NoNewPrivs")).toBe("1")
      expect(field(report.status, "Seccomp")).toBe("2")
      for (const ns of ["pid", "net", "mnt", "user"]) expect(report.qemu[ns]).not.toBe(report.self[ns])
      expect(report.limits).toMatch(/^Max core file size\s+0\s+0\s/m)
      expect(report.console).toContain("boxlite-agent: ready")
      // This host does not delegate cgroups to nobody: said once, as a warning.
      expect((stdout + stderr).match(/without memory, task and CPU-weight limits/g)).toHaveLength(1)
    } finally {
      rootless.cleanup()
    }
  })
})

/**
 * One cgroup per VM, so a VMM cannot take more than its share of the host: memory, tasks and
 * CPU weight. cgroup v2 where this process may create cgroups beside its own (root, or a
 * systemd-delegated subtree such as a user's `user@UID.service`), or the v1 `memory`, `pids`
 * and `cpu` hierarchies mounted under the same root (hybrid hosts, as root). Each VM's cgroup
 * sits in a `boxlite` parent and is removed when the VM ends. No usable hierarchy: a reason
 * instead, which the driver logs once.
 */
import * as fs from "node:fs"
import * as path from "node:path"

export interface CgroupLimits {
  readonly memoryBytes: number
  /** Tasks (threads) of every process in the cgroup. */
  readonly pids: number
  /** Relative CPU share, on cgroup v2's scale (1-10000, 100 is the default); v1 gets cpu.shares = weight x 1024 / 100. */
  readonly cpuWeight: number
}

export interface BoxCgroup {
  /** The cgroup.procs files a process writes its pid to, to join (one per v1 hierarchy). */
  readonly procs: ReadonlyArray<string>
  /** Removes the cgroup once its processes are gone. */
  readonly remove: () => Promise<void>
}

export interface Cgroups {
  readonly version: "v2" | "v1"
  /** Creates (or takes back, after a crash) the cgroup `name` with `limits`; throws what the file system throws. */
  readonly create: (name: string, limits: CgroupLimits) => BoxCgroup
}

const PARENT = "boxlite"

const read = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return undefined
  }
}

const writable = (dir: string): boolean => {
  try {
    fs.accessSync(dir, fs.constants.W_OK)
    return true
  } catch {
    return false
  }
}

/** rmdir, retried for up to 5 s while the kernel still counts a dying task (EBUSY). */
const removeDir = async (dir: string): Promise<void> => {
  for (let attempt = 0; ; attempt++) {
    try {
      fs.rmdirSync(dir)
      return
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === "ENOENT") return
      if (code !== "EBUSY" || attempt >= 100) throw e
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

/**
 * cgroup v2: the parent is the cgroup that holds this process's own (its own cannot have
 * children with controllers while it has processes), or the root if this process is at the
 * root; it must be writable and offer memory and pids.
 */
const probeV2 = (root: string, self: string): Cgroups | string => {
  const own = /^0::(\/.*)$/m.exec(self)?.[1]
  if (own === undefined) return "this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)"
  const parent = path.join(root, own === "/" ? "/" : path.dirname(own))
  const controllers = (read(path.join(parent, "cgroup.controllers")) ?? "").split(/\s+/)
  if (!controllers.includes("memory") || !controllers.includes("pids")) {
    return `cgroup v2 ${parent} does not offer the memory and pids controllers (it offers: ${controllers.join(" ").trim() || "none"})`
  }
  if (!writable(parent)) return `cgroup v2 ${parent} is not writable by this user (no delegation: see the driver's README)`
  const wanted = ["memory", "pids", ...(controllers.includes("cpu") ? ["cpu"] : [])]
  const enable = (dir: string) => {
    const enabled = (read(path.join(dir, "cgroup.subtree_control")) ?? "").split(/\s+/)
    const missing = wanted.filter((c) => !enabled.includes(c))
    if (missing.length > 0) fs.writeFileSync(path.join(dir, "cgroup.subtree_control"), missing.map((c) => `+${c}`).join(" "))
  }
  try {
    enable(parent)
  } catch (e) {
    return `cannot enable ${wanted.join(", ")} in ${parent}/cgroup.subtree_control: ${(e as Error).message}`
  }
  return {
    version: "v2",
    create: (name, limits) => {
      const boxes = path.join(parent, PARENT)
      fs.mkdirSync(boxes, { recursive: true })
      enable(boxes)
      const dir = path.join(boxes, name)
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, "memory.max"), String(limits.memoryBytes))
      // Out of memory, the whole VM goes (QEMU and its bwrap), not some thread of it.
      fs.writeFileSync(path.join(dir, "memory.oom.group"), "1")
      fs.writeFileSync(path.join(dir, "pids.max"), String(limits.pids))
      if (wanted.includes("cpu")) fs.writeFileSync(path.join(dir, "cpu.weight"), String(limits.cpuWeight))
      return { procs: [path.join(dir, "cgroup.procs")], remove: () => removeDir(dir) }
    }
  }
}

/**
 * cgroup v1: a `boxlite` cgroup inside this process's own in each hierarchy (v1 lets a cgroup
 * with processes have children), so whatever limits the runtime's cgroup still covers its VMs.
 */
const probeV1 = (root: string, self: string): Cgroups | string => {
  const ownIn = (controller: string) =>
    self.split("\n").map((line) => line.split(":")).find((f) => f.length >= 3 && f[1]!.split(",").includes(controller))?.slice(2).join(":")
  const hierarchy = (controller: string) => {
    const own = ownIn(controller)
    const mount = path.join(root, controller)
    return own !== undefined && fs.existsSync(path.join(mount, "cgroup.procs")) ? path.join(mount, own) : undefined
  }
  const [memory, pids, cpu] = [hierarchy("memory"), hierarchy("pids"), hierarchy("cpu")]
  if (!memory || !pids) return `no cgroup v2 at ${root}, and no cgroup v1 memory and pids hierarchies under it`
  const unwritable = [memory, pids, ...(cpu ? [cpu] : [])].filter((dir) => !writable(dir))
  if (unwritable.length > 0) return `cgroup v1 ${unwritable.join(", ")} not writable by this user`
  return {
    version: "v1",
    create: (name, limits) => {
      const settings: Array<[string | undefined, string, number]> = [
        [memory, "memory.limit_in_bytes", limits.memoryBytes],
        [pids, "pids.max", limits.pids],
        [cpu, "cpu.shares", Math.max(2, Math.round((limits.cpuWeight * 1024) / 100))]
      ]
      const dirs: Array<string> = []
      for (const [own, file, value] of settings) {
        if (!own) continue
        const dir = path.join(own, PARENT, name)
        fs.mkdirSync(dir, { recursive: true })
        dirs.push(dir)
        fs.writeFileSync(path.join(dir, file), String(value))
      }
      return {
        procs: dirs.map((dir) => path.join(dir, "cgroup.procs")),
        remove: async () => {
          const failed = (await Promise.allSettled(dirs.map(removeDir))).find((r) => r.status === "rejected")
          if (failed) throw failed.reason
        }
      }
    }
  }
}

/**
 * The cgroups this process can give its VMs, or why it cannot. `root` is where cgroup file
 * systems are mounted, `self` the text of /proc/self/cgroup (tests give a fake of both).
 */
export const probeCgroups = (root = "/sys/fs/cgroup", self = read("/proc/self/cgroup") ?? ""): Cgroups | string =>
  fs.existsSync(path.join(root, "cgroup.controllers")) ? probeV2(root, self) : probeV1(root, self)

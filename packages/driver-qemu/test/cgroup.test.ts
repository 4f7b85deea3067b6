import { type Cgroups, probeCgroups } from "@boxlite/driver-qemu"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"

// A fake cgroup root: plain directories and files where the kernel would have control files.
const roots: Array<string> = []
const fakeRoot = (files: Record<string, string>) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bl-cg-"))
  roots.push(root)
  for (const [file, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true })
    fs.writeFileSync(path.join(root, file), content)
  }
  return root
}
afterEach(() => roots.splice(0).forEach((r) => fs.rmSync(r, { recursive: true, force: true })))
const read = (root: string, file: string) => fs.readFileSync(path.join(root, file), "utf8")
const limits = { memoryBytes: 960 * 1024 * 1024, pids: 129, cpuWeight: 100 }
/** The kernel drops a cgroup's control files with it; the fake must be emptied first. */
const emptyFake = (dir: string) => fs.readdirSync(dir).forEach((f) => fs.rmSync(path.join(dir, f)))

describe("probeCgroups: cgroup v2", () => {
  it("makes one cgroup per box under boxlite/ beside this process's own cgroup, enabling the controllers on the way", async () => {
    const root = fakeRoot({
      "cgroup.controllers": "cpuset cpu io memory pids",
      "system.slice/cgroup.controllers": "cpu memory pids",
      "system.slice/cgroup.subtree_control": "memory",
      "system.slice/app.service/cgroup.procs": "1234"
    })
    const cgroups = probeCgroups(root, "0::/system.slice/app.service\n") as Cgroups
    expect(cgroups.version).toBe("v2")
    expect(read(root, "system.slice/cgroup.subtree_control")).toBe("+pids +cpu")
    const box = cgroups.create("01BOX", limits)
    const dir = "system.slice/boxlite/01BOX"
    expect(read(root, "system.slice/boxlite/cgroup.subtree_control")).toBe("+memory +pids +cpu")
    expect(read(root, `${dir}/memory.max`)).toBe(String(960 * 1024 * 1024))
    expect(read(root, `${dir}/memory.oom.group`)).toBe("1")
    expect(read(root, `${dir}/pids.max`)).toBe("129")
    expect(read(root, `${dir}/cpu.weight`)).toBe("100")
    expect(box.procs).toEqual([path.join(root, dir, "cgroup.procs")])
    emptyFake(path.join(root, dir))
    await box.remove()
    expect(fs.existsSync(path.join(root, dir))).toBe(false)
    await box.remove()
  })

  it("uses the root when this process is at the root, and sets no CPU weight without the cpu controller", () => {
    const root = fakeRoot({ "cgroup.controllers": "memory pids", "cgroup.subtree_control": "memory pids" })
    const cgroups = probeCgroups(root, "0::/\n") as Cgroups
    cgroups.create("01BOX", limits)
    expect(fs.readdirSync(path.join(root, "boxlite/01BOX")).sort()).toEqual(["memory.max", "memory.oom.group", "pids.max"])
  })

  it("says why it cannot: no memory or pids controller, or not in a v2 cgroup", () => {
    const root = fakeRoot({ "cgroup.controllers": "cpu io", "cgroup.subtree_control": "" })
    expect(probeCgroups(root, "0::/\n")).toMatch(/does not offer the memory and pids controllers \(it offers: cpu io\)/)
    expect(probeCgroups(root, "1:name=systemd:/\n")).toMatch(/no 0:: line/)
  })
})

describe("probeCgroups: cgroup v1", () => {
  it("makes the box's cgroup inside this process's own in the memory, pids and cpu hierarchies", async () => {
    const root = fakeRoot({ "memory/cgroup.procs": "", "memory/process_api/abc/cgroup.procs": "", "pids/cgroup.procs": "", "cpu/cgroup.procs": "", "unified/cgroup.controllers": "" })
    const self = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n"
    const cgroups = probeCgroups(root, self) as Cgroups
    expect(cgroups.version).toBe("v1")
    const box = cgroups.create("01BOX", { ...limits, cpuWeight: 200 })
    expect(read(root, "memory/process_api/abc/boxlite/01BOX/memory.limit_in_bytes")).toBe(String(960 * 1024 * 1024))
    expect(read(root, "pids/boxlite/01BOX/pids.max")).toBe("129")
    expect(read(root, "cpu/boxlite/01BOX/cpu.shares")).toBe("2048")
    expect(box.procs).toEqual(["memory/process_api/abc", "pids", "cpu"].map((d) => path.join(root, d, "boxlite/01BOX/cgroup.procs")))
    for (const d of ["memory/process_api/abc", "pids", "cpu"]) emptyFake(path.join(root, d, "boxlite/01BOX"))
    await box.remove()
    expect(fs.existsSync(path.join(root, "pids/boxlite/01BOX"))).toBe(false)
  })

  it("says why it cannot when there is neither v2 nor the v1 memory and pids hierarchies", () => {
    const root = fakeRoot({ "cpu/cgroup.procs": "" })
    expect(probeCgroups(root, "1:cpu:/\n")).toMatch(/no cgroup v2 .* and no cgroup v1 memory and pids hierarchies/)
  })
})

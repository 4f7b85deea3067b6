import { boxUid, deviceGroups, jailArgv, type JailSpec, type JailTools } from "@boxlite/driver-qemu"
import { describe, expect, it } from "vitest"

const tools: JailTools = { bwrap: "/usr/bin/bwrap", setpriv: "/usr/bin/setpriv", prlimit: "/usr/bin/prlimit", root: ["--symlink", "usr/lib", "/lib"] }
const base: JailSpec = { user: undefined, devices: [], readOnly: [], rlimits: { nofile: 1024, nproc: 129 }, cgroupProcs: [], infoFd: 6 }
const argv = (jail: Partial<JailSpec>) => jailArgv(tools, { ...base, ...jail }, "/usr/bin/qemu-system-x86_64", ["-m", "512M"])
/** The part of argv from `tool` up to the next `--`. */
const stage = (line: Array<string>, tool: string) => {
  const from = line.indexOf(tool)
  return line.slice(from, line.indexOf("--", from))
}

describe("jailArgv", () => {
  it("as root: a uid and gid of the box's own, no groups, no capabilities even in the bounding set, no new privileges", () => {
    const uid = boxUid("01BOX")
    const line = argv({ user: { uid, gid: uid, groups: [] } })
    expect(line[0]).toBe("/usr/bin/setpriv")
    expect(stage(line, "/usr/bin/setpriv")).toEqual(["/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"])
  })

  it("as another user: its own uid (no switch, no bounding-set change it could not make) in a user namespace", () => {
    const line = argv({})
    expect(stage(line, "/usr/bin/setpriv")).toEqual(["/usr/bin/setpriv", "--inh-caps=-all", "--no-new-privs"])
    expect(line).toContain("--unshare-user")
  })

  it("puts QEMU in every namespace, network included, with only /usr, a private /proc and a minimal /dev", () => {
    const jail = stage(argv({}), "/usr/bin/bwrap")
    for (const flag of ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1", "--clearenv"]) expect(jail).toContain(flag)
    expect(jail.join(" ")).toContain("--cap-drop ALL")
    expect(jail.join(" ")).toContain("--ro-bind /usr /usr --symlink usr/lib /lib")
    expect(jail.join(" ")).toContain("--proc /proc --dev /dev")
    expect(jail.join(" ")).toContain("--info-fd 6")
    expect(jail.filter((a) => a.startsWith("--share"))).toEqual([])
    expect(jail).not.toContain("--dev-bind")
    expect(jail.join(" ")).not.toMatch(/\/home|\/root|\/tmp|\/var|\/etc/)
  })

  it("under KVM binds /dev/kvm and, as root, adds its group", () => {
    const line = argv({ user: { uid: 0x70000001, gid: 0x70000001, groups: [108] }, devices: ["/dev/kvm"] })
    expect(line).toContain("--groups=108")
    expect(line).not.toContain("--clear-groups")
    expect(line.join(" ")).toContain("--dev-bind /dev/kvm /dev/kvm")
  })

  it("sets rlimits inside the namespaces, then runs QEMU with its arguments", () => {
    const line = argv({})
    expect(stage(line, "/usr/bin/prlimit")).toEqual(["/usr/bin/prlimit", "--core=0", "--nofile=1024", "--nproc=129"])
    expect(line.slice(-3)).toEqual(["/usr/bin/qemu-system-x86_64", "-m", "512M"])
    expect(line.indexOf("/usr/bin/prlimit")).toBeGreaterThan(line.indexOf("/usr/bin/bwrap"))
  })

  it("joins the cgroups first, so every later process is counted", () => {
    const line = argv({ cgroupProcs: ["/cg/memory/boxlite/b/cgroup.procs", "/cg/pids/boxlite/b/cgroup.procs"] })
    expect(line.slice(0, 2)).toEqual(["/bin/sh", "-c"])
    expect(line.slice(3, 7)).toEqual(["sh", "/cg/memory/boxlite/b/cgroup.procs", "/cg/pids/boxlite/b/cgroup.procs", "--"])
    expect(line[7]).toBe("/usr/bin/setpriv")
  })
})

describe("boxUid", () => {
  it("is stable per box, in 0x70000000-0x70ffffff, and differs between boxes", () => {
    const ids = Array.from({ length: 200 }, (_, i) => `01JBOX${String(i).padStart(20, "0")}`)
    const uids = ids.map(boxUid)
    expect(uids.every((u) => u >= 0x70000000 && u < 0x71000000)).toBe(true)
    expect(new Set(uids).size).toBe(200)
    expect(boxUid(ids[0]!)).toBe(uids[0])
  })
})

describe("deviceGroups", () => {
  it("needs no group for a world read-write node, the node's group if group read-write, and gives up on owner-only", () => {
    expect(deviceGroups(0o20666, 108)).toEqual([])
    expect(deviceGroups(0o20660, 108)).toEqual([108])
    expect(deviceGroups(0o20600, 0)).toBeUndefined()
  })
})

import { describe, expect, it } from "vitest"
import { probeVirtiofsdUser, virtiofsdArgv } from "@boxlite/driver-qemu"

describe("virtiofsd command line", () => {
  const root = { kind: "root", subordinate: false } as const
  const dirVolume = { tag: "v0", hostPath: "/data", fd: 42, readOnly: false }
  const layout = ["--symlink", "usr/lib", "/lib"]
  const daemon = (argv: Array<string>) => argv.slice(argv.indexOf("/usr/lib/qemu/virtiofsd"))
  const sandbox = (argv: Array<string>) => argv.slice(argv.indexOf("bwrap"), argv.indexOf("--", argv.indexOf("bwrap"))).join(" ")

  it("runs in a user namespace, then bwrap: its own files only, the source bound from its descriptor, seccomp on", () => {
    const argv = virtiofsdArgv("/tmp/run/fs0.sock", dirVolume, root, "/tmp/run/fs0.d", layout)
    expect(argv.slice(0, argv.indexOf("bwrap"))).toEqual(["setpriv", "--clear-groups", "--", "unshare", "--user", "--map-root-user"])
    expect(sandbox(argv)).toBe(
      "bwrap --die-with-parent --unshare-ipc --unshare-net --ro-bind /usr /usr --symlink usr/lib /lib --proc /proc --dev /dev " +
        "--bind /tmp/run /tmp/run --dir /var/run/virtiofsd --bind-fd 4 /tmp/run/fs0.d --seccomp 3"
    )
    expect(daemon(argv)).toEqual([
      "/usr/lib/qemu/virtiofsd", "--socket-path=/tmp/run/fs0.sock", "-o", "source=/tmp/run/fs0.d", "-o", "cache=auto", "-o", "sandbox=chroot",
      "-o", "no_xattr", "-o", "modcaps=-mknod:-fsetid:-setfcap"
    ])
  })

  it("binds a read-only volume read-only, and escapes commas in the source", () => {
    const argv = virtiofsdArgv("/r/s", { ...dirVolume, hostPath: "/my data,1", readOnly: true }, root, "/r/st,age", layout)
    expect(sandbox(argv)).toContain("--ro-bind-fd 4 /r/st,age")
    expect(argv.join(" ")).not.toContain("/my data,1")
    expect(daemon(argv)).toContain("source=/r/st\\,age")
  })

  it("shares a single file in a tiny tmpfs remounted read-only after the bind, which keeps its own mode", () => {
    for (const readOnly of [false, true]) {
      const argv = virtiofsdArgv("/r/s", { ...dirVolume, file: "app.conf", readOnly }, root, "/r/fs0.d", layout)
      expect(sandbox(argv)).toContain(
        `--size 4096 --perms 0755 --tmpfs /r/fs0.d ${readOnly ? "--ro-bind-fd" : "--bind-fd"} 4 /r/fs0.d/app.conf --remount-ro /r/fs0.d`
      )
    }
  })

  it("maps root's subordinate ids when it has some; a user with subordinate ids gets --map-auto, one without maps alone", () => {
    // util-linux 2.38 keeps one --map-users only: --map-auto --map-root-user is root -> root plus root's range from 1.
    const rootMapped = virtiofsdArgv("/r/s", dirVolume, { kind: "root", subordinate: true }, "/r/fs0.d", layout)
    expect(rootMapped.slice(0, rootMapped.indexOf("bwrap"))).toEqual(["setpriv", "--clear-groups", "--", "unshare", "--user", "--map-auto", "--map-root-user"])
    const mapped = virtiofsdArgv("/r/s", dirVolume, { kind: "mapped" }, "/r/fs0.d", layout)
    expect(mapped.slice(0, mapped.indexOf("bwrap"))).toEqual(["unshare", "--user", "--map-auto", "--map-root-user"])
    const self = virtiofsdArgv("/r/s", dirVolume, { kind: "self" }, "/r/fs0.d", layout)
    expect(self.slice(0, self.indexOf("bwrap"))).toEqual(["unshare", "--user", "--map-root-user"])
  })

  it("sees only its own files: /usr read-only, the host's top-level links, its run directory, the share", () => {
    const line = sandbox(virtiofsdArgv("/var/tmp/r/s", dirVolume, root, "/var/tmp/r/fs0.d", layout))
    expect(line).not.toContain("--ro-bind / /")
    expect(line).toContain("--ro-bind /usr /usr --symlink usr/lib /lib --proc /proc --dev /dev --bind /var/tmp/r /var/tmp/r --dir /var/run/virtiofsd")
  })
})

describe("whom virtiofsd runs as", () => {
  const mapAuto = "unshare --user --map-auto --map-root-user true"
  const mapSelf = "unshare --user --map-root-user true"
  const host = (ok: Array<string>, supplementaryGroups: boolean) => ({
    run: (argv: Array<string>) => ok.includes(argv.join(" ")),
    supplementaryGroups: () => supplementaryGroups
  })

  it("root: in a namespace of its own, with its subordinate ids if unshare --map-auto finds some, else with a warning", () => {
    expect(probeVirtiofsdUser(true, host([mapAuto, mapSelf], true))).toEqual({ user: { kind: "root", subordinate: true }, warning: undefined })
    const alone = probeVirtiofsdUser(true, host([mapSelf], true))
    expect(alone.user).toEqual({ kind: "root", subordinate: false })
    expect(alone.warning).toMatch(/guest users other than root cannot create files.*usermod --add-subuids/)
  })

  it("not root: the first user namespace unshare can make that virtiofsd can start in", () => {
    expect(probeVirtiofsdUser(false, host([mapAuto, mapSelf], true)).user).toEqual({ kind: "mapped" })
    expect(probeVirtiofsdUser(false, host([mapSelf], false)).user).toEqual({ kind: "self" })
    // With supplementary groups, this user alone is not enough: virtiofsd's setgroups would fail.
    expect(() => probeVirtiofsdUser(false, host([mapSelf], true))).toThrow(/apt-get install uidmap.*\/etc\/subuid/)
    expect(() => probeVirtiofsdUser(false, host([], false))).toThrow(/unshare --user --map-auto/)
  })
})

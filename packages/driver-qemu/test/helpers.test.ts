import { describe, expect, it } from "vitest"
import { probeVirtiofsdUser, virtiofsdArgv } from "@boxlite/driver-qemu"

describe("virtiofsd command line", () => {
  const daemon = (argv: Array<string>) => argv.slice(argv.indexOf("/usr/lib/qemu/virtiofsd"))
  const script = (argv: Array<string>) => argv[argv.indexOf("-c") + 1]!

  it("serves every volume from its stage in a private mount namespace, the pid file on a tmpfs there", () => {
    const argv = virtiofsdArgv("/s", { tag: "v0", hostPath: "/data", readOnly: false }, "root", "/stage")
    expect(argv.slice(0, argv.indexOf("sh"))).toEqual(["unshare", "--mount", "--propagation", "private"])
    expect(script(argv)).toContain('mount --rbind "$2" "$1"')
    expect(script(argv)).not.toContain("ro")
    expect(script(argv)).toContain("mount -t tmpfs -o mode=0700 boxlite /var/run/virtiofsd")
    expect(argv.slice(argv.indexOf("-c") + 2, argv.indexOf("-c") + 6)).toEqual(["sh", "/stage", "/data", ""])
    expect(daemon(argv)).toEqual(["/usr/lib/qemu/virtiofsd", "--socket-path=/s", "-o", "source=/stage", "-o", "cache=auto", "-o", "sandbox=chroot"])
  })

  it("binds a read-only volume read-only, and escapes commas in the source", () => {
    const argv = virtiofsdArgv("/s", { tag: "v0", hostPath: "/my data,1", readOnly: true }, "root", "/st,age")
    expect(script(argv)).toContain('mount --bind "$2" "$1" && mount -o remount,bind,ro "$1"')
    expect(argv).toContain("/my data,1")
    expect(daemon(argv)).toContain("source=/st\\,age")
  })

  it("uses a user namespace without root: with subordinate ids when there are, else this user alone", () => {
    const file = { tag: "v0", hostPath: "/etc", file: "hosts", readOnly: false }
    const mapped = virtiofsdArgv("/s", file, "mapped", "/run/fs0.d")
    expect(mapped.slice(0, 7)).toEqual(["unshare", "--user", "--map-auto", "--map-root-user", "--mount", "--propagation", "private"])
    expect(script(mapped)).toContain("mount -t tmpfs -o mode=0755 boxlite \"$1\"")
    expect(daemon(mapped)).toContain("source=/run/fs0.d")
    expect(virtiofsdArgv("/s", file, "self", "/run/fs0.d").slice(0, 3)).toEqual(["unshare", "--user", "--map-root-user"])
  })

  it("covers /var for the pid directory if the host has none, or /run if the stage is under /var", () => {
    const volume = { tag: "v0", hostPath: "/data", readOnly: false }
    expect(script(virtiofsdArgv("/s", volume, "self", "/tmp/fs0.d"))).toContain("else mount -t tmpfs -o mode=0755 boxlite /var && mkdir -p /var/run/virtiofsd")
    expect(script(virtiofsdArgv("/s", volume, "self", "/var/tmp/fs0.d"))).toContain("else mount -t tmpfs -o mode=0755 boxlite /run && mkdir -p /var/run/virtiofsd")
  })
})

describe("whom virtiofsd runs as", () => {
  it("root as root; else the first user namespace unshare can make that virtiofsd can start in", () => {
    const runs: Array<string> = []
    const host = (ok: Array<string>, supplementaryGroups: boolean) => ({
      run: (argv: Array<string>) => {
        runs.push(argv.join(" "))
        return ok.includes(argv.join(" "))
      },
      supplementaryGroups: () => supplementaryGroups
    })
    const mapAuto = "unshare --user --map-auto --map-root-user true"
    const mapSelf = "unshare --user --map-root-user true"
    expect(probeVirtiofsdUser(true, host([], true))).toBe("root")
    expect(runs).toEqual([])
    expect(probeVirtiofsdUser(false, host([mapAuto, mapSelf], true))).toBe("mapped")
    expect(probeVirtiofsdUser(false, host([mapSelf], false))).toBe("self")
    // With supplementary groups, this user alone is not enough: virtiofsd's setgroups would fail.
    expect(() => probeVirtiofsdUser(false, host([mapSelf], true))).toThrow(/apt-get install uidmap.*\/etc\/subuid/)
    expect(() => probeVirtiofsdUser(false, host([], false))).toThrow(/unshare --user --map-auto/)
  })
})

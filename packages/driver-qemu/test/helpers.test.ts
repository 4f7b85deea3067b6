import { describe, expect, it } from "vitest"
import { passtArgs, virtiofsdArgv } from "@boxlite/driver-qemu"

describe("passt arguments", () => {
  it("isolates the host's loopback by default and forwards each port", () => {
    const args = passtArgs({ allowHostLoopback: false, ports: [{ protocol: "tcp", hostIp: "127.0.0.1", hostPort: 8080, guestPort: 80 }] })
    expect(args).toContain("--no-map-gw")
    expect(args.join(" ")).toContain("--fd 3")
    expect(args).not.toContain("--socket")
    expect(args.join(" ")).toContain("-t 127.0.0.1/8080:80")
    expect(args.join(" ")).toContain("--address 10.0.2.15 --netmask 255.255.255.0 --gateway 10.0.2.2")
  })

  it("maps the gateway when asked, and when UDP forwards need it", () => {
    expect(passtArgs({ allowHostLoopback: true, ports: [] })).not.toContain("--no-map-gw")
    const udp = passtArgs({ allowHostLoopback: false, ports: [{ protocol: "udp", hostIp: "0.0.0.0", hostPort: 53, guestPort: 5353 }] })
    expect(udp).not.toContain("--no-map-gw")
    expect(udp.join(" ")).toContain("-u 0.0.0.0/53:5353")
  })
})

describe("virtiofsd command line", () => {
  const daemon = (argv: Array<string>) => argv.slice(argv.indexOf("/usr/lib/qemu/virtiofsd"))

  it("runs a read-write directory share directly", () => {
    expect(virtiofsdArgv("/s", { tag: "v0", hostPath: "/data", readOnly: false }, true, "/stage")).toEqual(
      ["/usr/lib/qemu/virtiofsd", "--socket-path=/s", "-o", "source=/data", "-o", "cache=auto", "-o", "sandbox=chroot"]
    )
  })

  it("serves a read-only share from a read-only bind mount in a private mount namespace", () => {
    const argv = virtiofsdArgv("/s", { tag: "v0", hostPath: "/my data,1", readOnly: true }, true, "/stage")
    expect(argv.slice(0, 4)).toEqual(["unshare", "--mount", "--propagation", "private"])
    expect(argv.join(" ")).toContain("mount -o remount,bind,ro")
    expect(argv).toContain("/my data,1")
    expect(daemon(argv)).toContain("source=/stage")
    expect(daemon(virtiofsdArgv("/s", { tag: "v1", hostPath: "/a,b", readOnly: false }, true, "/st"))).toContain("source=/a\\,b")
  })

  it("uses a user namespace without root, and a stage holding only the file for file shares", () => {
    const argv = virtiofsdArgv("/s", { tag: "v0", hostPath: "/etc", file: "hosts", readOnly: false }, false, "/run/fs0.d")
    expect(argv.slice(0, 3)).toEqual(["unshare", "--user", "--map-root-user"])
    expect(argv.join(" ")).toContain("mount -t tmpfs")
    expect(daemon(argv)).toContain("source=/run/fs0.d")
  })
})

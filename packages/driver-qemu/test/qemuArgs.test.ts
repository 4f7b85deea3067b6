import type { VmSpec } from "@boxlite/core"
import { qemuArgs } from "@boxlite/driver-qemu"
import { describe, expect, it } from "vitest"

const spec: VmSpec = {
  boxId: "b", dir: "/box", kernel: "/k", initrd: "/i", cmdline: "console=ttyS0", rootDisk: "/box/disk.qcow2",
  cpus: 1, memoryMib: 512, network: undefined, volumes: []
}
const tcg = { accelerator: "tcg" as const, reason: "" }
const sockets = { agent: "/run/agent.sock", console: "/box/console.log", network: undefined, volumes: [] }
const args = (s: VmSpec, extra: Partial<typeof sockets> | { network: number } = {}) => qemuArgs(s, "microvm", tcg, { ...sockets, ...extra }).join(" ")

describe("qemuArgs", () => {
  it("gives a VM without network or volumes no NIC and no shared memory", () => {
    expect(args(spec)).not.toMatch(/netdev|virtio-net|memory-backend|force-legacy|vhost-user/)
  })

  it("connects the NIC to passt's socketpair end on the inherited descriptor", () => {
    expect(args({ ...spec, network: { allowHostLoopback: false, ports: [] } }, { network: 3 })).toContain(
      "-netdev stream,id=n0,server=off,addr.type=fd,addr.str=3 -device virtio-net-device,netdev=n0"
    )
  })

  it("backs guest RAM with shared memfd and uses modern virtio-mmio once there is a volume", () => {
    const line = args({ ...spec, volumes: [{ tag: "v0", hostPath: "/d", fd: 9, readOnly: true }] }, { volumes: ["/run/fs0.sock"] })
    expect(line).toContain("-M microvm,memory-backend=mem")
    expect(line).toContain("-object memory-backend-memfd,id=mem,size=512M,share=on -global virtio-mmio.force-legacy=false")
    expect(line).toContain("-chardev socket,id=vfs0,path=/run/fs0.sock -device vhost-user-fs-device,chardev=vfs0,tag=v0")
  })
})

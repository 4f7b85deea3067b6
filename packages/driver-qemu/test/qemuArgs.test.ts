import type { VmSpec } from "@boxlite/driver"
import { descriptorsFor, qemuArgs, SANDBOX, tcgCacheMib, vmLimits, VMM_OVERHEAD_MIB } from "@boxlite/driver-qemu"
import { describe, expect, it } from "vitest"

const spec: VmSpec = {
  boxId: "b", dir: "/box", kernel: "/k", initrd: "/i", cmdline: "console=ttyS0", rootDisk: "/box/disk.qcow2", rootDiskBase: "/home/images/rootfs/base.ext4",
  cpus: 2, memoryMib: 512, network: undefined, volumes: []
}
const tcg = { accelerator: "tcg" as const, reason: "" }
const kvm = { accelerator: "kvm" as const, reason: "" }
const args = (s: VmSpec, accel = tcg) => qemuArgs(s, "microvm", accel, descriptorsFor(s)).join(" ")

describe("qemuArgs", () => {
  it("gives a VM without network or volumes no NIC and no shared memory", () => {
    expect(args(spec)).not.toMatch(/netdev|virtio-net|memory-backend|force-legacy|vhost-user/)
  })

  it("confines QEMU with its seccomp policy and bounds TCG's translation cache", () => {
    const line = args(spec)
    expect(SANDBOX).toBe("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
    expect(line).toContain(`-sandbox ${SANDBOX}`)
    expect(line).toContain("-accel tcg,tb-size=64 ")
    expect(args({ ...spec, memoryMib: 128 })).toContain("-accel tcg,tb-size=64 ")
    expect(args({ ...spec, memoryMib: 1024 })).toContain("-accel tcg,tb-size=128 ")
    expect(args({ ...spec, memoryMib: 700 })).toContain("-accel tcg,tb-size=87 ")
    expect(args({ ...spec, memoryMib: 8192 })).toContain("-accel tcg,tb-size=256 ")
    expect(line).not.toContain("-cpu host")
    const onKvm = args(spec, kvm)
    expect(onKvm).toContain(`-sandbox ${SANDBOX}`)
    expect(onKvm).toContain("-accel kvm -cpu host")
    expect(onKvm).not.toContain("tb-size")
  })

  it("lets an idle guest stop its tick (ARAT under TCG) and hand back the pages it frees", () => {
    expect(args(spec)).toContain("-cpu qemu64,+arat ")
    expect(args(spec, kvm)).not.toContain("arat")
    // The PIT goes where the guest gets the TSC's rate (TCG on microvm, a host that tells it).
    expect(args(spec)).toMatch(/^-M microvm,pit=off .* tsc_early_khz=\d+ tsc=reliable /)
    expect(args(spec, kvm)).toMatch(/^-M microvm -accel kvm/)
    expect(args(spec)).toContain("-device virtio-balloon-device,free-page-reporting=on")
  })

  it("names no file of the box: kernel, initrd, disk, base, console and agent are descriptors", () => {
    const line = args(spec)
    expect(line).not.toMatch(/\/box|\/home|\/k |\/i /)
    expect(line).toMatch(/-kernel \/proc\/self\/fd\/\d+ -initrd \/proc\/self\/fd\/\d+ /)
    expect(line).toMatch(/-chardev socket,id=con0,fd=\d+ -serial chardev:con0/)
    expect(line).toMatch(/-chardev socket,id=agent,fd=\d+ -device virtserialport,chardev=agent,name=boxlite.agent/)
    expect(line).toMatch(/-chardev socket,id=qmp,fd=\d+ -mon chardev=qmp,mode=control/)
    // The overlay and its base, each from its own descriptor set; the header's backing path is never opened.
    expect(line).toMatch(/-add-fd fd=\d+,set=1 -blockdev driver=file,node-name=base-file,filename=\/dev\/fdset\/1,read-only=on -blockdev driver=raw,node-name=base,file=base-file,read-only=on/)
    expect(line).toMatch(/-add-fd fd=\d+,set=2 -blockdev driver=file,node-name=disk-file,filename=\/dev\/fdset\/2,discard=unmap -blockdev driver=qcow2,node-name=root,file=disk-file,backing=base,discard=unmap -device virtio-blk-device,drive=root/)
    const { rootDiskBase: _, ...alone } = spec
    expect(args(alone)).toContain("backing=null")
    expect(args(alone)).not.toContain("set=1")
  })

  it("chains a clone's read-only layers between the base and the box disk, each from a descriptor; a restore waits for its state", () => {
    const clone: VmSpec = { ...spec, rootDiskLayers: ["/snap/a.qcow2", "/snap/b.qcow2"], restore: { file: "/snap/memory.state", bytes: 1, sha256: "x", signature: "{}" } }
    const line = args(clone)
    expect(line).toMatch(/-add-fd fd=\d+,set=10 -blockdev driver=file,node-name=layer0-file,filename=\/dev\/fdset\/10,read-only=on -blockdev driver=qcow2,node-name=layer0,file=layer0-file,backing=base,read-only=on/)
    expect(line).toMatch(/node-name=layer1,file=layer1-file,backing=layer0,read-only=on/)
    expect(line).toContain("node-name=root,file=disk-file,backing=layer1,discard=unmap")
    expect(line).toMatch(/-incoming defer$/)
    expect(line).not.toContain("/snap")
    expect(args(spec)).not.toContain("-incoming")
  })

  it("gives every descriptor its own number", () => {
    const fds = descriptorsFor({
      ...spec, network: { allowHostLoopback: false, ports: [] }, rootDiskLayers: ["/l0", "/l1"], restore: { file: "/s", bytes: 1, sha256: "x", signature: "{}" },
      volumes: [{ tag: "v0", hostPath: "/d", fd: 20, readOnly: true }, { tag: "v1", hostPath: "/e", fd: 21, readOnly: false }]
    })
    const numbers = [fds.agent, fds.console, fds.monitor, fds.kernel, fds.initrd, fds.disk, fds.base, fds.network, fds.stateSocket, fds.incoming, ...fds.layers, ...fds.volumes]
    expect(new Set(numbers).size).toBe(numbers.length)
    expect(Math.min(...numbers.map(Number))).toBeGreaterThanOrEqual(3)
  })

  it("connects the NIC to passt's socketpair end on the inherited descriptor", () => {
    const withNet = { ...spec, network: { allowHostLoopback: false, ports: [] } }
    expect(args(withNet)).toContain(`-netdev stream,id=n0,server=off,addr.type=fd,addr.str=${descriptorsFor(withNet).network} -device virtio-net-device,netdev=n0`)
  })

  it("backs guest RAM with shared memfd once there is a volume, and hands QEMU each virtiofsd connection", () => {
    const withVolumes = { ...spec, volumes: [{ tag: "v0", hostPath: "/d", fd: 20, readOnly: true }, { tag: "v1", hostPath: "/e", fd: 21, readOnly: false }] }
    const line = args(withVolumes)
    const [fd0, fd1] = descriptorsFor(withVolumes).volumes
    expect(line).toMatch(/-M microvm(,pit=off)?,memory-backend=mem /)
    expect(line).toContain("-object memory-backend-memfd,id=mem,size=512M,share=on -global virtio-mmio.force-legacy=false")
    expect(line).toContain(`-chardev socket,id=vfs0,fd=${fd0} -device vhost-user-fs-device,chardev=vfs0,tag=v0`)
    expect(line).toContain(`-chardev socket,id=vfs1,fd=${fd1} -device vhost-user-fs-device,chardev=vfs1,tag=v1`)
    expect(line).not.toContain("path=")
  })
})

describe("vmLimits", () => {
  it("allows guest RAM plus the translation cache (TCG only) plus a fixed overhead, tasks and CPU weight per vCPU", () => {
    expect(vmLimits(spec, tcg)).toEqual({ memoryBytes: (512 + tcgCacheMib(512) + VMM_OVERHEAD_MIB) * 1024 * 1024, pids: 130, cpuWeight: 200 })
    expect(vmLimits(spec, kvm).memoryBytes).toBe((512 + VMM_OVERHEAD_MIB) * 1024 * 1024)
    expect(vmLimits({ ...spec, cpus: 200 }, kvm).cpuWeight).toBe(10_000)
  })
})

/**
 * Whether /dev/kvm can run cloud-hypervisor's guest, asked of KVM itself through ioctls (koffi
 * calls libc's open/ioctl/mmap) rather than read from /proc/cpuinfo:
 * 1. KVM_GET_API_VERSION must be 12 (the only stable API there is);
 * 2. KVM_CHECK_EXTENSION for what cloud-hypervisor cannot boot without (REQUIRED_CAPS);
 * 3. on x86_64, a four-instruction guest is run: at the reset vector, real mode,
 *    `mov ax,0xff; popcnt ax,ax; out 0x10,al; hlt`. Hardware virtualization (VT-x with
 *    unrestricted guest, AMD-V) executes it natively and reports the port write (8, the bits of
 *    0xff) then the halt. PVM (kvm_pvm, nested clouds), which emulates such a guest in KVM's
 *    instruction emulator, stops with KVM_EXIT_INTERNAL_ERROR (emulation failure): the same
 *    failure a stock guest kernel meets there (cmpxchg16b, xrstor, int3), not just a module name.
 */
import * as fs from "node:fs"

/** libc as the probe uses it; tests give a fake one. Each call returns -1 and sets errno on failure, like libc. */
export interface KvmSyscalls {
  /** open(path, O_RDWR | O_CLOEXEC): a descriptor, or a negative errno. */
  readonly open: (path: string) => number
  /** ioctl(fd, request, arg): the result, or a negative errno. `arg` is an integer or a buffer passed by address. */
  readonly ioctl: (fd: number, request: number, arg: number | Uint8Array) => number
  /** Anonymous (fd undefined) or file-backed shared read-write mapping; undefined if mmap failed. */
  readonly mmap: (length: number, fd?: number) => Mapping | undefined
  readonly close: (fd: number) => void
  /** Whether the kvm_pvm module is loaded (/sys/module/kvm_pvm), to name PVM in the verdict. */
  readonly pvmLoaded: () => boolean
}

export interface Mapping {
  readonly address: bigint
  /** Reads and writes the mapped memory. */
  readonly bytes: Uint8Array
  readonly unmap: () => void
}

export type KvmVerdict =
  | { readonly usable: true; readonly reason: string }
  | { readonly usable: false; readonly reason: string }

/** ioctl numbers (linux/kvm.h, _IO(0xAE, n) and _IOW for the memory region). */
export const KVM = {
  GET_API_VERSION: 0xae00,
  CREATE_VM: 0xae01,
  CHECK_EXTENSION: 0xae03,
  GET_VCPU_MMAP_SIZE: 0xae04,
  CREATE_VCPU: 0xae41,
  SET_USER_MEMORY_REGION: 0x4020ae46,
  SET_TSS_ADDR: 0xae47,
  RUN: 0xae80
} as const

export const KVM_API_VERSION = 12

/** kvm_run.exit_reason values the probe looks at. */
export const EXIT = { IO: 2, HLT: 5, INTERNAL_ERROR: 17 } as const

/**
 * Extensions cloud-hypervisor's KVM back end checks before it creates a VM (hypervisor/src/kvm):
 * irqfd and ioeventfd (every virtio device signals through them), user memory regions, immediate
 * exit (how it stops vCPUs to pause or shut down); on x86_64 also the split irqchip (its
 * userspace IOAPIC), MSI injection, the TSC deadline timer and the TSS address real mode needs.
 */
export const REQUIRED_CAPS: Readonly<Record<string, ReadonlyArray<readonly [string, number]>>> = {
  common: [["KVM_CAP_USER_MEMORY", 3], ["KVM_CAP_IRQFD", 32], ["KVM_CAP_IOEVENTFD", 36], ["KVM_CAP_IMMEDIATE_EXIT", 136]],
  x64: [["KVM_CAP_SET_TSS_ADDR", 4], ["KVM_CAP_TSC_DEADLINE_TIMER", 72], ["KVM_CAP_SIGNAL_MSI", 77], ["KVM_CAP_SPLIT_IRQCHIP", 121]]
}

/** mov ax,0x00ff; popcnt ax,ax; out 0x10,al; hlt: at 0xfffffff0, where an x86 vCPU starts. */
export const PROBE_CODE = [0xb8, 0xff, 0x00, 0xf3, 0x0f, 0xb8, 0xc0, 0xe6, 0x10, 0xf4] as const
export const PROBE_PORT = 0x10
export const PROBE_VALUE = 8
/** The probe guest's one memory slot: the top 64 KiB below 4 GiB (the reset vector is its last 16 bytes). */
export const PROBE_SLOT = { guestAddress: 0xffff0000n, size: 0x10000 } as const

const ERRNO = { EPERM: 1, ENOENT: 2, ENXIO: 6, ENOMEM: 12, EACCES: 13, EBUSY: 16, ENODEV: 19, EINVAL: 22, ENOTTY: 25 } as const
const errnoName = (n: number): string => Object.entries(ERRNO).find(([, v]) => v === -n)?.[0] ?? `errno ${-n}`

const unusable = (reason: string): KvmVerdict => ({ usable: false, reason })

/** Runs the probe guest on `vm` and says what happened. */
const runProbeGuest = (sys: KvmSyscalls, kvm: number, vm: number): KvmVerdict => {
  // Needed by VT-x for real mode; three pages outside the guest's memory slot.
  if (sys.ioctl(vm, KVM.SET_TSS_ADDR, 0xfffbd000) < 0) return unusable("KVM_SET_TSS_ADDR failed")
  const memory = sys.mmap(PROBE_SLOT.size)
  if (!memory) return unusable("cannot map memory for the probe guest")
  try {
    memory.bytes.set(PROBE_CODE, PROBE_SLOT.size - 16)
    const region = Buffer.alloc(32)
    region.writeUInt32LE(0, 0) // slot
    region.writeUInt32LE(0, 4) // flags
    region.writeBigUInt64LE(PROBE_SLOT.guestAddress, 8)
    region.writeBigUInt64LE(BigInt(PROBE_SLOT.size), 16)
    region.writeBigUInt64LE(memory.address, 24)
    if (sys.ioctl(vm, KVM.SET_USER_MEMORY_REGION, region) < 0) return unusable("KVM_SET_USER_MEMORY_REGION failed")
    const vcpu = sys.ioctl(vm, KVM.CREATE_VCPU, 0)
    if (vcpu < 0) return unusable(`KVM_CREATE_VCPU failed (${errnoName(vcpu)})`)
    try {
      const runSize = sys.ioctl(kvm, KVM.GET_VCPU_MMAP_SIZE, 0)
      const run = runSize > 0 ? sys.mmap(runSize, vcpu) : undefined
      if (!run) return unusable("cannot map the vCPU's kvm_run structure")
      try {
        const view = new DataView(run.bytes.buffer, run.bytes.byteOffset, run.bytes.byteLength)
        let wrote: number | undefined
        // At most: the port write, the halt (a third exit would be something else).
        for (let step = 0; step < 3; step++) {
          const result = sys.ioctl(vcpu, KVM.RUN, 0)
          if (result < 0) return unusable(`KVM_RUN failed (${errnoName(result)})`)
          const exit = view.getUint32(8, true)
          if (exit === EXIT.IO) {
            // kvm_run.io: direction u8, size u8, port u16, count u32, data_offset u64 (at 32).
            const port = view.getUint16(34, true)
            const offset = Number(view.getBigUint64(40, true))
            if (port === PROBE_PORT && offset < run.bytes.length) wrote = run.bytes[offset]
            continue
          }
          if (exit === EXIT.HLT) {
            return wrote === PROBE_VALUE
              ? { usable: true, reason: "/dev/kvm runs guest code natively (API 12, the extensions cloud-hypervisor needs)" }
              : unusable(`the probe guest computed ${wrote ?? "nothing"} instead of ${PROBE_VALUE}`)
          }
          if (exit === EXIT.INTERNAL_ERROR) {
            return unusable(
              sys.pvmLoaded()
                ? "/dev/kvm is PVM (kvm_pvm): it emulates rather than virtualizes guest code and cannot run a standard guest kernel (the probe guest's popcnt was an emulation failure)"
                : "/dev/kvm cannot execute ordinary guest instructions (the probe guest's popcnt was an emulation failure): no hardware virtualization behind it"
            )
          }
          return unusable(`the probe guest stopped with KVM exit reason ${exit}`)
        }
        return unusable("the probe guest did not halt")
      } finally {
        run.unmap()
      }
    } finally {
      sys.close(vcpu)
    }
  } finally {
    memory.unmap()
  }
}

/** The verdict on `device` (default /dev/kvm), for `arch` (process.arch). */
export const probeKvm = (sys: KvmSyscalls, arch: string = process.arch, device = "/dev/kvm"): KvmVerdict => {
  const fd = sys.open(device)
  if (fd < 0) {
    if (fd === -ERRNO.ENOENT || fd === -ERRNO.ENXIO || fd === -ERRNO.ENODEV) {
      return unusable(`${device} does not exist: no KVM on this host (load kvm_intel or kvm_amd; in a VM, enable nested virtualization)`)
    }
    if (fd === -ERRNO.EACCES || fd === -ERRNO.EPERM) {
      return unusable(`${device} is not accessible to this user (add it to the device's group, usually kvm: usermod -aG kvm $USER)`)
    }
    return unusable(`cannot open ${device} (${errnoName(fd)})`)
  }
  const opened = [fd]
  try {
    const version = sys.ioctl(fd, KVM.GET_API_VERSION, 0)
    if (version !== KVM_API_VERSION) return unusable(`${device} speaks KVM API ${version}, not ${KVM_API_VERSION}`)
    const wanted = [...REQUIRED_CAPS["common"]!, ...(arch === "x64" ? REQUIRED_CAPS["x64"]! : [])]
    const missing = wanted.filter(([, cap]) => sys.ioctl(fd, KVM.CHECK_EXTENSION, cap) <= 0).map(([name]) => name)
    if (missing.length > 0) return unusable(`${device} lacks what cloud-hypervisor needs: ${missing.join(", ")}`)
    const vm = sys.ioctl(fd, KVM.CREATE_VM, 0)
    if (vm < 0) return unusable(`KVM_CREATE_VM failed (${errnoName(vm)})`)
    opened.push(vm)
    // Off x86 there is no reset vector to run from: API and extensions are the probe.
    if (arch !== "x64") return { usable: true, reason: `/dev/kvm (API 12, the extensions cloud-hypervisor needs) on ${arch}` }
    return runProbeGuest(sys, fd, vm)
  } finally {
    for (const n of [...opened].reverse()) sys.close(n)
  }
}

/** libc through koffi: loaded on first use, so that importing the driver costs nothing off Linux. */
export const libcSyscalls = async (): Promise<KvmSyscalls> => {
  const { default: koffi } = await import("koffi")
  const libc = koffi.load("libc.so.6")
  const open = libc.func("int open(const char *path, int flags)")
  const ioctl = libc.func("int ioctl(int fd, unsigned long request, ...)")
  const mmap = libc.func("void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)")
  const munmap = libc.func("int munmap(void *addr, size_t length)")
  const close = libc.func("int close(int fd)")
  const O_RDWR = 2
  const O_CLOEXEC = 0o2000000
  const PROT_READ_WRITE = 3
  const MAP_SHARED = 1
  const MAP_PRIVATE_ANONYMOUS = 0x22
  const MAP_FAILED = 0xffffffffffffffffn
  const orErrno = (result: number) => (result < 0 ? -koffi.errno() : result)
  return {
    open: (path) => orErrno(open(path, O_RDWR | O_CLOEXEC) as number),
    ioctl: (fd, request, arg) => orErrno((typeof arg === "number" ? ioctl(fd, request, "unsigned long", arg) : ioctl(fd, request, "void *", arg)) as number),
    mmap: (length, fd) => {
      const pointer: unknown = fd === undefined ? mmap(null, length, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0) : mmap(null, length, PROT_READ_WRITE, MAP_SHARED, fd, 0)
      const address = pointer === null ? MAP_FAILED : koffi.address(pointer)
      if (address === MAP_FAILED || address === 0n) return undefined
      return { address, bytes: new Uint8Array(koffi.view(pointer, length)), unmap: () => void munmap(pointer, length) }
    },
    close: (fd) => void close(fd),
    pvmLoaded: () => fs.existsSync("/sys/module/kvm_pvm")
  }
}

/**
 * The verdict for this host. BOXLITE_ACCEL=kvm skips the probe (a host where it is wrong);
 * any other value refuses: this driver has no software emulation.
 */
export const kvmVerdict = async (env: NodeJS.ProcessEnv = process.env): Promise<KvmVerdict> => {
  const override = env["BOXLITE_ACCEL"]
  if (override === "kvm") return { usable: true, reason: "set by BOXLITE_ACCEL" }
  if (override) return unusable(`BOXLITE_ACCEL=${override}: the kvm driver runs on KVM only`)
  if (process.platform !== "linux") return unusable(`cloud-hypervisor needs Linux KVM (this is ${process.platform})`)
  try {
    return probeKvm(await libcSyscalls())
  } catch (e) {
    return unusable(`cannot probe /dev/kvm: ${(e as Error).message}`)
  }
}

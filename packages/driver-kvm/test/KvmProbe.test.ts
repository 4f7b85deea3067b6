import { EXIT, KVM, kvmVerdict, type KvmSyscalls, libcSyscalls, type Mapping, PROBE_CODE, PROBE_PORT, PROBE_SLOT, probeKvm, REQUIRED_CAPS } from "@boxlite/driver-kvm"
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"

/**
 * A fake /dev/kvm: answers the probe's ioctls as `kernel` says. Its KVM_RUN "executes" the probe
 * guest: it checks the code the probe put at the reset vector, then reports what `kernel.run` says.
 */
interface FakeKernel {
  readonly openErrno?: number
  readonly apiVersion?: number
  readonly missingCaps?: ReadonlyArray<number>
  /** The exits KVM_RUN reports, in order; a number is the popcnt result written to PROBE_PORT. */
  readonly run?: ReadonlyArray<"hlt" | "internal-error" | "shutdown" | number>
  readonly pvm?: boolean
}

const fakeSyscalls = (kernel: FakeKernel) => {
  const open = new Set<number>()
  const maps: Array<{ bytes: Uint8Array; unmapped: boolean }> = []
  let next = 10
  let guestMemory: Uint8Array | undefined
  let run: Uint8Array | undefined
  const exits = [...(kernel.run ?? [8, "hlt"])]
  const sys: KvmSyscalls = {
    open: (path) => {
      expect(path).toBe("/dev/kvm")
      if (kernel.openErrno) return -kernel.openErrno
      open.add(next)
      return next++
    },
    ioctl: (fd, request, arg) => {
      expect(open.has(fd)).toBe(true)
      switch (request) {
        case KVM.GET_API_VERSION:
          return kernel.apiVersion ?? 12
        case KVM.CHECK_EXTENSION:
          return (kernel.missingCaps ?? []).includes(arg as number) ? 0 : 1
        case KVM.CREATE_VM:
        case KVM.CREATE_VCPU:
          open.add(next)
          return next++
        case KVM.SET_TSS_ADDR:
          return 0
        case KVM.SET_USER_MEMORY_REGION: {
          const region = Buffer.from(arg as Uint8Array)
          expect(region.readBigUInt64LE(8)).toBe(PROBE_SLOT.guestAddress)
          expect(Number(region.readBigUInt64LE(16))).toBe(PROBE_SLOT.size)
          guestMemory = maps.find((m) => region.readBigUInt64LE(24) === BigInt(maps.indexOf(m) + 1) * 0x1000n)?.bytes
          return 0
        }
        case KVM.GET_VCPU_MMAP_SIZE:
          return 4096
        case KVM.RUN: {
          // The code at the reset vector is the probe's.
          expect([...guestMemory!.subarray(PROBE_SLOT.size - 16, PROBE_SLOT.size - 16 + PROBE_CODE.length)]).toEqual([...PROBE_CODE])
          const view = new DataView(run!.buffer)
          const exit = exits.shift()
          if (typeof exit === "number") {
            view.setUint32(8, EXIT.IO, true)
            view.setUint16(34, PROBE_PORT, true)
            view.setBigUint64(40, 1024n, true)
            run![1024] = exit
          } else view.setUint32(8, exit === "hlt" ? EXIT.HLT : exit === "internal-error" ? EXIT.INTERNAL_ERROR : 8, true)
          return 0
        }
        default:
          throw new Error(`unexpected ioctl ${request.toString(16)}`)
      }
    },
    mmap: (length, fd): Mapping => {
      const entry = { bytes: new Uint8Array(length), unmapped: false }
      maps.push(entry)
      if (fd !== undefined) run = entry.bytes
      return { address: BigInt(maps.length) * 0x1000n, bytes: entry.bytes, unmap: () => void (entry.unmapped = true) }
    },
    close: (fd) => {
      expect(open.delete(fd)).toBe(true)
    },
    pvmLoaded: () => kernel.pvm ?? false
  }
  return { sys, leftOpen: () => [...open], leftMapped: () => maps.filter((m) => !m.unmapped).length }
}

describe("probeKvm (fake ioctl layer)", () => {
  it("is usable when the probe guest runs natively (port write of 8, then halt), and closes what it opened", () => {
    const fake = fakeSyscalls({})
    expect(probeKvm(fake.sys, "x64")).toEqual({ usable: true, reason: "/dev/kvm runs guest code natively (API 12, the extensions cloud-hypervisor needs)" })
    expect(fake.leftOpen()).toEqual([])
    expect(fake.leftMapped()).toBe(0)
  })

  it.each([
    [{ run: ["internal-error"], pvm: true } as FakeKernel, /^\/dev\/kvm is PVM \(kvm_pvm\): it emulates rather than virtualizes guest code/],
    [{ run: ["internal-error"] } as FakeKernel, /^\/dev\/kvm cannot execute ordinary guest instructions/],
    [{ run: [7, "hlt"] } as FakeKernel, /computed 7 instead of 8/],
    [{ run: ["shutdown"] } as FakeKernel, /exit reason 8/],
    [{ apiVersion: 11 } as FakeKernel, /speaks KVM API 11, not 12/],
    [{ missingCaps: [136, 121] } as FakeKernel, /lacks what cloud-hypervisor needs: KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SPLIT_IRQCHIP$/],
    [{ openErrno: 2 } as FakeKernel, /does not exist: no KVM on this host/],
    [{ openErrno: 13 } as FakeKernel, /not accessible to this user.*usermod -aG kvm/]
  ])("is unusable for %j, saying why, and closes what it opened", (kernel, reason) => {
    const fake = fakeSyscalls(kernel)
    const verdict = probeKvm(fake.sys, "x64")
    expect(verdict.usable).toBe(false)
    expect(verdict.reason).toMatch(reason)
    expect(fake.leftOpen()).toEqual([])
    expect(fake.leftMapped()).toBe(0)
  })

  it("off x86 checks the API and the common extensions only (no reset vector to run from)", () => {
    const fake = fakeSyscalls({ missingCaps: REQUIRED_CAPS["x64"]!.map(([, n]) => n), run: [] })
    expect(probeKvm(fake.sys, "arm64")).toMatchObject({ usable: true })
    expect(fake.leftOpen()).toEqual([])
  })

  it("honours BOXLITE_ACCEL (kvm skips the probe; anything else refuses: no TCG here)", async () => {
    expect(await kvmVerdict({ BOXLITE_ACCEL: "kvm" })).toEqual({ usable: true, reason: "set by BOXLITE_ACCEL" })
    expect(await kvmVerdict({ BOXLITE_ACCEL: "tcg" })).toEqual({ usable: false, reason: "BOXLITE_ACCEL=tcg: the kvm driver runs on KVM only" })
  })
})

describe("probeKvm on this host (libc through koffi)", () => {
  const pvm = fs.existsSync("/sys/module/kvm_pvm")
  const device = fs.existsSync("/dev/kvm")
  const hardware = /^flags\s*:.*\b(vmx|svm)\b/m.test(fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : "")
  it.skipIf(process.platform !== "linux")("answers what is true here", async () => {
    const verdict = probeKvm(await libcSyscalls())
    console.log(`KVM probe on this host (kvm_pvm loaded: ${pvm}, /dev/kvm: ${device}, vmx/svm: ${hardware}): ${JSON.stringify(verdict)}`)
    if (!device) expect(verdict.reason).toMatch(/does not exist/)
    else if (pvm && !hardware) expect(verdict).toEqual({ usable: false, reason: expect.stringMatching(/^\/dev\/kvm is PVM \(kvm_pvm\)/) })
    else if (verdict.usable) expect(hardware || process.arch !== "x64").toBe(true)
    else expect(verdict.reason).toMatch(/not accessible|lacks|emulation failure|API/)
  })
})

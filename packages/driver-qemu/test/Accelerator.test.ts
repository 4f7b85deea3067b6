import { describe, expect, it } from "vitest"
import { chooseAccelerator, type HostProbe } from "@boxlite/driver-qemu"

const kvmHost: HostProbe = { platform: "linux", override: undefined, kvmDeviceUsable: true, cpuHasVirtualization: true, kvmIsPvm: false }

describe("chooseAccelerator", () => {
  it("uses KVM only where it can run a normal guest", () => {
    expect(chooseAccelerator(kvmHost).accelerator).toBe("kvm")
  })

  it.each([
    [{ kvmDeviceUsable: false }, /\/dev\/kvm is missing/],
    [{ kvmIsPvm: true }, /PVM/],
    [{ cpuHasVirtualization: false }, /vmx\/svm/]
  ])("falls back to TCG when %j, and says why", (change, reason) => {
    const choice = chooseAccelerator({ ...kvmHost, ...change })
    expect(choice.accelerator).toBe("tcg")
    expect(choice.reason).toMatch(reason)
  })

  it("uses HVF on macOS and honours BOXLITE_ACCEL", () => {
    expect(chooseAccelerator({ ...kvmHost, platform: "darwin" }).accelerator).toBe("hvf")
    expect(chooseAccelerator({ ...kvmHost, override: "tcg" })).toEqual({ accelerator: "tcg", reason: "set by BOXLITE_ACCEL" })
    expect(() => chooseAccelerator({ ...kvmHost, override: "xen" })).toThrow(/BOXLITE_ACCEL must be kvm, hvf or tcg/)
  })
})

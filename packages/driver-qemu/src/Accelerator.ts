/**
 * Which accelerator QEMU should use, decided by probing rather than by `/dev/kvm` existing:
 * some hosts (nested clouds with PVM) have a /dev/kvm that cannot run a normal guest kernel.
 */
import * as fs from "node:fs"

export type Accelerator = "kvm" | "hvf" | "tcg"

export interface AcceleratorChoice {
  readonly accelerator: Accelerator
  readonly reason: string
}

export interface HostProbe {
  readonly platform: NodeJS.Platform
  readonly override: string | undefined
  readonly kvmDeviceUsable: boolean
  readonly cpuHasVirtualization: boolean
  readonly kvmIsPvm: boolean
}

export const probeHost = (): HostProbe => {
  const readable = (file: string) => {
    try {
      return fs.readFileSync(file, "utf8")
    } catch {
      return ""
    }
  }
  let kvmDeviceUsable = false
  try {
    fs.accessSync("/dev/kvm", fs.constants.R_OK | fs.constants.W_OK)
    kvmDeviceUsable = true
  } catch {
    kvmDeviceUsable = false
  }
  return {
    platform: process.platform,
    override: process.env["BOXLITE_ACCEL"] || undefined,
    kvmDeviceUsable,
    cpuHasVirtualization: /^flags\s*:.*\b(vmx|svm)\b/m.test(readable("/proc/cpuinfo")) || (process.arch === "arm64" && kvmDeviceUsable),
    kvmIsPvm: fs.existsSync("/sys/module/kvm_pvm")
  }
}

/** Pure decision from a probe, so every branch is testable on any host. */
export const chooseAccelerator = (probe: HostProbe): AcceleratorChoice => {
  if (probe.override !== undefined) {
    if (probe.override !== "kvm" && probe.override !== "tcg" && probe.override !== "hvf") {
      throw new Error(`BOXLITE_ACCEL must be kvm, hvf or tcg (got "${probe.override}")`)
    }
    return { accelerator: probe.override, reason: "set by BOXLITE_ACCEL" }
  }
  if (probe.platform === "darwin") return { accelerator: "hvf", reason: "macOS Hypervisor.framework" }
  if (probe.platform !== "linux") return { accelerator: "tcg", reason: `no hardware accelerator support on ${probe.platform}` }
  if (!probe.kvmDeviceUsable) return { accelerator: "tcg", reason: "/dev/kvm is missing or not accessible (software emulation, slower)" }
  if (probe.kvmIsPvm) return { accelerator: "tcg", reason: "/dev/kvm is PVM (kvm_pvm), which cannot run a standard guest kernel (software emulation, slower)" }
  if (!probe.cpuHasVirtualization) return { accelerator: "tcg", reason: "the CPU exposes no vmx/svm virtualization (software emulation, slower)" }
  return { accelerator: "kvm", reason: "/dev/kvm usable and the CPU has hardware virtualization" }
}

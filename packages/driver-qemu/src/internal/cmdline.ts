import * as fs from "node:fs"

/**
 * Under TCG on microvm the guest has no PIT/HPET to calibrate its TSC against and hangs in
 * 10-30 % of boots; telling it the frequency fixes that. TCG's guest TSC is the host's TSC.
 */
export const hostTscKhz = (): number | undefined => {
  try {
    const cpuinfo = fs.readFileSync("/proc/cpuinfo", "utf8")
    const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]
    return mhz ? Math.round(Number(mhz) * 1000) : undefined
  } catch {
    return undefined
  }
}

/**
 * What the host must have: macOS on Apple Silicon with Hypervisor.framework usable, vfkit, and an
 * arm64 guest kernel.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

/**
 * `sysctlbyname("kern.hv_support")` from libSystem: 1 when Hypervisor.framework can run VMs (0 on
 * a Mac VM without nested virtualization, for one). Throws when the call cannot be made.
 */
export const probeHvSupport = (): boolean => {
  // Loaded here only: koffi's native module has no business in a process that never runs a box on macOS.
  const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi")
  const libSystem = koffi.load("/usr/lib/libSystem.B.dylib")
  const sysctlbyname = libSystem.func("int sysctlbyname(const char *name, _Out_ int *oldp, _Inout_ size_t *oldlenp, void *newp, size_t newlen)")
  const value = [0]
  const length = [4]
  const rc = sysctlbyname("kern.hv_support", value, length, null, 0) as number
  // Absent (ENOENT) on Macs older than Hypervisor.framework: no support either.
  return rc === 0 && value[0] === 1
}

/** Where Homebrew puts vfkit (Apple Silicon, Intel): a Node started from the Dock lacks them on PATH. */
const HOMEBREW_BIN = ["/opt/homebrew/bin", "/usr/local/bin"]

const isExecutable = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** `name` if it is a path, else the first executable `name` on PATH, then in Homebrew's bin directories. */
export const findVfkit = (name: string): string | undefined => {
  if (name.includes("/")) return isExecutable(name) ? name : undefined
  return [...(process.env["PATH"] ?? "").split(path.delimiter), ...HOMEBREW_BIN].filter(Boolean).map((dir) => path.join(dir, name)).find(isExecutable)
}

/** The arm64 Linux boot image header's magic, "ARM\x64" at offset 56 (Documentation/arch/arm64/booting.rst). */
const ARM64_MAGIC = Buffer.from("ARM\x64", "latin1")

/**
 * Undefined when `kernel` is an uncompressed arm64 Image (what Virtualization.framework boots),
 * else why not: the project's own guest build is x86_64.
 */
export const kernelProblem = (kernel: string): string | undefined => {
  let header: Buffer
  try {
    const fd = fs.openSync(kernel, "r")
    try {
      header = Buffer.alloc(64)
      header = header.subarray(0, fs.readSync(fd, header, 0, 64, 0))
    } finally {
      fs.closeSync(fd)
    }
  } catch (e) {
    return `cannot read the guest kernel ${kernel}: ${(e as Error).message}`
  }
  if (header.length === 64 && header.subarray(56, 60).equals(ARM64_MAGIC)) return undefined
  const what = header.subarray(0, 4).equals(Buffer.from("\x7fELF", "latin1"))
    ? "an ELF kernel (the x86_64 guest of @boxlite/guest?)"
    : header.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])) ? "a compressed kernel (vfkit boots uncompressed ones)" : "not an arm64 Image"
  return `the guest kernel ${kernel} is ${what}: the hvf driver boots an uncompressed arm64 Linux Image (set BOXLITE_HVF_GUEST to an arm64 guest build, see @boxlite/driver-hvf's README)`
}

/** An arm64 guest build: a directory with manifest.json `{ kernel, initrd, cmdline }` beside its files, as guest/dist has. */
export const readGuestDir = (dir: string): { kernel: string; initrd: string; cmdline: string } => {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as { kernel?: unknown; initrd?: unknown; cmdline?: unknown }
  if (typeof manifest.kernel !== "string" || typeof manifest.initrd !== "string" || typeof manifest.cmdline !== "string") {
    throw new Error(`${dir}/manifest.json must name kernel, initrd and cmdline`)
  }
  return { kernel: path.resolve(dir, manifest.kernel), initrd: path.resolve(dir, manifest.initrd), cmdline: manifest.cmdline }
}

import { describe, expect, it } from "vitest"
import { virtiofsdFilter } from "@boxlite/driver-qemu"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const ALLOW = 0x7fff0000
const KILL_PROCESS = 0x80000000
const errno = (n: number) => 0x00050000 | n
const EPERM = 1
const ENOSYS = 38

/** Runs a classic-BPF seccomp program (the opcodes it may use) on one syscall, as the kernel would. */
const run = (program: Buffer, call: { arch: number; nr: number; args?: Array<number> }): number => {
  const data = Buffer.alloc(64)
  data.writeUInt32LE(call.nr, 0)
  data.writeUInt32LE(call.arch, 4)
  for (const [i, arg] of (call.args ?? []).entries()) data.writeBigUInt64LE(BigInt(arg), 16 + 8 * i)
  let a = 0
  for (let pc = 0; pc < program.length / 8;) {
    const code = program.readUInt16LE(pc * 8)
    const jt = program.readUInt8(pc * 8 + 2)
    const jf = program.readUInt8(pc * 8 + 3)
    const k = program.readUInt32LE(pc * 8 + 4)
    pc++
    switch (code) {
      case 0x20: a = data.readUInt32LE(k); break // ld [k]
      case 0x54: a = (a & k) >>> 0; break // and #k
      case 0x15: pc += a === k ? jt : jf; break // jeq
      case 0x35: pc += a >= k ? jt : jf; break // jge
      case 0x45: pc += (a & k) !== 0 ? jt : jf; break // jset
      case 0x06: return k // ret
      default: throw new Error(`unexpected opcode ${code.toString(16)} at ${pc - 1}`)
    }
  }
  throw new Error("fell off the end of the program")
}

describe("virtiofsd's seccomp program", () => {
  const x64 = virtiofsdFilter("x64")
  const X64 = 0xc000003e
  const arm64 = virtiofsdFilter("arm64")
  const ARM64 = 0xc00000b7

  it("refuses setuid/setgid modes on every x86_64 call that sets one, and allows the rest", () => {
    const cases: Array<[string, number, number, number]> = [
      ["chmod", 90, 1, 0o4755], ["fchmod", 91, 1, 0o2755], ["fchmodat", 268, 2, 0o6755], ["fchmodat2", 452, 2, 0o4000],
      ["open", 2, 2, 0o4755], ["creat", 85, 1, 0o2644], ["openat", 257, 3, 0o4755], ["mkdir", 83, 1, 0o2755], ["mkdirat", 258, 2, 0o2755],
      ["mknod", 133, 1, 0o104755], ["mknodat", 259, 2, 0o102644]
    ]
    for (const [name, nr, index, mode] of cases) {
      const args = [0, 0, 0, 0]
      args[index] = mode
      expect(run(x64, { arch: X64, nr, args }), name).toBe(errno(EPERM))
      args[index] = mode & 0o1777
      expect(run(x64, { arch: X64, nr, args }), `${name} without the bits`).toBe(ALLOW)
    }
    // Only the mode argument counts: a flag with the same bits elsewhere is not a mode.
    expect(run(x64, { arch: X64, nr: 257, args: [0, 0, 0o4000, 0o644] })).toBe(ALLOW)
    // The kernel reads mode_t, 32 bits: garbage above them changes nothing.
    expect(run(x64, { arch: X64, nr: 90, args: [0, 0x1_0000_0000 + 0o755] })).toBe(ALLOW)
  })

  it("refuses char and block devices but not fifos, sockets or files", () => {
    const S_IFCHR = 0o020000, S_IFBLK = 0o060000, S_IFIFO = 0o010000, S_IFSOCK = 0o140000, S_IFREG = 0o100000
    expect(run(x64, { arch: X64, nr: 259, args: [0, 0, S_IFCHR | 0o666, 0x103] })).toBe(errno(EPERM))
    expect(run(x64, { arch: X64, nr: 133, args: [0, S_IFBLK | 0o600, 0x700] })).toBe(errno(EPERM))
    for (const kind of [S_IFIFO, S_IFSOCK, S_IFREG]) expect(run(x64, { arch: X64, nr: 259, args: [0, 0, kind | 0o644, 0] })).toBe(ALLOW)
  })

  it("refuses xattrs (file capabilities), openat2 and io_uring, other ABIs and other architectures", () => {
    for (const nr of [188, 189, 190]) expect(run(x64, { arch: X64, nr })).toBe(errno(EPERM))
    expect(run(x64, { arch: X64, nr: 437 })).toBe(errno(ENOSYS))
    expect(run(x64, { arch: X64, nr: 425 })).toBe(errno(ENOSYS))
    expect(run(x64, { arch: X64, nr: 0x40000000 | 90, args: [0, 0o4755] })).toBe(errno(ENOSYS))
    expect(run(x64, { arch: 0x40000003, nr: 15 })).toBe(KILL_PROCESS)
    expect(run(x64, { arch: ARM64, nr: 0 })).toBe(KILL_PROCESS)
    expect(run(x64, { arch: X64, nr: 0 })).toBe(ALLOW)
  })

  it("uses aarch64's own numbers there", () => {
    expect(run(arm64, { arch: ARM64, nr: 53, args: [0, 0, 0o4755] })).toBe(errno(EPERM)) // fchmodat
    expect(run(arm64, { arch: ARM64, nr: 56, args: [0, 0, 0, 0o2755] })).toBe(errno(EPERM)) // openat
    expect(run(arm64, { arch: ARM64, nr: 33, args: [0, 0, 0o020666, 0] })).toBe(errno(EPERM)) // mknodat
    expect(run(arm64, { arch: ARM64, nr: 7 })).toBe(errno(EPERM)) // fsetxattr
    // 90 is chmod on x86_64 but capget on aarch64.
    expect(run(arm64, { arch: ARM64, nr: 90, args: [0, 0o4755] })).toBe(ALLOW)
    expect(run(arm64, { arch: X64, nr: 0 })).toBe(KILL_PROCESS)
    expect(() => virtiofsdFilter("ia32")).toThrow(/no seccomp policy/)
  })

  // The kernel's verdict, through the tool the driver loads it with.
  const bwrap = spawnSync("bwrap", ["--version"]).status === 0 && process.arch === "x64"
  it.skipIf(!bwrap)("under bwrap --seccomp: chmod 4755 and mknod c fail with EPERM, chmod 755 and mkfifo work", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-seccomp-"))
    const program = path.join(dir, "filter.bpf")
    fs.writeFileSync(program, virtiofsdFilter())
    fs.copyFileSync("/usr/bin/busybox", path.join(dir, "busybox"))
    const script = "cd \"$1\"; ./busybox chmod 4755 busybox; echo s=$?; ./busybox chmod 755 busybox; echo p=$?; ./busybox mknod n c 1 3; echo c=$?; ./busybox mkfifo f; echo f=$?"
    const fd = fs.openSync(program, "r")
    try {
      const result = spawnSync("bwrap", ["--bind", "/", "/", "--seccomp", "3", "--", "/bin/sh", "-c", script, "sh", dir], {
        stdio: ["ignore", "pipe", "pipe", fd],
        encoding: "utf8"
      })
      expect(result.stdout.split("\n").filter(Boolean), result.stderr).toEqual(["s=1", "p=0", "c=1", "f=0"])
      expect(result.stderr).toMatch(/chmod: busybox: Operation not permitted/)
      expect(fs.statSync(path.join(dir, "busybox")).mode & 0o7777).toBe(0o755)
      expect(fs.existsSync(path.join(dir, "n"))).toBe(false)
    } finally {
      fs.closeSync(fd)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

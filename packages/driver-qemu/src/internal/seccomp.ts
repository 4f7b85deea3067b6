/**
 * The seccomp policy virtiofsd runs under (loaded by `bwrap --seccomp FD`, under virtiofsd's
 * own filter): a file server the guest drives must never give a file setuid/setgid bits or make
 * a device node, whatever the guest asks.
 *
 * Written here as classic BPF rather than through libseccomp (koffi could load it): the policy
 * is a dozen comparisons of one integer argument, and building its bytes in TypeScript keeps
 * native code out of the supervisor and makes the exact program a unit-testable value.
 */

/** `struct seccomp_data` offsets: nr, arch, then six 64-bit args (we read their low word: little-endian hosts). */
const NR = 0
const ARCH = 4
const argLow = (index: number) => 16 + 8 * index

const AUDIT_ARCH = { x64: 0xc000003e, arm64: 0xc00000b7 } as const
/** x86_64 syscall numbers with this bit are the x32 ABI: another table, refused. */
const X32_SYSCALL_BIT = 0x40000000

const RET_KILL_PROCESS = 0x80000000
const RET_ERRNO = 0x00050000
const RET_ALLOW = 0x7fff0000
const EPERM = 1
const ENOSYS = 38

const S_ISUID_ISGID = 0o6000
const S_IFMT = 0o170000
const S_IFCHR = 0o020000
const S_IFBLK = 0o060000

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS = 0x20
const JEQ_K = 0x15
const JGE_K = 0x35
const JSET_K = 0x45
const AND_K = 0x54
const RET_K = 0x06

interface Insn {
  readonly code: number
  readonly jt: number
  readonly jf: number
  readonly k: number
}

const insn = (code: number, k: number, jt = 0, jf = 0): Insn => ({ code, jt, jf, k: k >>> 0 })

/**
 * What a syscall may do: `mode` = index of its mode argument, refused with EPERM when it sets
 * S_ISUID or S_ISGID (and, with `device`, when it makes a char or block device); `deny` = refused
 * outright with that errno.
 */
type Rule = { readonly nr: number; readonly mode: number; readonly device?: boolean } | { readonly nr: number; readonly deny: number }

/**
 * Per architecture. openat2 carries its mode in a struct seccomp cannot read: ENOSYS (callers
 * fall back to openat). xattrs are off in virtiofsd (`-o no_xattr`); refusing them here too keeps
 * file capabilities (security.capability) out. io_uring would bypass all of this.
 */
const RULES: Record<keyof typeof AUDIT_ARCH, ReadonlyArray<Rule>> = {
  x64: [
    { nr: 2, mode: 2 }, // open(path, flags, mode)
    { nr: 85, mode: 1 }, // creat(path, mode)
    { nr: 90, mode: 1 }, // chmod(path, mode)
    { nr: 91, mode: 1 }, // fchmod(fd, mode)
    { nr: 83, mode: 1 }, // mkdir(path, mode)
    { nr: 133, mode: 1, device: true }, // mknod(path, mode, dev)
    { nr: 257, mode: 3 }, // openat(dirfd, path, flags, mode)
    { nr: 258, mode: 2 }, // mkdirat(dirfd, path, mode)
    { nr: 259, mode: 2, device: true }, // mknodat(dirfd, path, mode, dev)
    { nr: 268, mode: 2 }, // fchmodat(dirfd, path, mode)
    { nr: 452, mode: 2 }, // fchmodat2(dirfd, path, mode, flags)
    { nr: 437, deny: ENOSYS }, // openat2
    { nr: 188, deny: EPERM }, // setxattr
    { nr: 189, deny: EPERM }, // lsetxattr
    { nr: 190, deny: EPERM }, // fsetxattr
    { nr: 463, deny: EPERM }, // setxattrat
    { nr: 425, deny: ENOSYS } // io_uring_setup
  ],
  // The generic table: no open, creat, chmod, mkdir or mknod, only their *at forms.
  arm64: [
    { nr: 52, mode: 1 }, // fchmod
    { nr: 56, mode: 3 }, // openat
    { nr: 34, mode: 2 }, // mkdirat
    { nr: 33, mode: 2, device: true }, // mknodat
    { nr: 53, mode: 2 }, // fchmodat
    { nr: 452, mode: 2 }, // fchmodat2
    { nr: 437, deny: ENOSYS }, // openat2
    { nr: 5, deny: EPERM }, // setxattr
    { nr: 6, deny: EPERM }, // lsetxattr
    { nr: 7, deny: EPERM }, // fsetxattr
    { nr: 463, deny: EPERM }, // setxattrat
    { nr: 425, deny: ENOSYS } // io_uring_setup
  ]
}

/** The checks of one rule, entered with A = nr and ending in a return on every path. */
const body = (rule: Rule): Array<Insn> => {
  if ("deny" in rule) return [insn(RET_K, RET_ERRNO | rule.deny)]
  const refuse = insn(RET_K, RET_ERRNO | EPERM)
  const allow = insn(RET_K, RET_ALLOW)
  if (!rule.device) {
    return [insn(LD_W_ABS, argLow(rule.mode)), insn(JSET_K, S_ISUID_ISGID, 0, 1), refuse, allow]
  }
  return [
    insn(LD_W_ABS, argLow(rule.mode)),
    insn(JSET_K, S_ISUID_ISGID, 4, 0),
    insn(AND_K, S_IFMT),
    insn(JEQ_K, S_IFCHR, 2, 0),
    insn(JEQ_K, S_IFBLK, 1, 0),
    allow,
    refuse
  ]
}

/** The filter as `struct sock_filter[]` bytes for `arch` (a `process.arch` value). */
export const virtiofsdFilter = (arch: string = process.arch): Buffer => {
  if (!(arch in AUDIT_ARCH)) throw new Error(`no seccomp policy for ${arch} hosts`)
  const key = arch as keyof typeof AUDIT_ARCH
  const program: Array<Insn> = [
    insn(LD_W_ABS, ARCH),
    insn(JEQ_K, AUDIT_ARCH[key], 1, 0),
    insn(RET_K, RET_KILL_PROCESS),
    insn(LD_W_ABS, NR),
    ...(key === "x64" ? [insn(JGE_K, X32_SYSCALL_BIT, 0, 1), insn(RET_K, RET_ERRNO | ENOSYS)] : [])
  ]
  for (const rule of RULES[key]) {
    const checks = body(rule)
    program.push(insn(JEQ_K, rule.nr, 0, checks.length), ...checks)
  }
  program.push(insn(RET_K, RET_ALLOW))
  const bytes = Buffer.alloc(program.length * 8)
  program.forEach((i, n) => {
    bytes.writeUInt16LE(i.code, n * 8)
    bytes.writeUInt8(i.jt, n * 8 + 2)
    bytes.writeUInt8(i.jf, n * 8 + 3)
    bytes.writeUInt32LE(i.k, n * 8 + 4)
  })
  return bytes
}

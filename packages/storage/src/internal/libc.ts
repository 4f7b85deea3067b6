/**
 * The two libc calls node has no binding for, made through koffi. The symbols are looked up
 * in the process's global scope (`load(null)`), not in libc.so itself, so that under fakeroot
 * its LD_PRELOADed wrappers answer: device nodes and xattrs are then recorded by fakeroot
 * (and written by `mke2fs -d`) without host root.
 */
import koffi from "koffi"
import { constants } from "node:os"

const globalScope = koffi.load(null)
const mknodCall = globalScope.func("int mknod(const char *path, uint32_t mode, uint64_t dev)")
const lsetxattrCall = globalScope.func("int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)")

const fail = (call: string, file: string): never => {
  const errno = koffi.errno()
  const code = Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`
  throw Object.assign(new Error(`${call} ${file}: ${code}`), { code })
}

/** glibc's makedev(): the 64-bit dev_t layout of Linux. */
const makedev = (major: number, minor: number): bigint => {
  const maj = BigInt(major)
  const min = BigInt(minor)
  return ((maj & 0xfffff000n) << 32n) | ((maj & 0xfffn) << 8n) | ((min & 0xffffff00n) << 12n) | (min & 0xffn)
}

/** Creates a character or block device or a FIFO; `mode` includes the file-type bits. */
export const mknod = (file: string, mode: number, major = 0, minor = 0): void => {
  if (mknodCall(file, mode, makedev(major, minor)) !== 0) fail("mknod", file)
}

/** Sets an extended attribute on `file` itself (a symlink is not followed). */
export const lsetxattr = (file: string, name: string, value: Buffer): void => {
  if (lsetxattrCall(file, name, value, value.length, 0) !== 0) fail("lsetxattr", file)
}

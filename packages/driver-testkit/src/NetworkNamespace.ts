/**
 * A VM test file's own network namespace. Its process (the main thread, which spawns every
 * VMM, network helper and supervisor) moves into a new namespace with `lo` and a default route
 * into a veth pair of its own: what its guests probe (10.0.2.2 unmapped, any address) goes nowhere
 * and never leaves the machine, the host's routes are never touched, and concurrent runs cannot collide on
 * them. Linux, as root; call it before the file opens a socket or spawns a process.
 */
import { execFileSync } from "node:child_process"
import { createRequire } from "node:module"

const CLONE_NEWNET = 0x40000000

export const enterOwnNetworkNamespace = (): void => {
  // Node has no unshare(2): libc's, through koffi (loaded here only: unit tests never need it).
  const koffi = createRequire(import.meta.url)("koffi") as { load: (lib: string) => { func: (signature: string) => (flags: number) => number } }
  const unshare = koffi.load("libc.so.6").func("int unshare(int flags)")
  if (unshare(CLONE_NEWNET) !== 0) throw new Error("unshare(CLONE_NEWNET) failed: VM network tests need root on Linux")
  execFileSync("ip", ["link", "set", "lo", "up"])
  // A host network for pasta to copy (it needs an interface with a default route): a veth pair
  // both of whose ends are in this namespace, the gateway nobody (its ARP is never answered),
  // so what is routed there goes nowhere.
  execFileSync("ip", ["link", "add", "bl-nowhere", "type", "veth", "peer", "name", "bl-nowhere-p"])
  execFileSync("ip", ["addr", "add", "192.0.2.1/24", "dev", "bl-nowhere"])
  for (const end of ["bl-nowhere", "bl-nowhere-p"]) execFileSync("ip", ["link", "set", end, "up"])
  execFileSync("ip", ["route", "add", "default", "via", "192.0.2.254", "dev", "bl-nowhere"])
}

/**
 * The processes a VM needs beside QEMU: passt (user-mode network) and one virtiofsd per
 * volume. Each dies with the VM and with the process that started it: virtiofsd through
 * setpriv --pdeathsig, passt through the end of its socketpair (see passtArgs).
 */
import { GUEST_NETWORK, type VmNetwork, type VmVolume } from "@boxlite/core"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import type { Stream } from "node:stream"

export const VIRTIOFSD = "/usr/lib/qemu/virtiofsd"

export interface Helper {
  readonly name: string
  readonly process: ChildProcess
  /** What it printed on stderr (the last 4 KiB), for error messages. */
  readonly stderr: () => string
}

/** The descriptor on which passt and QEMU each inherit one end of their socketpair. */
export const PASST_FD = 3

/**
 * passt runs on a socketpair shared with QEMU (`--fd`), not on a socket file, and quits when
 * the other end closes (`--fd` implies `--one-off`). That ties it to the VM and to this process:
 * setpriv's pdeathsig cannot, because passt's own privilege drop and sandbox clear it. The
 * other end is held by QEMU (killed by pdeathsig) or, until QEMU starts, by this process.
 */
export const passtArgs = (network: VmNetwork): Array<string> => {
  // passt 2023-03 sends replies to UDP datagrams forwarded from the host's loopback to the
  // real gateway address when --no-map-gw is on, so UDP forwards need the mapping.
  const mapGateway = network.allowHostLoopback || network.ports.some((p) => p.protocol === "udp")
  return [
    "--quiet", "--foreground", "--fd", String(PASST_FD), "--ipv4-only",
    "--address", GUEST_NETWORK.address, "--netmask", "255.255.255.0", "--gateway", GUEST_NETWORK.gateway,
    "--dns-forward", GUEST_NETWORK.dns,
    ...(mapGateway ? [] : ["--no-map-gw"]),
    ...network.ports.flatMap((p) => [p.protocol === "tcp" ? "-t" : "-u", `${p.hostIp}/${p.hostPort}:${p.guestPort}`])
  ]
}

/**
 * virtiofsd (QEMU 7.2's) has no read-only mode and shares whole directories. So it runs in a
 * private mount namespace (a user namespace without root) where a read-only volume is a
 * read-only bind mount of it at `stageDir` (the guest cannot write even if it remounts), and a single-file volume
 * is an empty tmpfs at `stageDir` holding a bind mount of that one file (the guest sees none
 * of its siblings).
 */
export const virtiofsdArgv = (socket: string, volume: VmVolume, isRoot: boolean, stageDir: string): Array<string> => {
  const file = volume.file
  // A read-only share is a read-only bind at the stage, not at its own path: remounting the
  // path itself would also make read-only the run directory (the daemon's socket) under it.
  const shared = file || volume.readOnly ? stageDir : volume.hostPath
  // fuse -o values are comma-separated; a comma in the path must be escaped.
  const source = shared.replaceAll("\\", "\\\\").replaceAll(",", "\\,")
  const daemon = [VIRTIOFSD, `--socket-path=${socket}`, "-o", `source=${source}`, "-o", "cache=auto", "-o", "sandbox=chroot"]
  if (!volume.readOnly && !file) return daemon
  const namespace = isRoot ? ["unshare", "--mount", "--propagation", "private"] : ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
  const readOnly = (target: string) => (volume.readOnly ? ` && mount -o remount,bind,ro ${target}` : "")
  const [steps, args] = file
    ? [`mount -t tmpfs -o mode=0755 boxlite "$1" && touch "$1/$3" && mount --bind "$2/$3" "$1/$3"${readOnly('"$1/$3"')} && shift 3`, [stageDir, volume.hostPath, file]]
    : [`mount --bind "$2" "$1"${readOnly('"$1"')} && shift 2`, [stageDir, volume.hostPath]]
  return [...namespace, "sh", "-c", `${steps} && exec "$@"`, "sh", ...args, ...daemon]
}

/** `inherit`: descriptors from PASST_FD on, passed to the helper (a socketpair end, or "pipe" for a new one). */
export const startHelper = (name: string, argv: Array<string>, setpriv: string | undefined, inherit: Array<"pipe" | Stream> = []): Helper => {
  const [file, ...args] = setpriv ? [setpriv, "--pdeathsig", "KILL", "--", ...argv] : argv
  const child = spawn(file!, args, { stdio: ["ignore", "ignore", "pipe", ...inherit] })
  let stderr = ""
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4096)
  })
  child.on("error", (e) => {
    stderr += `cannot start: ${e.message}`
  })
  return { name, process: child, stderr: () => stderr.trim() }
}

/** Resolves once `socket` exists; rejects with the helper's stderr if it exits first or is too slow. */
export const waitForSocket = async (helper: Helper, socket: string, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!fs.existsSync(socket)) {
    if (helper.process.exitCode !== null || helper.process.signalCode !== null) {
      throw new Error(`${helper.name} exited: ${helper.stderr() || `code ${helper.process.exitCode}`}`)
    }
    if (Date.now() > deadline) throw new Error(`${helper.name} did not create ${socket} within ${timeoutMs} ms: ${helper.stderr()}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export const stopHelper = (helper: Helper): Promise<void> =>
  new Promise((resolve) => {
    if (helper.process.exitCode !== null || helper.process.signalCode !== null || helper.process.pid === undefined) return resolve()
    helper.process.once("exit", () => resolve())
    helper.process.kill("SIGKILL")
  })

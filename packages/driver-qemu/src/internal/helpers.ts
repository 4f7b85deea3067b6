/**
 * The processes a VM needs beside QEMU: passt (user-mode network) and one virtiofsd per
 * volume. Each dies with the process that started it (setpriv --pdeathsig) and with the VM.
 */
import { GUEST_NETWORK, type VmNetwork, type VmVolume } from "@boxlite/core"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"

export const VIRTIOFSD = "/usr/lib/qemu/virtiofsd"

export interface Helper {
  readonly name: string
  readonly process: ChildProcess
  /** What it printed on stderr (the last 4 KiB), for error messages. */
  readonly stderr: () => string
}

export const passtArgs = (socket: string, network: VmNetwork): Array<string> => {
  // passt 2023-03 sends replies to UDP datagrams forwarded from the host's loopback to the
  // real gateway address when --no-map-gw is on, so UDP forwards need the mapping.
  const mapGateway = network.allowHostLoopback || network.ports.some((p) => p.protocol === "udp")
  return [
    "--quiet", "--foreground", "--socket", socket, "--ipv4-only",
    "--address", GUEST_NETWORK.address, "--netmask", "255.255.255.0", "--gateway", GUEST_NETWORK.gateway,
    "--dns-forward", GUEST_NETWORK.dns,
    ...(mapGateway ? [] : ["--no-map-gw"]),
    ...network.ports.flatMap((p) => [p.protocol === "tcp" ? "-t" : "-u", `${p.hostIp}/${p.hostPort}:${p.guestPort}`])
  ]
}

/**
 * virtiofsd (QEMU 7.2's) has no read-only mode and shares whole directories. So it runs in a
 * private mount namespace (a user namespace without root) where a read-only volume is a
 * read-only bind mount (the guest cannot write even if it remounts), and a single-file volume
 * is an empty tmpfs at `stageDir` holding a bind mount of that one file (the guest sees none
 * of its siblings).
 */
export const virtiofsdArgv = (socket: string, volume: VmVolume, isRoot: boolean, stageDir: string): Array<string> => {
  const file = volume.file
  const shared = file ? stageDir : volume.hostPath
  // fuse -o values are comma-separated; a comma in the path must be escaped.
  const source = shared.replaceAll("\\", "\\\\").replaceAll(",", "\\,")
  const daemon = [VIRTIOFSD, `--socket-path=${socket}`, "-o", `source=${source}`, "-o", "cache=auto", "-o", "sandbox=chroot"]
  if (!volume.readOnly && !file) return daemon
  const namespace = isRoot ? ["unshare", "--mount", "--propagation", "private"] : ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
  const readOnly = (target: string) => (volume.readOnly ? ` && mount -o remount,bind,ro ${target}` : "")
  const [steps, args] = file
    ? [`mount -t tmpfs -o mode=0755 boxlite "$1" && touch "$1/$3" && mount --bind "$2/$3" "$1/$3"${readOnly('"$1/$3"')} && shift 3`, [stageDir, volume.hostPath, file]]
    : [`mount --bind "$1" "$1"${readOnly('"$1"')} && shift`, [volume.hostPath]]
  return [...namespace, "sh", "-c", `${steps} && exec "$@"`, "sh", ...args, ...daemon]
}

export const startHelper = (name: string, argv: Array<string>, setpriv: string | undefined): Helper => {
  const [file, ...args] = setpriv ? [setpriv, "--pdeathsig", "KILL", "--", ...argv] : argv
  const child = spawn(file!, args, { stdio: ["ignore", "ignore", "pipe"] })
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

/** passt drops root privileges to `nobody`, who must be able to create its socket. */
export const nobodyIds = (): { uid: number; gid: number } => {
  const line = fs.readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("nobody:"))
  const fields = line?.split(":")
  return { uid: Number(fields?.[2] ?? 65534), gid: Number(fields?.[3] ?? 65534) }
}

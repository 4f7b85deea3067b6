/**
 * The processes a VM needs beside QEMU: passt and pasta (user-mode network, see network.ts) and
 * one virtiofsd per volume. Each dies with the VM and with the process that started it:
 * virtiofsd through setpriv --pdeathsig, passt through the end of its socketpair, pasta with
 * passt's namespace.
 */
import type { VmVolume } from "@boxlite/core"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
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

/** Where QEMU 7.2's virtiofsd writes a pid file per socket (and leaves it behind when killed). */
const PID_DIR = "/var/run/virtiofsd"

/**
 * Whom virtiofsd runs as. `root`: in a private mount namespace. Otherwise in a user namespace
 * where this user is root, which QEMU 7.2's virtiofsd can start in only if its setgroups() works
 * (it drops every supplementary group first thing): `mapped` has newuidmap/newgidmap map this
 * user to root plus its subordinate ids (`unshare --map-auto`), which leaves setgroups allowed;
 * `self` maps this user alone, setgroups denied, fine for a process without supplementary groups.
 */
export type VirtiofsdUser = "root" | "mapped" | "self"

/**
 * virtiofsd (QEMU 7.2's) has no read-only mode, shares whole directories and wants to write its
 * pid file where only root can. So it runs in a private mount namespace (see VirtiofsdUser)
 * where the volume is bind-mounted at `stageDir`: read-only (the guest cannot write even if it
 * remounts), read-write (recursively, submounts included), or, for a single-file volume, an
 * empty tmpfs holding a bind mount of that one file (the guest sees none of its siblings). The
 * pid file goes to a tmpfs of the namespace: on the host's /var/run/virtiofsd if it exists, else
 * over /var (or /run if the stage is under /var), so nothing is left on the host either.
 */
export const virtiofsdArgv = (socket: string, volume: VmVolume, user: VirtiofsdUser, stageDir: string): Array<string> => {
  // fuse -o values are comma-separated; a comma in the path must be escaped.
  const source = stageDir.replaceAll("\\", "\\\\").replaceAll(",", "\\,")
  const daemon = [VIRTIOFSD, `--socket-path=${socket}`, "-o", `source=${source}`, "-o", "cache=auto", "-o", "sandbox=chroot"]
  const userNamespace = { root: [], mapped: ["--user", "--map-auto", "--map-root-user"], self: ["--user", "--map-root-user"] }[user]
  // Read-only at the stage, not at the volume's own path: remounting that would also make
  // read-only the run directory (the daemon's socket) if it is under the volume.
  const readOnly = (target: string) => (volume.readOnly ? ` && mount -o remount,bind,ro ${target}` : "")
  const share = volume.file
    ? `mount -t tmpfs -o mode=0755 boxlite "$1" && touch "$1/$3" && mount --bind "$2/$3" "$1/$3"${readOnly('"$1/$3"')}`
    : `mount ${volume.readOnly ? "--bind" : "--rbind"} "$2" "$1"${readOnly('"$1"')}`
  const cover = stageDir.startsWith("/var/") ? "/run" : "/var"
  const pidDir = `if [ -d ${PID_DIR} ]; then mount -t tmpfs -o mode=0700 boxlite ${PID_DIR}; else mount -t tmpfs -o mode=0755 boxlite ${cover} && mkdir -p ${PID_DIR}; fi`
  return [
    "unshare", ...userNamespace, "--mount", "--propagation", "private",
    "sh", "-c", `${share} && ${pidDir} && shift 3 && exec "$@"`, "sh", stageDir, volume.hostPath, volume.file ?? "", ...daemon
  ]
}

/** How probeVirtiofsdUser looks at the host; tests replace it. */
export interface HostProbe {
  /** Runs a command, true if it exits 0. */
  readonly run: (argv: Array<string>) => boolean
  /** Whether this process has supplementary groups (from /proc/self/status). */
  readonly supplementaryGroups: () => boolean
}

const hostProbe: HostProbe = {
  run: (argv) => spawnSync(argv[0]!, argv.slice(1), { stdio: "ignore" }).status === 0,
  supplementaryGroups: () => (/^Groups:[ \t]*(.*)$/m.exec(readOrEmpty("/proc/self/status"))?.[1]?.trim() ?? "") !== ""
}

/**
 * The VirtiofsdUser this process can give virtiofsd, probed with `unshare`; throws saying what
 * is missing when there is none.
 */
export const probeVirtiofsdUser = (isRoot: boolean, probe: HostProbe = hostProbe): VirtiofsdUser => {
  if (isRoot) return "root"
  if (probe.run(["unshare", "--user", "--map-auto", "--map-root-user", "true"])) return "mapped"
  if (!probe.supplementaryGroups() && probe.run(["unshare", "--user", "--map-root-user", "true"])) return "self"
  const user = os.userInfo().username
  throw new Error(
    "volumes without root need a user namespace where QEMU 7.2's virtiofsd can drop supplementary groups: " +
      `apt-get install uidmap, and subordinate ids for ${user} in /etc/subuid and /etc/subgid ` +
      `(usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}); \`unshare --user --map-auto --map-root-user true\` must succeed`
  )
}

const readOrEmpty = (file: string): string => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return ""
  }
}

/**
 * `inherit`: descriptors from PASST_FD on, passed to the helper (a socketpair end, or "pipe" for
 * a new one). `env`: added to this process's environment. Its stdout is a pipe (see linesOf in
 * network.ts), read or not.
 */
export const startHelper = (
  name: string,
  argv: Array<string>,
  setpriv: string | undefined,
  inherit: Array<"pipe" | Stream> = [],
  env: Record<string, string> = {}
): Helper => {
  const [file, ...args] = setpriv ? [setpriv, "--pdeathsig", "KILL", "--", ...argv] : argv
  const child = spawn(file!, args, { stdio: ["ignore", "pipe", "pipe", ...inherit], env: { ...process.env, ...env } })
  child.stdout?.resume()
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

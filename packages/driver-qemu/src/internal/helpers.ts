/**
 * The processes a VM needs beside QEMU: passt and pasta (user-mode network, see network.ts) and
 * one virtiofsd per volume. Each dies with the VM and with the process that started it:
 * virtiofsd through setpriv --pdeathsig (and bwrap --die-with-parent), passt through the end of
 * its socketpair, pasta with passt's namespace.
 */
import { outputTail, type VmVolume } from "@boxlite/driver"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
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
const VIRTIOFSD_PID_DIR = "/var/run/virtiofsd"

/** Descriptors virtiofsd's sandbox inherits: its seccomp program (a pipe) and the volume's source. */
export const VIRTIOFSD_FD = { seccomp: 3, source: 4 } as const

/**
 * The user namespace virtiofsd runs in, always: what it creates for the guest then belongs to
 * the runtime's user (namespace root) or to that user's subordinate ids, never to another host
 * user, and device nodes need a capability no user namespace has.
 * - `root`: the runtime is root. Namespace root is host root; with `subordinate` ids for root
 *   (/etc/subuid and /etc/subgid), guest ids from 1 map to them (`unshare --map-auto`), else
 *   they map to nothing and only guest root can create files. Supplementary groups are cleared
 *   first (setgroups is denied in a namespace mapped without newgidmap, and QEMU 7.2's
 *   virtiofsd drops them).
 * - `mapped`: this user is namespace root plus its subordinate ids (`unshare --map-auto`).
 * - `self`: this user alone, setgroups denied, fine for a process without supplementary groups.
 */
export type VirtiofsdUser = { readonly kind: "root"; readonly subordinate: boolean } | { readonly kind: "mapped" } | { readonly kind: "self" }

/** This user as namespace root, plus (`--map-auto`) its first subordinate range from id 1. */
const MAP_AUTO = ["unshare", "--user", "--map-auto", "--map-root-user"]
const MAP_SELF = ["unshare", "--user", "--map-root-user"]

const userNamespace = (user: VirtiofsdUser): Array<string> =>
  user.kind === "mapped" || (user.kind === "root" && user.subordinate) ? MAP_AUTO : MAP_SELF

/**
 * virtiofsd (QEMU 7.2's) has no read-only mode, shares whole directories and wants to write its
 * pid file where only root can. So it runs in a user namespace (VirtiofsdUser), then in bwrap,
 * which gives it a mount namespace of its own files only: `/usr` read-only with the host's
 * top-level program and library links (as the VMM jail has, jail.ts), its own /proc and minimal
 * /dev, the run directory (its socket), the directory of its pid file on bwrap's own root (so
 * nothing is left on the host), and the volume's source, the descriptor
 * VIRTIOFSD_FD.source (bwrap checks the mount is that very object), is bound at `stageDir`:
 * read-only (recursively: the guest cannot write even if it remounts), read-write, or, for a
 * single file, bound in a tiny tmpfs that is then remounted read-only (the guest sees none of
 * the file's siblings and can create none). Mounts there are nodev and nosuid.
 *
 * bwrap then loads the seccomp program read from VIRTIOFSD_FD.seccomp (seccomp.ts: no
 * setuid/setgid bit, no device node) under virtiofsd's own; it comes after the user namespace
 * because its no_new_privs would stop the setuid newuidmap. virtiofsd itself drops CAP_MKNOD,
 * CAP_FSETID and CAP_SETFCAP, and keeps xattrs off (no file capabilities).
 */
export const virtiofsdArgv = (socket: string, volume: VmVolume, user: VirtiofsdUser, stageDir: string, rootLayout: ReadonlyArray<string>): Array<string> => {
  // fuse -o values are comma-separated; a comma in the path must be escaped.
  const source = stageDir.replaceAll("\\", "\\\\").replaceAll(",", "\\,")
  const daemon = [
    VIRTIOFSD, `--socket-path=${socket}`, "-o", `source=${source}`, "-o", "cache=auto", "-o", "sandbox=chroot",
    "-o", "no_xattr", "-o", "modcaps=-mknod:-fsetid:-setfcap"
  ]
  const runDir = path.dirname(socket)
  const bind = [volume.readOnly ? "--ro-bind-fd" : "--bind-fd", String(VIRTIOFSD_FD.source)]
  const share = volume.file
    ? ["--size", "4096", "--perms", "0755", "--tmpfs", stageDir, ...bind, path.join(stageDir, volume.file), "--remount-ro", stageDir]
    : [...bind, stageDir]
  return [
    ...(user.kind === "root" ? ["setpriv", "--clear-groups", "--"] : []),
    ...userNamespace(user),
    "bwrap", "--die-with-parent", "--unshare-ipc", "--unshare-net",
    "--ro-bind", "/usr", "/usr", ...rootLayout, "--proc", "/proc", "--dev", "/dev",
    "--bind", runDir, runDir, "--dir", VIRTIOFSD_PID_DIR, ...share,
    "--seccomp", String(VIRTIOFSD_FD.seccomp), "--", ...daemon
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

/** Whom virtiofsd runs as, and, when that costs a feature, a warning saying what to do. */
export interface VirtiofsdUserChoice {
  readonly user: VirtiofsdUser
  readonly warning: string | undefined
}

/**
 * The VirtiofsdUser this process can give virtiofsd, probed with `unshare`; throws saying what
 * is missing when there is none.
 */
export const probeVirtiofsdUser = (isRoot: boolean, probe: HostProbe = hostProbe): VirtiofsdUserChoice => {
  const user = os.userInfo().username
  const mapAuto = probe.run([...MAP_AUTO, "true"])
  if (isRoot) {
    if (mapAuto) return { user: { kind: "root", subordinate: true }, warning: undefined }
    return {
      user: { kind: "root", subordinate: false },
      warning: "volumes: guest users other than root cannot create files (their ids map to no host id): give root subordinate ids " +
        "that no other user has, e.g. `usermod --add-subuids 1000000-1065535 --add-subgids 1000000-1065535 root` (package uidmap)"
    }
  }
  if (mapAuto) return { user: { kind: "mapped" }, warning: undefined }
  if (!probe.supplementaryGroups() && probe.run([...MAP_SELF, "true"])) return { user: { kind: "self" }, warning: undefined }
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
 * `inherit`: descriptors from 3 on, passed to the helper (a socketpair end, a descriptor of ours,
 * or "pipe" for a new one). `env`: added to this process's environment. Its stdout is a pipe
 * (see linesOf in network.ts), read or not.
 */
export const startHelper = (
  name: string,
  argv: Array<string>,
  setpriv: string | undefined,
  inherit: Array<"pipe" | Stream | number> = [],
  env: Record<string, string> = {}
): Helper => {
  const [file, ...args] = setpriv ? [setpriv, "--pdeathsig", "KILL", "--", ...argv] : argv
  const child = spawn(file!, args, { stdio: ["ignore", "pipe", "pipe", ...inherit], env: { ...process.env, ...env } })
  child.stdout?.resume()
  const stderr = outputTail(child.stderr)
  child.on("error", (e) => {
    stderr.note(`cannot start: ${e.message}`)
  })
  return { name, process: child, stderr: stderr.text }
}

const connectOnce = (socket: string): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const connection = net.connect(socket)
    connection.once("connect", () => resolve(connection))
    connection.once("error", reject)
  })

/**
 * A connection to the helper's `socket`, once it accepts: the file appears at the helper's
 * bind() and connects are refused until its listen(), so both are waited for. Rejects with the
 * helper's stderr if it exits first or is too slow; any other connect error is final.
 */
export const connectToHelper = async (helper: Helper, socket: string, timeoutMs: number): Promise<net.Socket> => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    if (helper.process.exitCode !== null || helper.process.signalCode !== null) {
      throw new Error(`${helper.name} exited: ${helper.stderr() || `code ${helper.process.exitCode}`}`)
    }
    try {
      return await connectOnce(socket)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code !== "ENOENT" && code !== "ECONNREFUSED") throw e
    }
    if (Date.now() > deadline) throw new Error(`${helper.name} did not listen on ${socket} within ${timeoutMs} ms: ${helper.stderr()}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export const stopHelper = (helper: Helper): Promise<void> =>
  new Promise((resolve) => {
    if (helper.process.exitCode !== null || helper.process.signalCode !== null || helper.process.pid === undefined) return resolve()
    helper.process.once("exit", () => resolve())
    helper.process.kill("SIGKILL")
  })

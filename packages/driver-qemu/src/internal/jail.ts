/**
 * The VMM jail: under TCG the whole emulator faces the guest, so QEMU runs with as little as
 * the host can take away. Outside in: the VM's cgroup (joined first, so everything below is
 * counted); `setpriv` (an unprivileged uid when the runtime is root, no capabilities, no new
 * privileges); `bwrap` (its own user, mount, pid, ipc, uts, cgroup and network namespaces, a
 * root of /usr read-only, a private /proc and a minimal /dev, no capabilities, no user
 * namespaces inside, a new session, killed with its parent); `prlimit` (no core dumps, bounded
 * descriptors and tasks); QEMU's own seccomp policy (`-sandbox`, in qemuArgs). QEMU opens no
 * file of the box: the driver hands it descriptors (see QemuDriver.ts).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { findOnPath } from "./which.js"

export interface JailTools {
  readonly bwrap: string
  readonly setpriv: string
  readonly prlimit: string
  /** bwrap arguments that recreate the host's top-level /bin, /lib... (merged-usr symlinks, or read-only binds). */
  readonly root: ReadonlyArray<string>
}

/** A uid and gid to run as, with supplementary groups (e.g. the group of /dev/kvm). */
export interface JailUser {
  readonly uid: number
  readonly gid: number
  readonly groups: ReadonlyArray<number>
}

export interface JailSpec {
  /** Run as this user; undefined: keep this process's (non-root) uid, inside a user namespace. */
  readonly user: JailUser | undefined
  /** Device nodes QEMU opens by path (/dev/kvm under KVM). */
  readonly devices: ReadonlyArray<string>
  /** Host directories QEMU needs read-only beyond /usr (the prefix of a QEMU installed elsewhere). */
  readonly readOnly: ReadonlyArray<string>
  /** Host directories bound read-write (a VMM that opens its sockets by path: cloud-hypervisor's run directory). */
  readonly readWrite?: ReadonlyArray<string>
  readonly rlimits: { readonly nofile: number; readonly nproc: number }
  /** cgroup.procs files the jail joins before anything else runs. */
  readonly cgroupProcs: ReadonlyArray<string>
  /** Where bwrap writes `{"child-pid": N}`: the host pid of QEMU itself. */
  readonly infoFd: number | undefined
}

/**
 * Ids for the VMMs of a root runtime: 0x70000000-0x70ffffff, no passwd entry. Debian gives
 * users and system accounts ids below 65536 and subordinate ids from 100000 up in steps of
 * 65536; systemd's container ranges end at 0x6fffffff and its "foreign" range starts at
 * 0x7ffe0000. One id per box (a hash of its id), so two boxes' VMMs are not the same user.
 */
export const BOX_UID_FIRST = 0x70000000
export const BOX_UID_COUNT = 0x1000000

export const boxUid = (boxId: string): number => {
  // FNV-1a: a stable, well-spread 32-bit hash.
  let hash = 0x811c9dc5
  for (let i = 0; i < boxId.length; i++) hash = Math.imul(hash ^ boxId.charCodeAt(i), 0x01000193) >>> 0
  return BOX_UID_FIRST + (hash % BOX_UID_COUNT)
}

/**
 * `echo $$ > cgroup.procs` as the first step: later steps and QEMU inherit the cgroup, so
 * nothing runs outside it (moving the pid after spawn would race bwrap's fork).
 */
const JOIN_CGROUPS = 'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; exec "$@"'

export const jailArgv = (tools: JailTools, jail: JailSpec, qemu: string, args: ReadonlyArray<string>): Array<string> => {
  const user = jail.user
  const setpriv = [
    tools.setpriv,
    ...(user
      ? [`--reuid=${user.uid}`, `--regid=${user.gid}`, user.groups.length > 0 ? `--groups=${user.groups.join(",")}` : "--clear-groups", "--bounding-set=-all"]
      : []),
    "--inh-caps=-all", "--no-new-privs", "--"
  ]
  const bwrap = [
    tools.bwrap,
    "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--as-pid-1",
    "--cap-drop", "ALL", "--clearenv",
    "--ro-bind", "/usr", "/usr", ...tools.root,
    ...jail.readOnly.flatMap((dir) => ["--ro-bind", dir, dir]),
    ...(jail.readWrite ?? []).flatMap((dir) => ["--bind", dir, dir]),
    "--proc", "/proc", "--dev", "/dev",
    ...jail.devices.flatMap((device) => ["--dev-bind", device, device]),
    "--chdir", "/",
    ...(jail.infoFd === undefined ? [] : ["--info-fd", String(jail.infoFd)]),
    "--"
  ]
  const prlimit = [tools.prlimit, "--core=0", `--nofile=${jail.rlimits.nofile}`, `--nproc=${jail.rlimits.nproc}`, "--"]
  const join = jail.cgroupProcs.length > 0 ? ["/bin/sh", "-c", JOIN_CGROUPS, "sh", ...jail.cgroupProcs, "--"] : []
  return [...join, ...setpriv, ...bwrap, ...prlimit, qemu, ...args]
}

/**
 * The supplementary groups that open a device node of mode `mode` owned by group `gid` to
 * any user: none if it is world read-write, its group if group read-write, else undefined.
 */
export const deviceGroups = (mode: number, gid: number): Array<number> | undefined =>
  (mode & 0o006) === 0o006 ? [] : (mode & 0o060) === 0o060 ? [gid] : undefined

/** bwrap arguments for the host's top-level program and library directories, as they are. */
export const hostRootLayout = (): Array<string> =>
  ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"].flatMap((dir) => {
    try {
      const stat = fs.lstatSync(dir)
      if (stat.isSymbolicLink()) return ["--symlink", fs.readlinkSync(dir), dir]
      return stat.isDirectory() ? ["--ro-bind", dir, dir] : []
    } catch {
      return []
    }
  })

/**
 * The jail's tools, checked by jailing `true` as `user` once: throws saying what to install or
 * enable when they are missing or bwrap cannot create its namespaces.
 */
export const probeJail = (user: JailUser | undefined): JailTools => {
  const bwrap = findOnPath("bwrap")
  if (!bwrap) throw new Error("the VMM jail needs bubblewrap: on Debian/Ubuntu apt-get install bubblewrap")
  const setpriv = findOnPath("setpriv")
  const prlimit = findOnPath("prlimit")
  if (!setpriv || !prlimit) throw new Error("the VMM jail needs setpriv and prlimit: on Debian/Ubuntu apt-get install util-linux")
  const tools: JailTools = { bwrap, setpriv, prlimit, root: hostRootLayout() }
  const argv = jailArgv(tools, { user, devices: [], readOnly: [], rlimits: { nofile: 64, nproc: 64 }, cgroupProcs: [], infoFd: undefined }, "/usr/bin/true", [])
  const trial = spawnSync(argv[0]!, argv.slice(1), { cwd: "/", stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 })
  if (trial.status !== 0) {
    const said = trial.stderr?.toString().trim() || trial.error?.message || `exit ${trial.status ?? trial.signal}`
    throw new Error(
      `the VMM jail (bubblewrap) cannot create its namespaces${user ? ` as uid ${user.uid}` : ""}: ${said}. ` +
        "Unprivileged user namespaces must be allowed (sysctl kernel.unprivileged_userns_clone=1 on older Debian kernels, " +
        "user.max_user_namespaces > 0; on Ubuntu 24.04 AppArmor's bwrap profile), and not blocked by a container's seccomp policy"
    )
  }
  return tools
}

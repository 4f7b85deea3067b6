/**
 * A box: one micro-VM running one image. Created by the Runtime; boots on `start` or on its
 * first `exec`; `stop` powers the guest off (and removes the box when `autoRemove` is set).
 */
import type { Effect } from "effect"
import type { BootError, BoxNotFound, BoxStateError, CopyError, ExecError, HypervisorUnavailable, InvalidOptions, PathNotFound, SnapshotError, StorageError } from "./Errors.js"
import type { Execution } from "./Execution.js"
import type { CopyOutOptions, ExecOptions, Port, SnapshotOptions, WriteFileOptions } from "./Options.js"
import type { SnapshotInfo } from "./Snapshots.js"
import type { BoxStatus } from "./StateStore.js"

export interface BoxInfo {
  readonly id: string
  readonly name: string | undefined
  readonly status: BoxStatus
  readonly image: string
  /** Removed when it stops (`autoRemove`): a restart would lose it. */
  readonly autoRemove: boolean
  readonly cpus: number
  readonly memoryMib: number
  readonly createdAt: Date
  /** Process id of the VMM while the box runs (a child of the box's supervisor process). */
  readonly pid: number | undefined
  /** Port forwards; while running, with the host ports actually bound (a requested 0 replaced). */
  readonly ports: ReadonlyArray<Port>
  /**
   * Why the box is "failed": its boot failed, its VM ended without a stop request, or its
   * supervisor died. Such a box runs nothing until an explicit `start()`. Undefined otherwise.
   */
  readonly reason: string | undefined
  /** The driver that runs the box (`qemu`, `kvm`, `hvf`, or a driver package's name). */
  readonly driver: string
  /** Its driver's accelerator (`kvm`, `hvf`, `tcg`) and agent transport (`virtio-serial`, `vsock`); undefined if it cannot run here, or is not the runtime's driver. */
  readonly accelerator: string | undefined
  readonly transport: string | undefined
  /** The snapshot the box was created from (`fromSnapshot`, `warm`), if any. */
  readonly snapshot: string | undefined
}

/** Resource use of a running box, from real sources: the VMM process and the guest kernel. */
export interface BoxMetrics {
  /** CPU time (user + system) of the VMM process, which runs the guest's vCPUs. */
  readonly cpuTimeMs: number
  /** Guest memory in use: MemTotal - MemAvailable of the guest's /proc/meminfo. */
  readonly memoryUsageBytes: number
  /** Bytes the guest sent / received on its network interfaces (its /proc/net/dev, without lo). */
  readonly networkBytesSent: number
  readonly networkBytesReceived: number
}

export type StartError = BootError | HypervisorUnavailable | BoxStateError | StorageError | SnapshotError | InvalidOptions

/** What a copy between the host and a box fails with. */
export type CopyFailure = CopyError | PathNotFound | InvalidOptions | StartError

export interface Box {
  /** ULID, unique in the home directory. */
  readonly id: string
  readonly name: string | undefined
  /** Its record as it is now (any process may have started or stopped it). */
  readonly info: Effect.Effect<BoxInfo, BoxNotFound>
  /** Boots the VM and waits until the guest agent answers; a no-op when running. Restarts a failed box. */
  readonly start: Effect.Effect<void, StartError>
  /**
   * Runs `command` with `args` (no shell); boots a configured or stopped box first. A failed
   * box is a BoxStateError: restart it with `start()`. Oversized argv or env: InvalidOptions.
   */
  readonly exec: (command: string, args?: ReadonlyArray<string>, options?: ExecOptions) => Effect.Effect<Execution, ExecError | InvalidOptions | StartError>
  /** Round trip to the guest agent and back (ms): a health check and the protocol's latency floor. */
  readonly ping: Effect.Effect<number, ExecError | StartError>
  /**
   * Copies a host file, symlink or directory tree into the box, as `cp -a`: into `guestPath` when
   * it is a directory, else to that name (its parent must exist). Symlinks are copied as links
   * (never followed, `hostPath` included), modes kept, files owned by root in the guest; devices,
   * fifos and sockets are refused. Streamed: memory stays bounded whatever the size.
   */
  readonly copyIn: (hostPath: string, guestPath: string) => Effect.Effect<void, CopyFailure>
  /**
   * Copies a guest file, symlink or tree to the host, with the same `cp` rules (into `hostPath`
   * when it is a directory). The guest is not trusted: nothing is written outside the
   * destination, symlinks stay links, no devices, fifos or hard links, no setuid/setgid bits,
   * files belong to the calling user, and past `maxBytes` / `maxEntries` the copy fails and
   * leaves nothing behind. Existing files are replaced, existing directories merged into.
   */
  readonly copyOut: (guestPath: string, hostPath: string, options?: CopyOutOptions) => Effect.Effect<void, CopyFailure>
  /** The content of a (small) guest file; a symlink is followed. At most `maxBytes` (default 64 MiB). */
  readonly readFile: (path: string, options?: CopyOutOptions) => Effect.Effect<Uint8Array, CopyFailure>
  /** Creates or replaces a guest file (a symlink there is replaced, not written through); its parent must exist. */
  readonly writeFile: (path: string, data: string | Uint8Array, options?: WriteFileOptions) => Effect.Effect<void, CopyFailure>
  /** Needs a running box. */
  readonly metrics: Effect.Effect<BoxMetrics, BoxNotFound | BoxStateError>
  /** Stops the box's vCPUs; memory, processes and connections stay. Execs and copies are refused until `resume`. */
  readonly pause: Effect.Effect<void, BoxNotFound | BoxStateError | SnapshotError>
  /** Runs a paused box again (its clock set to the host's); a no-op on a running box. */
  readonly resume: Effect.Effect<void, BoxNotFound | BoxStateError | SnapshotError>
  /**
   * Saves the running box's memory, devices and disk as a snapshot, and lets it run on; boxes
   * created `fromSnapshot` start from there. A box with volumes cannot be saved (SnapshotError `unsupported`).
   */
  readonly snapshot: (options?: SnapshotOptions) => Effect.Effect<SnapshotInfo, BoxNotFound | BoxStateError | SnapshotError | InvalidOptions>
  /**
   * Saves the running box to its directory and ends its VM: it holds no host memory until its
   * next `start`, exec or copy, which resumes it where it was.
   */
  readonly suspend: Effect.Effect<void, BoxNotFound | BoxStateError | SnapshotError>
  /** Graceful: the guest syncs and powers off (forced after a timeout). Removes the box if `autoRemove`. */
  readonly stop: Effect.Effect<void>
  /** Stops the box if needed and deletes it with its disk. */
  readonly remove: Effect.Effect<void>
}

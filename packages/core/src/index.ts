/** The Runtime service of a home directory: create, get, list, remove boxes; metrics. */
export * from "./Runtime.js"
/** `<home>/config.json`: registries and box defaults shared by every entry point of a home. */
export * from "./Config.js"
/** Images: pull, list, inspect, remove, prune; registry options. */
export * from "./Images.js"
/** Snapshots: list, inspect, remove, prune (taken with box.snapshot(), started with create({ fromSnapshot })). */
export type { SnapshotInfo, SnapshotPruneReport, Snapshots } from "./Snapshots.js"
/** A box: start, exec, copy files in and out, stop, remove. */
export type { Box, BoxInfo, BoxMetrics, CopyFailure, StartError } from "./Box.js"
/** A running command: streams, stdin, kill, wait. */
export type { ExecResult, Execution } from "./Execution.js"
/** Box and exec options, their validation and defaults. */
export * from "./Options.js"
/** Typed errors; all extend BoxliteError. */
export * from "./Errors.js"
/** The driver seam: the Hypervisor service and the guest artifacts it boots. */
export * from "@boxlite/driver"
/** Durable box records and counters (SQLite). */
export { type BoxRecord, type BoxStatus, layerSqlite, type SnapshotRecord, StateStore } from "./StateStore.js"
/** The per-box supervisor process and how a platform runs it. */
export { type LaunchReport } from "./supervisor/Protocol.js"
export { type DriverImporter, runSupervisorMain } from "./supervisor/Supervisor.js"
export { SupervisorEntry } from "./supervisor/SupervisorPool.js"
/** A log file with a size cap and one rotated file (the guest console, the supervisor log). */
export { RotatingLog } from "@boxlite/driver"
/** Structured logs from BOXLITE_LOG / RUST_LOG. */
export * as Logging from "./Logging.js"

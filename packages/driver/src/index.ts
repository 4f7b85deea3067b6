/** The driver seam: the Hypervisor service, what it boots (VmSpec) and hands back (Vm), what it can do. */
export * from "./Hypervisor.js"
/** How a driver package is named, found and loaded. */
export * from "./Plugin.js"
/** The errors a driver raises; every BoxLite error extends BoxliteError. */
export * from "./Errors.js"
/** Egress rules (allow/deny) as drivers enforce them. */
export * from "./Egress.js"
/** A log file with a size cap and one rotated file (a guest console, a supervisor log). */
export * as RotatingLog from "./RotatingLog.js"
/** The last 4 KiB a child process wrote on a stream, for error messages. */
export * from "./OutputTail.js"
/** A driver's run folder for a box, and removing those a dead box left. */
export * from "./RunDir.js"
/** Opening a box's files for a jailed VMM, closed together. */
export * from "./Descriptors.js"

/**
 * Control messages: the JSON payloads of HELLO, EXEC, EXIT, ... and the binary CREDIT payload.
 */
import { Schema } from "effect"

export const Hello = Schema.Struct({ version: Schema.Number })
export type Hello = typeof Hello.Type

export const HelloAck = Schema.Struct({ version: Schema.Number, agent: Schema.String })
export type HelloAck = typeof HelloAck.Type

/** A terminal's size in character cells (tty execs, RESIZE). */
export const TtySize = Schema.Struct({ rows: Schema.Number, cols: Schema.Number })
export type TtySize = typeof TtySize.Type

export const ExecRequest = Schema.Struct({
  argv: Schema.NonEmptyArray(Schema.String),
  env: Schema.Array(Schema.Tuple([Schema.String, Schema.String])),
  cwd: Schema.optionalKey(Schema.String),
  user: Schema.optionalKey(Schema.String),
  timeoutMs: Schema.optionalKey(Schema.Number),
  tty: Schema.optionalKey(TtySize)
})
export type ExecRequest = typeof ExecRequest.Type

export const Started = Schema.Struct({ pid: Schema.Number })
export type Started = typeof Started.Type

export const SignalRequest = Schema.Struct({ signal: Schema.Number })
export type SignalRequest = typeof SignalRequest.Type

export const ExitStatus = Schema.Struct({
  exitCode: Schema.Number,
  signal: Schema.optionalKey(Schema.Number),
  timedOut: Schema.optionalKey(Schema.Boolean)
})
export type ExitStatus = typeof ExitStatus.Type

/** CONFIGURE: the guest's network (absent = no NIC) and its virtiofs volumes. */
export const GuestNetwork = Schema.Struct({
  address: Schema.String,
  prefixLength: Schema.Number,
  gateway: Schema.String,
  dns: Schema.Array(Schema.String),
  mtu: Schema.optionalKey(Schema.Number)
})
export type GuestNetwork = typeof GuestNetwork.Type

/** A virtiofs tag mounted at `path`; with `file`, only that file of the tag is bound onto `path`. */
export const GuestMount = Schema.Struct({
  tag: Schema.String,
  path: Schema.String,
  readOnly: Schema.Boolean,
  file: Schema.optionalKey(Schema.String)
})
export type GuestMount = typeof GuestMount.Type

export const GuestConfig = Schema.Struct({
  network: Schema.optionalKey(GuestNetwork),
  mounts: Schema.Array(GuestMount)
})
export type GuestConfig = typeof GuestConfig.Type

/** CONFIGURED: an empty object. */
export const Configured = Schema.Struct({})
export type Configured = typeof Configured.Type

/** METRICS_REPORT: the guest kernel's memory and network counters, with the METRICS token. */
export const MetricsReport = Schema.Struct({
  token: Schema.String,
  memoryTotalBytes: Schema.Number,
  memoryAvailableBytes: Schema.Number,
  networkRxBytes: Schema.Number,
  networkTxBytes: Schema.Number
})
export type MetricsReport = typeof MetricsReport.Type

/**
 * COPY_IN / COPY_OUT: a tar archive of one file, symlink or directory tree at `path` (absolute,
 * clean, not "/"). COPY_IN: `exact` puts the archive's top entry at `path` itself, else into
 * `path` when it is a directory (as cp). COPY_OUT: `follow` sends a symlink's target.
 */
export const CopyRequest = Schema.Struct({
  path: Schema.String,
  exact: Schema.optionalKey(Schema.Boolean),
  follow: Schema.optionalKey(Schema.Boolean)
})
export type CopyRequest = typeof CopyRequest.Type

/**
 * THAW: after a FREEZE, or after the VM was restored from saved state. The guest sets its clock
 * to `timeMs`, mixes `entropy` (base64 host random bytes) into its RNG and reseeds it; `fresh`
 * says the host that held the streams is gone (a clone, a resume from suspend): the guest detaches
 * them and renews its per-boot identity (machine-id).
 */
export const ThawRequest = Schema.Struct({
  timeMs: Schema.Number,
  entropy: Schema.optionalKey(Schema.String),
  fresh: Schema.optionalKey(Schema.Boolean)
})
export type ThawRequest = typeof ThawRequest.Type

/** THAWED: the first stream id the host may use (above every stream the guest has seen). */
export const Thawed = Schema.Struct({ nextStream: Schema.Number })
export type Thawed = typeof Thawed.Type

/** CONTROL (client -> supervisor): an operation on the box's VM, answered by CONTROL_DONE with the token. */
export const ControlRequest = Schema.Struct({
  token: Schema.String,
  op: Schema.Literals(["pause", "resume", "snapshot", "suspend"]),
  /** snapshot: the directory (created, empty) the state and disk go to. */
  dir: Schema.optionalKey(Schema.String)
})
export type ControlRequest = typeof ControlRequest.Type

export const ControlDone = Schema.Struct({
  token: Schema.String,
  error: Schema.optionalKey(Schema.Struct({ tag: Schema.String, message: Schema.String, reason: Schema.optionalKey(Schema.String) })),
  /** snapshot: what was written. */
  result: Schema.optionalKey(Schema.Struct({ stateBytes: Schema.Number, diskBytes: Schema.Number, stateSha256: Schema.String, signature: Schema.String }))
})
export type ControlDone = typeof ControlDone.Type

export const ErrorMessage = Schema.Struct({ code: Schema.String, message: Schema.String })
export type ErrorMessage = typeof ErrorMessage.Type

export const Channel = { stdin: 0, stdout: 1, stderr: 2 } as const
export type Channel = (typeof Channel)[keyof typeof Channel]

export const encodeJson = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), "utf8")

/** JSON has no Infinity, but JSON.parse turns a number too large for a double (`1e400`) into one. */
const finiteNumbers = (_key: string, value: unknown): unknown => {
  if (typeof value === "number" && !Number.isFinite(value)) throw new RangeError("a number out of range")
  return value
}

/** Parses a JSON payload against `schema`; undefined when it is not JSON or does not match. */
export const decodeJson = <S extends Schema.ConstraintDecoder<unknown>>(
  schema: S,
  payload: Uint8Array
): S["Type"] | undefined => {
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(payload).toString("utf8"), finiteNumbers)
  } catch {
    return undefined
  }
  const result = Schema.decodeUnknownExit(schema)(json)
  return result._tag === "Success" ? result.value : undefined
}

export const encodeCredit = (channel: Channel, bytes: number): Buffer => {
  const payload = Buffer.allocUnsafe(5)
  payload.writeUInt8(channel, 0)
  payload.writeUInt32BE(bytes, 1)
  return payload
}

export const decodeCredit = (payload: Uint8Array): { channel: number; bytes: number } | undefined => {
  if (payload.length !== 5) return undefined
  const view = Buffer.from(payload.buffer, payload.byteOffset, payload.length)
  return { channel: view.readUInt8(0), bytes: view.readUInt32BE(1) }
}

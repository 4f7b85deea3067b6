/**
 * The launch protocol between a launcher (any client process: BoxHandle) and a supervisor
 * process, defined once for both ends. The launcher writes one SupervisorCommand as a JSON line
 * on the supervisor's stdin; the supervisor writes one LaunchReport as a JSON line on fd 3. An
 * error crosses as its tag and every field its class has, so the launcher raises the very error
 * the supervisor met (an InvalidOptions keeps its field, a BootError its console tail). CONTROL
 * answers (AgentMux) carry their errors the same way.
 */
import { Schema } from "effect"
import {
  BootError, type BoxliteError, BoxNotFound, BoxStateError, HypervisorUnavailable, InvalidOptions, SnapshotError, StorageError
} from "../Errors.js"

/** What a launcher writes on the supervisor's stdin: the box to run. */
export const SupervisorCommand = Schema.Struct({
  boxId: Schema.String,
  /** The process that claimed the start (ProcessRef); the supervisor takes the record over from it. */
  launcher: Schema.Struct({ pid: Schema.Int, startTime: Schema.String }),
  /** Stop the box when the launcher's end of stdin closes. */
  owned: Schema.Boolean,
  /** Cap of supervisor.log (BoxOptions.logMaxBytes). */
  logMaxBytes: Schema.optionalKey(Schema.Int),
  /** The box's driver (BoxRecord.driver), loaded with loadDriver. */
  driver: Schema.String,
  /** The guest kernel and initramfs, as the launcher's GuestArtifacts found them. */
  guest: Schema.Struct({ kernel: Schema.String, initrd: Schema.String, cmdline: Schema.String })
})
export type SupervisorCommand = typeof SupervisorCommand.Type

export const SnapshotReason = Schema.Literals(["incompatible", "corrupt", "unsupported", "in-use", "not-found"])

/** Every error a supervisor raises, as data: its tag and its class's fields. */
export const WireError = Schema.Union([
  Schema.Struct({ _tag: Schema.Literal("BootError"), problem: Schema.String, consoleTail: Schema.String }),
  Schema.Struct({ _tag: Schema.Literal("HypervisorUnavailable"), message: Schema.String }),
  Schema.Struct({ _tag: Schema.Literal("StorageError"), message: Schema.String }),
  Schema.Struct({ _tag: Schema.Literal("BoxNotFound"), idOrName: Schema.String }),
  Schema.Struct({ _tag: Schema.Literal("SnapshotError"), reason: SnapshotReason, message: Schema.String }),
  Schema.Struct({ _tag: Schema.Literal("InvalidOptions"), field: Schema.String, problem: Schema.String }),
  Schema.Struct({ _tag: Schema.Literal("BoxStateError"), message: Schema.String })
])
export type WireError = typeof WireError.Type

/** The launch report on fd 3: the box runs, or why it does not. */
export const LaunchReport = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true) }),
  Schema.Struct({ ok: Schema.Literal(false), error: WireError })
])
export type LaunchReport = typeof LaunchReport.Type

const BOOT_TAIL = "\n--- guest console (tail) ---\n"
const INVALID_PREFIX = /^invalid option "(?:[^"]*)": /

/**
 * An error as data. A failure that is not one of the supervisor's errors (a bug, a foreign
 * exception) becomes `otherwise(message)`: a BootError at launch, a BoxStateError for a CONTROL.
 */
export const toWire = (error: unknown, otherwise: (message: string) => WireError): WireError => {
  if (error instanceof BootError) {
    const problem = error.consoleTail ? error.message.slice(0, error.message.length - BOOT_TAIL.length - error.consoleTail.length) : error.message
    return { _tag: "BootError", problem, consoleTail: error.consoleTail }
  }
  if (error instanceof InvalidOptions) return { _tag: "InvalidOptions", field: error.field, problem: error.message.replace(INVALID_PREFIX, "") }
  if (error instanceof SnapshotError) return { _tag: "SnapshotError", reason: error.reason, message: error.message }
  if (error instanceof BoxNotFound) return { _tag: "BoxNotFound", idOrName: error.idOrName }
  if (error instanceof HypervisorUnavailable || error instanceof StorageError || error instanceof BoxStateError) {
    return { _tag: error._tag, message: error.message }
  }
  return otherwise(error instanceof Error ? error.message : String(error))
}

/** The error a WireError describes, equal in class and fields to the one that was sent. */
export const fromWire = (error: WireError): BoxliteError => {
  switch (error._tag) {
    case "BootError":
      return new BootError(error.problem, error.consoleTail)
    case "HypervisorUnavailable":
      return new HypervisorUnavailable(error.message)
    case "StorageError":
      return new StorageError({ message: error.message })
    case "BoxNotFound":
      return new BoxNotFound(error.idOrName)
    case "SnapshotError":
      return new SnapshotError(error.reason, error.message)
    case "InvalidOptions":
      return new InvalidOptions(error.field, error.problem)
    case "BoxStateError":
      return new BoxStateError(error.message)
  }
}

const commandCodec = Schema.fromJsonString(SupervisorCommand)
const reportCodec = Schema.fromJsonString(LaunchReport)

/** One JSON line each way; decoding fails (SchemaError) on anything that is not the protocol. */
export const encodeCommand = (command: SupervisorCommand): string => `${Schema.encodeSync(commandCodec)(command)}\n`
export const decodeCommand = Schema.decodeUnknownExit(commandCodec)
export const encodeReport = (report: LaunchReport): string => `${Schema.encodeSync(reportCodec)(report)}\n`
export const decodeReport = Schema.decodeUnknownExit(reportCodec)

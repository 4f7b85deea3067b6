/**
 * Every error BoxLite raises. They are classes (so `instanceof` works for Promise users) and
 * tagged (so Effect users can `Effect.catchTag("TimeoutError", ...)`). All extend BoxliteError.
 */
import { BoxliteError } from "@boxlite/driver"
import { Schema } from "effect"

export { BootError, BoxliteError, HypervisorUnavailable, SnapshotError } from "@boxlite/driver"
/** Defined once, where they are raised: image lookup and registry errors in @boxlite/oci, disk and file errors in @boxlite/storage. */
export { ImageNotFound, RegistryAuthError, RegistryError } from "@boxlite/oci"
export { StorageError } from "@boxlite/storage"

/** An option had a value out of range or of the wrong shape; nothing was started. */
export class InvalidOptions extends BoxliteError {
  override readonly _tag = "InvalidOptions" as const
  constructor(readonly field: string, problem: string) {
    super({ message: `invalid option "${field}": ${problem}` })
  }
}

/**
 * A command could not be run (not found: `exitCode` 127; not executable, bad working directory:
 * 126; the reason in `stderr`, as a shell would say it), a program failed where success was
 * required (its `exitCode` and `stderr`), or its box went away (no exit code).
 */
export class ExecError extends BoxliteError {
  override readonly _tag = "ExecError" as const
  constructor(
    message: string,
    readonly command?: ReadonlyArray<string>,
    readonly exitCode?: number,
    readonly stderr?: string
  ) {
    super({ message })
  }
}

/** An operation (a command with `timeoutMs`, or the guest becoming ready) took too long. */
export class TimeoutError extends BoxliteError {
  override readonly _tag = "TimeoutError" as const
  constructor(message: string, readonly timeoutMs: number) {
    super({ message })
  }
}

/** Output could not be parsed into the expected form. */
export class ParseError extends BoxliteError {
  override readonly _tag = "ParseError" as const
  constructor(message: string) {
    super({ message })
  }
}

/** The image exists but is not usable (an invalid reference, corrupt or unsupported content). */
export class ImageError extends BoxliteError.extend<ImageError>("ImageError")({
  _tag: Schema.tag("ImageError"),
  reference: Schema.String
}) {}

/** No box with that id or name in this home directory. */
export class BoxNotFound extends BoxliteError {
  override readonly _tag = "BoxNotFound" as const
  constructor(readonly idOrName: string) {
    super({ message: `no box with id or name "${idOrName}"` })
  }
}

/** The request does not fit the box's current state (e.g. a duplicate name, exec on a removed box). */
export class BoxStateError extends BoxliteError {
  override readonly _tag = "BoxStateError" as const
  constructor(message: string) {
    super({ message })
  }
}

/**
 * A failure BoxLite did not foresee (a bug, or the host failing in a new way), as the Promise
 * face reports it, so every rejection is a BoxliteError; `cause` is the original.
 */
export class UnexpectedError extends BoxliteError {
  override readonly _tag = "UnexpectedError" as const
  constructor(override readonly cause: unknown) {
    super({ message: `unexpected: ${cause instanceof Error ? cause.message : String(cause)}` })
  }
}

/** A copy's source (or the parent of its destination) does not exist; `path` names it, `side` says where. */
export class PathNotFound extends BoxliteError {
  override readonly _tag = "PathNotFound" as const
  constructor(readonly path: string, readonly side: "host" | "guest", message?: string) {
    super({ message: message ?? `${side} path ${path}: no such file or directory` })
  }
}

/**
 * A copy between host and box failed: a limit (`maxBytes`, `maxEntries`) was reached, an entry
 * was unsafe or of a type that is not copied (devices, fifos, sockets), a destination conflicted,
 * or the guest refused. Nothing of a failed copyOut is left on the host.
 */
export class CopyError extends BoxliteError {
  override readonly _tag = "CopyError" as const
  constructor(readonly path: string, message: string) {
    super({ message })
  }
}

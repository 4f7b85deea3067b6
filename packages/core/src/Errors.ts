/**
 * Every error BoxLite raises. They are classes (so `instanceof` works for Promise users) and
 * tagged (so Effect users can `Effect.catchTag("TimeoutError", ...)`). All extend BoxliteError.
 */
import { BoxliteError } from "@boxlite/driver"

export { BootError, BoxliteError, HypervisorUnavailable, SnapshotError } from "@boxlite/driver"

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

/** The image does not exist where the reference points. */
export class ImageNotFound extends BoxliteError {
  override readonly _tag = "ImageNotFound" as const
  constructor(readonly reference: string, message: string) {
    super({ message })
  }
}

/** The image exists but is not usable (corrupt or unsupported content). */
export class ImageError extends BoxliteError {
  override readonly _tag = "ImageError" as const
  constructor(readonly reference: string, message: string) {
    super({ message })
  }
}

/** A registry refused the credentials (or gave none where they are needed). */
export class RegistryAuthError extends BoxliteError {
  override readonly _tag = "RegistryAuthError" as const
  constructor(readonly registry: string, message: string) {
    super({ message })
  }
}

/** A registry could not be reached, or kept failing (429/5xx) after retries. */
export class RegistryError extends BoxliteError {
  override readonly _tag = "RegistryError" as const
  constructor(readonly registry: string, readonly status: number | undefined, message: string) {
    super({ message })
  }
}

/** Building or creating a disk failed. */
export class StorageError extends BoxliteError {
  override readonly _tag = "StorageError" as const
  constructor(message: string) {
    super({ message })
  }
}

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

/** The host<->guest channel broke the protocol. */
export class AgentProtocolError extends BoxliteError {
  override readonly _tag = "AgentProtocolError" as const
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

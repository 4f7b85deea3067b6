/**
 * The package's own error classes, apart from the modules that re-export them so that the
 * machinery in `internal/` can raise them without importing the public modules back.
 */
import { Data } from "effect"

/** The registry could not be reached, or kept failing (5xx, 429) after retries. */
export class RegistryError extends Data.TaggedError("RegistryError")<{
  readonly registry: string
  /** The last HTTP status, when there was a response at all. */
  readonly status: number | undefined
  readonly message: string
}> {}

/** The registry refused access (401/403) with the credentials given, or without any. */
export class RegistryAuthError extends Data.TaggedError("RegistryAuthError")<{
  readonly registry: string
  readonly status: number
  readonly message: string
}> {}

/** Reading or writing the content store's files failed (permissions, disk full). */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly path: string
  readonly message: string
}> {}

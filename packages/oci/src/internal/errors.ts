/**
 * The package's own error classes, apart from the modules that re-export them so that the
 * machinery in `internal/` can raise them without importing the public modules back.
 */
import { BoxliteError } from "@boxlite/driver"
import { Schema } from "effect"

/** The registry could not be reached, or kept failing (5xx, 429) after retries. */
export class RegistryError extends BoxliteError.extend<RegistryError>("RegistryError")({
  _tag: Schema.tag("RegistryError"),
  registry: Schema.String,
  /** The last HTTP status, when there was a response at all. */
  status: Schema.UndefinedOr(Schema.Number)
}) {}

/** The registry refused access (401/403) with the credentials given, or without any. */
export class RegistryAuthError extends BoxliteError.extend<RegistryAuthError>("RegistryAuthError")({
  _tag: Schema.tag("RegistryAuthError"),
  registry: Schema.String,
  status: Schema.Number
}) {}

/** Reading or writing the content store's files failed (permissions, disk full). */
export class StoreError extends BoxliteError.extend<StoreError>("StoreError")({
  _tag: Schema.tag("StoreError"),
  path: Schema.String
}) {}

/**
 * Errors as the API answers them: `{"error": {"_tag", "message", ...fields}}` with the status
 * the contract gives each tag. A BoxliteError keeps its tag and its fields (InvalidOptions
 * its `field`, ExecError its `exitCode` and `stderr`...); anything else is an UnexpectedError.
 */
import {
  type ApiError, BadRequestError, ConflictError, type ErrorDetail, InternalError, NotFoundError, PayloadTooLargeError, TimeoutResponse, UnauthorizedError
} from "../Api.js"

const STATUS_OF: Readonly<Record<string, number>> = {
  InvalidOptions: 400,
  ParseError: 400,
  BadRequest: 400,
  Unauthorized: 401,
  BoxNotFound: 404,
  ImageNotFound: 404,
  SnapshotNotFound: 404,
  ExecutionNotFound: 404,
  PathNotFound: 404,
  NotFound: 404,
  BoxStateError: 409,
  ExecutionBusy: 409,
  PayloadTooLarge: 413,
  TimeoutError: 504
}

/** Fields that are the error's machinery, not its data. */
const HIDDEN = new Set(["stack", "cause", "name", "_tag", "message"])

/** The wire form of any error: a tagged error's tag, message and JSON-able fields. */
export const detailOf = (e: unknown): ErrorDetail => {
  if (typeof e === "object" && e !== null && typeof (e as { _tag?: unknown })._tag === "string") {
    const fields: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(e)) {
      if (!HIDDEN.has(key) && value !== undefined && typeof value !== "function") fields[key] = value
    }
    return { ...JSON.parse(JSON.stringify(fields)), _tag: (e as { _tag: string })._tag, message: String((e as { message?: unknown }).message ?? "") }
  }
  return { _tag: "UnexpectedError", message: e instanceof Error ? e.message : String(e) }
}

/** The status a detail is answered with. */
export const statusOf = (detail: ErrorDetail): number => {
  if (detail._tag === "SnapshotError") return detail["reason"] === "not-found" ? 404 : detail["reason"] === "in-use" ? 409 : 500
  return STATUS_OF[detail._tag] ?? 500
}

const API_ERRORS = [BadRequestError, UnauthorizedError, NotFoundError, ConflictError, PayloadTooLargeError, InternalError, TimeoutResponse]

/** The API error (its class picks the status) of any failure. */
export const toApiError = (e: unknown): ApiError => {
  if (API_ERRORS.some((c) => e instanceof c)) return e as ApiError
  const error = detailOf(e)
  switch (statusOf(error)) {
    case 400: return new BadRequestError({ error })
    case 401: return new UnauthorizedError({ error })
    case 404: return new NotFoundError({ error })
    case 409: return new ConflictError({ error })
    case 413: return new PayloadTooLargeError({ error })
    case 504: return new TimeoutResponse({ error })
    default: return new InternalError({ error })
  }
}

/** A failure of the API's own (not the runtime's): a tag, a message and fields. */
export const apiError = (tag: string, message: string, fields: Record<string, unknown> = {}): ApiError =>
  toApiError({ ...fields, _tag: tag, message })

import { BoxliteError, UnexpectedError } from "../Errors.js"

/** A rejection of the Promise face: the typed error itself, anything else as UnexpectedError. */
export const asBoxliteError = (e: unknown): BoxliteError => (e instanceof BoxliteError ? e : new UnexpectedError(e))

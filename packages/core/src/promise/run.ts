import { Effect } from "effect"
import { BoxliteError, UnexpectedError } from "../Errors.js"

/** A rejection of the Promise face: the typed error itself, anything else as UnexpectedError. */
export const asBoxliteError = (e: unknown): BoxliteError => (e instanceof BoxliteError ? e : new UnexpectedError(e))

/** Effect.runPromise whose rejections are always BoxliteErrors. */
export const runPromise = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(effect).catch((e: unknown) => Promise.reject(asBoxliteError(e)))

/**
 * What a child process last wrote on a stream (its stderr), kept for error messages: the last
 * 4 KiB by default. One helper for the VMMs, their helpers and the supervisors that quote it.
 */
import type { Readable } from "node:stream"

export interface OutputTail {
  /** The kept text, trimmed. */
  readonly text: () => string
  /** Adds a line of the caller's own (why the process could not start). */
  readonly note: (line: string) => void
}

export const outputTail = (stream: Readable | null | undefined, maxChars = 4096): OutputTail => {
  let kept = ""
  const keep = (more: string) => void (kept = (kept + more).slice(-maxChars))
  stream?.on("data", (d: Buffer) => keep(d.toString()))
  return { text: () => kept.trim(), note: keep }
}

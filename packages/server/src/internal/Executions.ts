/**
 * The server's executions: a command started by one request and read, fed, signalled and
 * waited by later ones. Output is read from the box as soon as the command starts and kept
 * for the reader (bounded: past OUTPUT_LIMIT unread bytes the box's output waits, through
 * the agent's flow control, until a reader takes some), so a reader that disconnects loses
 * nothing it had not received and the next reader carries on.
 */
import type { ExecResult } from "@boxlite/core"
import type { Execution } from "@boxlite/core/promise"
import { ulid } from "ulid"
import type { ErrorDetail } from "../Api.js"
import { detailOf } from "./Errors.js"

/** Unread output kept per execution before the command's output waits. */
export const OUTPUT_LIMIT = 4 * 1024 * 1024
/** How long an ended execution is kept for a reader or a waiter. */
export const KEEP_MS = 10 * 60_000

export type OutputEvent =
  | { readonly stream: "stdout" | "stderr"; readonly data: string }
  | { readonly exit: ExecResult }
  | { readonly error: ErrorDetail }

const isLast = (event: OutputEvent) => !("stream" in event)

/** One execution: its unread output, its outcome, who reads it. */
export class Entry {
  readonly id = ulid()
  private readonly events: Array<OutputEvent> = []
  private unreadBytes = 0
  private wake: Array<() => void> = []
  private reading = false
  /** Bumped by each claim: a reader that went away (its pending next()) must not take the next reader's events. */
  private generation = 0
  private delivered = false
  /** The last event (exit or error) and the reader it went to: a later reader gets it again. */
  private final: { readonly event: OutputEvent; ticket: number } | undefined
  private waited = false
  /** Settles with the exit status, or rejects with the command's error (TimeoutError...). */
  readonly result: Promise<ExecResult>

  constructor(readonly boxId: string, readonly execution: Execution, private readonly forget: (entry: Entry) => void) {
    this.result = this.pump()
    this.result.catch(() => undefined)
  }

  private notify() {
    const waiting = this.wake
    this.wake = []
    for (const resolve of waiting) resolve()
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve))
  }

  private push(event: OutputEvent, bytes = 0) {
    this.events.push(event)
    this.unreadBytes += bytes
    this.notify()
  }

  private async drain(which: "stdout" | "stderr", source: AsyncIterable<Uint8Array>) {
    for await (const chunk of source) {
      this.push({ stream: which, data: Buffer.from(chunk).toString("base64") }, chunk.byteLength)
      while (this.unreadBytes > OUTPUT_LIMIT) await this.changed()
    }
  }

  private async pump(): Promise<ExecResult> {
    const execution = this.execution
    try {
      // Both streams to their end before wait(): wait() would drop what is still unread.
      await Promise.all([this.drain("stdout", execution.stdout().bytes()), this.drain("stderr", execution.stderr().bytes())])
      const result = await execution.wait()
      this.push({ exit: result })
      return result
    } catch (e) {
      this.push({ error: detailOf(e) })
      throw e
    } finally {
      setTimeout(() => this.forget(this), KEEP_MS).unref()
    }
  }

  /** Takes the reader's place: its ticket for next(), or undefined if another client reads. */
  claim(): number | undefined {
    if (this.reading) return undefined
    this.reading = true
    return ++this.generation
  }

  release(ticket: number) {
    if (ticket !== this.generation) return
    this.reading = false
    this.notify()
  }

  /** The next unread event, when there is one (the last one again for a reader that comes after it went out); undefined at the end, or once `ticket`'s reader went away. */
  async next(ticket: number): Promise<OutputEvent | undefined> {
    while (true) {
      if (!this.reading || ticket !== this.generation) return undefined
      if (this.final !== undefined) {
        if (this.final.ticket === ticket) return undefined
        this.final.ticket = ticket
        return this.final.event
      }
      const event = this.events.shift()
      if (event !== undefined) {
        if ("stream" in event) this.unreadBytes -= Buffer.byteLength(event.data, "base64")
        this.notify()
        if (isLast(event)) {
          this.delivered = true
          this.final = { event, ticket }
          this.done()
        }
        return event
      }
      await this.changed()
    }
  }

  /** The outcome, once; the entry goes when its output was read to the end too. */
  async wait(): Promise<ExecResult> {
    try {
      return await this.result
    } finally {
      this.waited = true
      this.done()
    }
  }

  private done() {
    if (this.delivered && this.waited) this.forget(this)
  }
}

/** The executions of one server, by id. */
export class Executions {
  private readonly entries = new Map<string, Entry>()

  add(boxId: string, execution: Execution): Entry {
    const entry = new Entry(boxId, execution, (e) => this.entries.delete(e.id))
    this.entries.set(entry.id, entry)
    return entry
  }

  get(boxId: string, execId: string): Entry | undefined {
    const entry = this.entries.get(execId)
    return entry?.boxId === boxId ? entry : undefined
  }

  get size(): number {
    return this.entries.size
  }
}

/**
 * One output channel (stdout or stderr) of an exec on the host side: frames go in as they
 * arrive, the consumer pulls them out, and consumed bytes are granted back to the guest as
 * credit. The guest never has more than the window in flight, so the queue is bounded by it.
 */
import { INITIAL_WINDOW } from "@boxlite/agent-protocol"

/** Credits are batched: sending one per 32 KiB frame would double the frame count. */
const CREDIT_BATCH = 64 * 1024

/** How long output may sit unread, once the exit is awaited, before the reader counts as gone. */
export const ABANDONED_AFTER_MS = 2000

export class OutputQueue {
  private readonly chunks: Array<Uint8Array> = []
  private queued = 0
  private ended = false
  private failure: Error | undefined
  private waiters: Array<() => void> = []
  private uncredited = 0
  private discarding = false
  private reading = false
  private lastRead = Date.now()

  constructor(private readonly grant: (bytes: number) => void) {}

  /** From the connection: a data frame (empty = end of stream). Returns false if it overflows the window. */
  push(chunk: Uint8Array): boolean {
    if (chunk.length === 0) {
      this.ended = true
    } else if (this.discarding) {
      this.grant(chunk.length)
    } else {
      this.chunks.push(chunk)
      this.queued += chunk.length
      if (this.queued > INITIAL_WINDOW) return false
    }
    this.wake()
    return true
  }

  fail(error: Error): void {
    if (this.ended) return
    this.failure = error
    this.wake()
  }

  /** The next chunk, or null at end of stream. */
  async read(): Promise<Uint8Array | null> {
    this.reading = true
    try {
      return await this.next()
    } finally {
      this.reading = false
      this.lastRead = Date.now()
    }
  }

  private async next(): Promise<Uint8Array | null> {
    for (;;) {
      const chunk = this.chunks.shift()
      if (chunk !== undefined) {
        this.queued -= chunk.length
        this.uncredited += chunk.length
        if (this.uncredited >= CREDIT_BATCH || this.chunks.length === 0) this.flushCredit()
        return chunk
      }
      if (this.ended) return null
      if (this.failure) throw this.failure
      await this.changed()
    }
  }

  /** Nobody will read: drop what is queued and what comes, so the process is never blocked on us. */
  discard(): void {
    if (this.discarding) return
    this.discarding = true
    this.uncredited += this.queued
    this.chunks.length = 0
    this.queued = 0
    this.flushCredit()
  }

  /**
   * The exit is awaited while a reader holds this stream: if it leaves output unread for
   * `graceMs` (it stopped half way, or never started), drop the rest as `discard` does, so the
   * process is not blocked on a full window forever. A reader that keeps reading loses nothing.
   */
  discardWhenAbandoned(graceMs = ABANDONED_AFTER_MS): void {
    const check = () => {
      if (this.ended || this.discarding || this.failure) return
      if (!this.reading && this.queued > 0 && Date.now() - this.lastRead >= graceMs) return this.discard()
      setTimeout(check, Math.min(250, graceMs)).unref()
    }
    this.lastRead = Date.now()
    check()
  }

  /** Resolves once the guest has sent the end of this stream (or the connection failed). */
  async finished(): Promise<void> {
    while (!this.ended && !this.failure) await this.changed()
  }

  private flushCredit(): void {
    if (this.uncredited > 0) {
      this.grant(this.uncredited)
      this.uncredited = 0
    }
  }

  private changed(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const resolve of waiters) resolve()
  }
}

import { type Effect, Stream } from "effect"
import type { Execution as EffectExecution, ExecResult } from "../Execution.js"

/** Runs an effect on the runtime of the Boxlite the command came from (its logger, its services). */
type Run = <A, E>(effect: Effect.Effect<A, E>) => Promise<A>

/** An output stream as an async iterable whose pulls run on `run`; `break` discards the rest, as an interrupted Stream does. */
const iterate = (stream: Stream.Stream<Uint8Array, unknown>, run: Run): AsyncIterable<Uint8Array> => ({
  async *[Symbol.asyncIterator]() {
    yield* await run(Stream.toAsyncIterableEffect(stream))
  }
})

/** One output stream of a command: iterate it for lines, or take bytes or the whole text. */
export class OutputStream implements AsyncIterable<string> {
  constructor(private readonly source: () => AsyncIterable<Uint8Array>) {}

  /** Raw chunks as the process writes them. */
  bytes(): AsyncIterable<Uint8Array> {
    return this.source()
  }

  /** Lines as they are produced, decoded as UTF-8, without the line break. */
  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    const decoder = new TextDecoder()
    let pending = ""
    for await (const chunk of this.source()) {
      pending += decoder.decode(chunk, { stream: true })
      let newline
      while ((newline = pending.indexOf("\n")) >= 0) {
        yield pending.slice(0, newline)
        pending = pending.slice(newline + 1)
      }
    }
    pending += decoder.decode()
    if (pending.length > 0) yield pending
  }

  /** Everything until the stream ends, as one string. */
  async text(): Promise<string> {
    const decoder = new TextDecoder()
    let text = ""
    for await (const chunk of this.source()) text += decoder.decode(chunk, { stream: true })
    return text + decoder.decode()
  }
}

/** The command's standard input. */
export class ExecStdin {
  constructor(private readonly execution: EffectExecution, private readonly run: Run) {}

  /** Resolves once the guest has room for the data (flow control), not when the process read it. */
  write(data: string | Uint8Array): Promise<void> {
    return this.run(this.execution.writeStdin(data))
  }

  close(): Promise<void> {
    return this.run(this.execution.closeStdin)
  }
}

/** A running command (Promise face of the Effect `Execution`). */
export class Execution {
  /** `run` is the runtime's: its logger sees the exit, and every call rejects with a BoxliteError. */
  constructor(private readonly impl: EffectExecution, private readonly run: Run) {}

  /** Unique id of this execution (a ULID). */
  get id(): string {
    return this.impl.id
  }
  get pid(): number {
    return this.impl.pid
  }
  get command(): ReadonlyArray<string> {
    return this.impl.command
  }

  /**
   * stdout as lines (`for await`), bytes or text. One reader; unread output is dropped by
   * `wait()`, and so is output a reader leaves unread for 2 s while `wait()` runs.
   */
  stdout(): OutputStream {
    const source = iterate(this.impl.stdout, this.run)
    return new OutputStream(() => source)
  }

  stderr(): OutputStream {
    const source = iterate(this.impl.stderr, this.run)
    return new OutputStream(() => source)
  }

  stdin(): ExecStdin {
    return new ExecStdin(this.impl, this.run)
  }

  /** Resolves with the exit status; rejects with TimeoutError when `timeoutMs` ran out. */
  wait(): Promise<ExecResult> {
    return this.run(this.impl.wait)
  }

  /** Sends `signal` (default 9) to the command's process group. */
  kill(signal = 9): Promise<void> {
    return this.run(this.impl.kill(signal))
  }

  /** A tty exec's new terminal size (the process gets SIGWINCH); BoxStateError without a tty. */
  resize(rows: number, cols: number): Promise<void> {
    return this.run(this.impl.resize(rows, cols))
  }
}

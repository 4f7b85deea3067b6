/**
 * A running command in a box: its output streams, stdin, signals and result.
 */
import { Effect, Stream } from "effect"
import { ExecError, TimeoutError } from "./Errors.js"
import { type ExecChannel, StdinClosed } from "./internal/AgentConnection.js"
import type { OutputQueue } from "./internal/OutputQueue.js"

export interface ExecResult {
  readonly exitCode: number
  /** The signal that ended the process, if one did. */
  readonly signal?: number
}

export interface Execution {
  readonly command: ReadonlyArray<string>
  /** Process id inside the guest. */
  readonly pid: number
  /** Raw stdout bytes as the process writes them. Read it, or `wait` discards it. */
  readonly stdout: Stream.Stream<Uint8Array, ExecError>
  readonly stderr: Stream.Stream<Uint8Array, ExecError>
  /** stdout decoded as UTF-8 and split into lines (without the line break). */
  readonly stdoutLines: Stream.Stream<string, ExecError>
  readonly stderrLines: Stream.Stream<string, ExecError>
  readonly writeStdin: (data: string | Uint8Array) => Effect.Effect<void, ExecError>
  readonly closeStdin: Effect.Effect<void>
  /** Sends `signal` (default 9, SIGKILL) to the command's whole process group. */
  readonly kill: (signal?: number) => Effect.Effect<void>
  /** A tty exec's new terminal size (the process gets SIGWINCH); ignored without a tty. */
  readonly resize: (rows: number, cols: number) => Effect.Effect<void>
  /** The exit status; fails with TimeoutError if `timeoutMs` ran out. Output nobody reads is dropped. */
  readonly wait: Effect.Effect<ExecResult, ExecError | TimeoutError>
}

/** Any failure of the channel (a lost box, its supervisor gone) as the ExecError users see. */
const lostBox = (command: ReadonlyArray<string>) => (e: unknown): ExecError =>
  e instanceof ExecError ? e : new ExecError(`${command[0]}: ${e instanceof Error ? e.message : String(e)}`, command)

/** @internal */
export class ExecutionImpl implements Execution {
  private readonly claimed = { stdout: false, stderr: false }

  constructor(
    private readonly channel: ExecChannel,
    readonly command: ReadonlyArray<string>,
    readonly pid: number,
    private readonly timeoutMs: number | undefined
  ) {}

  /** Pulls one output queue as an async iterable (rejecting with ExecError); one reader per stream. */
  chunks(which: "stdout" | "stderr"): AsyncIterable<Uint8Array> {
    const queue: OutputQueue = this.channel[which]
    this.claimed[which] = true
    const lost = lostBox(this.command)
    return {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          const chunk = await queue.read().catch((e: unknown) => Promise.reject(lost(e)))
          return chunk === null ? { done: true, value: undefined } : { done: false, value: chunk }
        }
      })
    }
  }

  get stdout() {
    return Stream.fromAsyncIterable(this.chunks("stdout"), lostBox(this.command))
  }
  get stderr() {
    return Stream.fromAsyncIterable(this.chunks("stderr"), lostBox(this.command))
  }
  get stdoutLines() {
    return this.stdout.pipe(Stream.decodeText, Stream.splitLines)
  }
  get stderrLines() {
    return this.stderr.pipe(Stream.decodeText, Stream.splitLines)
  }

  writeStdin(data: string | Uint8Array) {
    return Effect.tryPromise({
      try: () => this.channel.writeStdin(typeof data === "string" ? Buffer.from(data) : data),
      catch: (e) =>
        e instanceof StdinClosed
          ? new ExecError(`${this.command[0]}: stdin is closed (the command ended or stdin was closed)`, this.command)
          : lostBox(this.command)(e)
    })
  }

  get closeStdin() {
    return Effect.sync(() => this.channel.closeStdin())
  }

  kill(signal = 9) {
    return Effect.sync(() => this.channel.signal(signal))
  }

  resize(rows: number, cols: number) {
    return Effect.sync(() => this.channel.resize(rows, cols))
  }

  get wait(): Effect.Effect<ExecResult, ExecError | TimeoutError> {
    return Effect.suspend(() => {
      if (!this.claimed.stdout) this.channel.stdout.discard()
      if (!this.claimed.stderr) this.channel.stderr.discard()
      return Effect.tryPromise({ try: () => this.channel.exit, catch: lostBox(this.command) })
    }).pipe(
      Effect.flatMap((status) =>
        status.timedOut
          ? Effect.fail(new TimeoutError(`${this.command.join(" ")} timed out after ${this.timeoutMs} ms and was killed`, this.timeoutMs ?? 0))
          : Effect.succeed(status.signal === undefined ? { exitCode: status.exitCode } : { exitCode: status.exitCode, signal: status.signal })
      )
    )
  }
}

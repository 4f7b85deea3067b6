/**
 * A running command in a box: its output streams, stdin, signals and result.
 */
import * as os from "node:os"
import { Effect, Stream } from "effect"
import { ulid } from "ulid"
import { BoxStateError, ExecError, TimeoutError } from "./Errors.js"
import { type ExecChannel, StdinClosed } from "./internal/AgentConnection.js"
import type { OutputQueue } from "./internal/OutputQueue.js"

export interface ExecResult {
  /** The process's exit code; 128 + n when signal n ended it (as a shell reports it). */
  readonly exitCode: number
  /** The name of the signal that ended the process (`"SIGKILL"`), if one did. */
  readonly signal?: string
}

const signalNames = new Map(Object.entries(os.constants.signals).map(([name, n]) => [n as number, name]))
/** `9` -> `"SIGKILL"`; a number Linux does not name (a real-time signal) -> `"SIG<n>"`. */
export const signalName = (signal: number): string => signalNames.get(signal) ?? `SIG${signal}`

export interface Execution {
  /** Unique id of this execution (a ULID). */
  readonly id: string
  readonly command: ReadonlyArray<string>
  /** Process id inside the guest. */
  readonly pid: number
  /**
   * Raw stdout bytes as the process writes them. Read it, or `wait` discards it (output left
   * unread for 2 s while `wait` runs counts as unread, so a half-read stream never hangs `wait`).
   */
  readonly stdout: Stream.Stream<Uint8Array, ExecError>
  readonly stderr: Stream.Stream<Uint8Array, ExecError>
  /** stdout decoded as UTF-8 and split into lines (without the line break). */
  readonly stdoutLines: Stream.Stream<string, ExecError>
  readonly stderrLines: Stream.Stream<string, ExecError>
  readonly writeStdin: (data: string | Uint8Array) => Effect.Effect<void, ExecError>
  readonly closeStdin: Effect.Effect<void>
  /** Sends `signal` (default 9, SIGKILL) to the command's whole process group. */
  readonly kill: (signal?: number) => Effect.Effect<void>
  /** A tty exec's new terminal size (the process gets SIGWINCH); BoxStateError without a tty. */
  readonly resize: (rows: number, cols: number) => Effect.Effect<void, BoxStateError>
  /** The exit status; fails with TimeoutError if `timeoutMs` ran out. Output nobody reads is dropped. */
  readonly wait: Effect.Effect<ExecResult, ExecError | TimeoutError>
}

/** Any failure of the channel (a lost box, its supervisor gone) as the ExecError users see. */
const lostBox = (command: ReadonlyArray<string>) => (e: unknown): ExecError =>
  e instanceof ExecError ? e : new ExecError(`${command[0]}: ${e instanceof Error ? e.message : String(e)}`, command)

/** @internal */
export class ExecutionImpl implements Execution {
  private readonly claimed = { stdout: false, stderr: false }
  readonly id = ulid()

  constructor(
    private readonly channel: ExecChannel,
    readonly command: ReadonlyArray<string>,
    readonly pid: number,
    private readonly timeoutMs: number | undefined,
    private readonly tty: boolean
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
        },
        // `break` out of a for-await, or a Stream interrupted: nobody reads the rest.
        return: () => {
          queue.discard()
          return Promise.resolve({ done: true, value: undefined })
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

  resize(rows: number, cols: number): Effect.Effect<void, BoxStateError> {
    return this.tty
      ? Effect.sync(() => this.channel.resize(rows, cols))
      : Effect.fail(new BoxStateError(`${this.command[0]} has no terminal to resize (exec it with tty: true)`))
  }

  private readonly startedAt = performance.now()

  get wait(): Effect.Effect<ExecResult, ExecError | TimeoutError> {
    return Effect.suspend(() => {
      for (const which of ["stdout", "stderr"] as const) {
        if (this.claimed[which]) this.channel[which].discardWhenAbandoned()
        else this.channel[which].discard()
      }
      return Effect.tryPromise({ try: () => this.channel.exit, catch: lostBox(this.command) })
    }).pipe(
      Effect.flatMap((status) =>
        status.timedOut
          ? Effect.fail(new TimeoutError(`${this.command.join(" ")} timed out after ${this.timeoutMs} ms and was killed`, this.timeoutMs ?? 0))
          : Effect.succeed(status.signal === undefined ? { exitCode: status.exitCode } : { exitCode: status.exitCode, signal: signalName(status.signal) })
      ),
      Effect.tap((result) =>
        Effect.logDebug("exec exited").pipe(Effect.annotateLogs({ command: this.command[0], id: this.id, ...result, ms: Math.round(performance.now() - this.startedAt) }))
      )
    )
  }
}

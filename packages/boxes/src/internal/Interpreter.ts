/**
 * One long-lived Python process in a box (the driver in driver.ts) and the host's half of its
 * protocol: run a cell, collect its output and results, interrupt it, notice its death.
 */
import { ExecError, type ExecResult } from "@boxlite/core"
import { DRIVER } from "./driver.js"

/** What the interpreter needs of a running command (the Promise face's Execution has it). */
export interface Process {
  stdout(): AsyncIterable<string>
  stderr(): { bytes(): AsyncIterable<Uint8Array> }
  stdin(): { write(data: string): Promise<void> }
  kill(signal?: number): Promise<void>
  wait(): Promise<ExecResult>
}

export type Spawn = (command: string, args: ReadonlyArray<string>) => Promise<Process>

/** One output of a cell, by MIME type (IPython's display protocol); `png`/`jpeg` are base64. */
export interface CodeResult {
  readonly text?: string
  readonly html?: string
  readonly markdown?: string
  readonly svg?: string
  readonly png?: string
  readonly jpeg?: string
  readonly json?: unknown
}

export interface CodeError {
  /**
   * The exception's class name (`ZeroDivisionError`, `SystemExit`, `KeyboardInterrupt`...),
   * `TimeoutError` when `timeoutMs` interrupted the cell (the interpreter's state is kept), or
   * `InterpreterRestarted` when the interpreter had to go (it exited, crashed, ignored the
   * interrupt, or broke the protocol): the next call starts a fresh one, without the old state.
   */
  readonly name: string
  readonly value: string
  readonly traceback: string
}

export interface Execution {
  /** The text of the last expression's value, if the cell ends with an expression that is not None. */
  readonly text?: string
  readonly stdout: string
  readonly stderr: string
  /** `display(...)` outputs in order, then the last expression's value. */
  readonly results: ReadonlyArray<CodeResult>
  readonly error?: CodeError
}

export interface RunCodeOptions {
  /** Interrupt the cell (KeyboardInterrupt) after this many ms; kill the interpreter if that does not stop it. */
  readonly timeoutMs?: number
  /** Aborting interrupts the cell, as Ctrl-C would (then kills the interpreter if that does not stop it). */
  readonly signal?: AbortSignal
  /** Each line of the cell's stdout as it is produced (without the line break); what it throws is ignored. */
  readonly onStdout?: (line: string) => void
  readonly onStderr?: (line: string) => void
}

/** How long an interrupted cell gets to stop before the interpreter is killed. */
export const INTERRUPT_GRACE_MS = 3000
const SIGINT = 2
const SIGKILL = 9
const STDERR_TAIL = 16 * 1024

type Frame =
  | { type: "ready" }
  | { type: "stdout" | "stderr"; text: string }
  | { type: "display"; data: CodeResult }
  | { type: "done"; value?: CodeResult; error?: CodeError }

const isBundle = (data: unknown): data is CodeResult =>
  typeof data === "object" && data !== null && !Array.isArray(data) &&
  Object.entries(data).every(([k, v]) => (k === "json" ? true : ["text", "html", "markdown", "svg", "png", "jpeg"].includes(k) && typeof v === "string"))

const isError = (e: unknown): e is CodeError =>
  typeof e === "object" && e !== null && ["name", "value", "traceback"].every((k) => typeof (e as Record<string, unknown>)[k] === "string")

/** A frame as the driver sends it, or undefined for anything else (which ends the session). */
const parseFrame = (line: string): Frame | undefined => {
  let f: Record<string, unknown>
  try {
    f = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof f !== "object" || f === null) return undefined
  switch (f["type"]) {
    case "ready":
      return { type: "ready" }
    case "stdout":
    case "stderr":
      return typeof f["text"] === "string" ? { type: f["type"], text: f["text"] } : undefined
    case "display":
      return isBundle(f["data"]) ? { type: "display", data: f["data"] } : undefined
    case "done":
      if (f["value"] !== undefined && !isBundle(f["value"])) return undefined
      if (f["error"] !== undefined && !isError(f["error"])) return undefined
      return f as Frame
    default:
      return undefined
  }
}

/** Splits text into lines for a callback, holding a partial line until it is complete. */
class Lines {
  private pending = ""
  constructor(private readonly emit: ((line: string) => void) | undefined) {}
  push(text: string) {
    if (!this.emit) return
    this.pending += text
    let newline
    while ((newline = this.pending.indexOf("\n")) >= 0) {
      this.call(this.pending.slice(0, newline))
      this.pending = this.pending.slice(newline + 1)
    }
  }
  end() {
    if (this.pending) this.call(this.pending)
    this.pending = ""
  }
  /** A callback that throws loses its line, not the session. */
  private call(line: string) {
    try {
      this.emit?.(line)
    } catch {
      // the caller's bug; the cell goes on
    }
  }
}

interface Cell {
  stdout: string
  stderr: string
  readonly results: Array<CodeResult>
  readonly out: Lines
  readonly err: Lines
  readonly done: (frame: Extract<Frame, { type: "done" }>) => void
}

/** What a result keeps of each stream (the callbacks see everything): a printing loop cannot fill the host's memory. */
export const MAX_OUTPUT_CHARS = 8 * 1024 * 1024
const TRUNCATED = "\n[output truncated]\n"
const capped = (kept: string, more: string): string =>
  kept.length >= MAX_OUTPUT_CHARS ? kept : kept.length + more.length <= MAX_OUTPUT_CHARS ? kept + more : kept + more.slice(0, MAX_OUTPUT_CHARS - kept.length) + TRUNCATED

const describeExit = (status: ExecResult | undefined): string =>
  status === undefined ? "broke the protocol" : status.signal !== undefined ? `was killed by signal ${status.signal}` : `exited with code ${status.exitCode}`

export class Interpreter {
  private cell: Cell | undefined
  private stderrTail = ""
  private broken = false
  /** The last cell was sent SIGINT: one may still be on its way, for the driver to drop. */
  private interruptSent = false
  /** The process has ended: the next cell needs a new Interpreter. */
  exited = false
  private readonly ready: Promise<void>
  /** Resolves when the process has ended and its output is read (or `undefined` if it broke the protocol). */
  readonly ended: Promise<ExecResult | undefined>

  private constructor(private readonly process: Process) {
    let ready!: () => void
    this.ready = new Promise((resolve) => (ready = resolve))
    const frames = this.readFrames(ready)
    const stderr = this.readStderr()
    this.ended = process.wait().then(
      async (status) => {
        // A forked child of the user's code may hold the reply pipe: the output gets a moment, not forever.
        await Promise.race([Promise.all([frames, stderr]), new Promise((r) => setTimeout(r, 1000).unref())])
        return this.broken ? undefined : status
      },
      () => undefined
    )
    void this.ended.then(() => (this.exited = true))
  }

  static async start(spawn: Spawn): Promise<Interpreter> {
    const process = await spawn("python3", ["-u", "-c", DRIVER])
    const interpreter = new Interpreter(process)
    const ready = await Promise.race([interpreter.ready.then(() => true), interpreter.ended.then(() => false)])
    if (!ready) throw new ExecError(`python3 (the CodeBox interpreter) ${describeExit(await interpreter.ended)} before it was ready: ${interpreter.stderrTail}`, ["python3", "-c", "<driver>"])
    return interpreter
  }

  private async readFrames(ready: () => void) {
    try {
      for await (const line of this.process.stdout()) {
        const frame = parseFrame(line)
        if (!frame) {
          this.broken = true
          void this.process.kill(SIGKILL).catch(() => {})
          return
        }
        this.dispatch(frame, ready)
      }
    } catch {
      // the box went away: `ended` says so
    }
  }

  private dispatch(frame: Frame, ready: () => void) {
    const cell = this.cell
    if (frame.type === "ready") return ready()
    // Output of the user's threads between cells has no cell to go to.
    if (!cell) return
    switch (frame.type) {
      case "stdout":
        cell.stdout = capped(cell.stdout, frame.text)
        return cell.out.push(frame.text)
      case "stderr":
        cell.stderr = capped(cell.stderr, frame.text)
        return cell.err.push(frame.text)
      case "display":
        cell.results.push(frame.data)
        return
      case "done":
        return cell.done(frame)
    }
  }

  private async readStderr() {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of this.process.stderr().bytes()) {
        this.stderrTail = (this.stderrTail + decoder.decode(chunk, { stream: true })).slice(-STDERR_TAIL)
      }
    } catch {
      // as above
    }
  }

  /** Runs one cell; never rejects for what the code does (that is `error` in the result). */
  async run(code: string, options: RunCodeOptions = {}): Promise<Execution> {
    let finish!: (frame: Extract<Frame, { type: "done" }> | undefined) => void
    const finished = new Promise<Extract<Frame, { type: "done" }> | undefined>((resolve) => (finish = resolve))
    const cell: Cell = { stdout: "", stderr: "", results: [], out: new Lines(options.onStdout), err: new Lines(options.onStderr), done: finish }
    this.cell = cell
    let interrupted: "timeout" | "abort" | undefined
    const timers: Array<NodeJS.Timeout> = []
    const interrupt = (why: "timeout" | "abort") => {
      if (interrupted) return
      interrupted = why
      void this.process.kill(SIGINT).catch(() => {})
      timers.push(setTimeout(() => void this.process.kill(SIGKILL).catch(() => {}), INTERRUPT_GRACE_MS))
    }
    const onAbort = () => interrupt("abort")
    if (options.timeoutMs !== undefined) timers.push(setTimeout(() => interrupt("timeout"), options.timeoutMs))
    if (options.signal?.aborted) onAbort()
    options.signal?.addEventListener("abort", onAbort)
    try {
      await this.process.stdin().write(JSON.stringify({ type: "run", code, stale: this.interruptSent }) + "\n").catch(() => {})
      const done = await Promise.race([finished, this.ended.then(() => undefined)])
      cell.out.end()
      cell.err.end()
      const results = done?.value ? [...cell.results, done.value] : cell.results
      const base = { stdout: cell.stdout, stderr: cell.stderr, results, ...(done?.value?.text !== undefined ? { text: done.value.text } : {}) }
      if (done === undefined) return { ...base, error: await this.deathNotice(interrupted, options.timeoutMs) }
      if (interrupted === "timeout") {
        const value = `the code ran longer than ${options.timeoutMs} ms and was interrupted (KeyboardInterrupt); the interpreter keeps its state`
        return { ...base, error: { name: "TimeoutError", value, traceback: done.error?.traceback ?? "" } }
      }
      return done.error ? { ...base, error: done.error } : base
    } finally {
      this.interruptSent = interrupted !== undefined
      this.cell = undefined
      timers.forEach(clearTimeout)
      options.signal?.removeEventListener("abort", onAbort)
    }
  }

  private async deathNotice(interrupted: "timeout" | "abort" | undefined, timeoutMs: number | undefined): Promise<CodeError> {
    const status = await this.ended
    const why = interrupted === "timeout"
      ? `the code ran longer than ${timeoutMs} ms and did not stop within ${INTERRUPT_GRACE_MS} ms of KeyboardInterrupt, so the interpreter was killed`
      : interrupted === "abort"
      ? `the code did not stop within ${INTERRUPT_GRACE_MS} ms of KeyboardInterrupt, so the interpreter was killed`
      : `the interpreter ${describeExit(status)}`
    return { name: "InterpreterRestarted", value: `${why}; the next call starts a fresh interpreter (variables and imports are gone)`, traceback: this.stderrTail }
  }

  /** Kills the process and waits until it is gone. */
  async close(): Promise<void> {
    await this.process.kill(SIGKILL).catch(() => {})
    await this.ended
  }
}

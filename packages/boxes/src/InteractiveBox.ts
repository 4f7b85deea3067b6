/**
 * InteractiveBox: a real terminal in a box. `attach()` runs a shell (or any command) on a
 * pseudo-terminal in the guest, wired to local streams (this process's stdin and stdout by
 * default, in raw mode when they are a terminal), follows the local terminal's size, and
 * resolves with the command's exit code. The box boots on first use and is stopped (and
 * removed) when the InteractiveBox is disposed.
 */
import type { BoxInfo, BoxMetrics, BoxOptions, ExecOptions } from "@boxlite/core"
import type { Boxlite, Box as PromiseBox } from "@boxlite/core/promise"
import type { Readable, Writable } from "node:stream"
import type { ReadStream, WriteStream } from "node:tty"
import { SimpleBox } from "./SimpleBox.js"

export interface TerminalSize {
  readonly rows: number
  readonly cols: number
}

export interface AttachOptions {
  /** What runs on the terminal. Default `["sh"]`. */
  readonly command?: ReadonlyArray<string>
  /** Keystrokes. Default `process.stdin` (raw mode while attached, when it is a terminal). */
  readonly input?: Readable
  /** What the terminal shows. Default `process.stdout`; its size (and changes) when it is a terminal. */
  readonly output?: Writable
  /** The terminal's size when `output` is not a terminal. Default 24x80. */
  readonly size?: TerminalSize
  /** env, workingDir, user, timeoutMs of the command. */
  readonly exec?: Omit<ExecOptions, "tty">
}

const isTty = (stream: Readable | Writable): boolean => (stream as { isTTY?: boolean }).isTTY === true

/**
 * Runs `command` in `box` on a terminal wired to `input`/`output` until it exits; its exit
 * code. (InteractiveBox.attach, and the CLI's `exec -t`.)
 */
const DEFAULT_SIZE = { rows: 24, cols: 80 } as const

export const attachTerminal = async (box: PromiseBox, options: AttachOptions = {}): Promise<number> => {
  const input = options.input ?? process.stdin
  const output = options.output ?? process.stdout
  const terminal = isTty(output) ? (output as WriteStream) : undefined
  // A terminal that reports 0x0 (some CI pseudo-terminals) gets the classic size instead.
  const sizeOf = (t: WriteStream | undefined) => (t && t.rows > 0 && t.columns > 0 ? { rows: t.rows, cols: t.columns } : undefined)
  const size = sizeOf(terminal) ?? options.size ?? DEFAULT_SIZE
  const [command = "sh", ...args] = options.command ?? []
  const execution = await box.exec(command, args, { ...options.exec, tty: size })
  const stdin = execution.stdin()
  // Keystrokes go in order; a write after the command ended is dropped.
  let typing = Promise.resolve()
  const onData = (data: Buffer | string) => {
    typing = typing.then(() => stdin.write(data)).catch(() => {})
  }
  const onResize = () => {
    const next = sizeOf(terminal)
    if (next) execution.resize(next.rows, next.cols).catch(() => {})
  }
  const raw = isTty(input) ? (input as ReadStream) : undefined
  raw?.setRawMode(true)
  // Input that ends (a pipe, not a person) ends the terminal's input: the guest sees ^D.
  const onEnd = () => {
    typing = typing.then(() => stdin.close()).catch(() => {})
  }
  input.on("data", onData)
  input.once("end", onEnd)
  input.resume()
  terminal?.on("resize", onResize)
  try {
    for await (const chunk of execution.stdout().bytes()) {
      if (!output.write(chunk)) await new Promise((resolve) => output.once("drain", resolve))
    }
    return (await execution.wait()).exitCode
  } finally {
    input.off("data", onData)
    input.off("end", onEnd)
    input.pause()
    raw?.setRawMode(false)
    terminal?.off("resize", onResize)
  }
}

export class InteractiveBox implements AsyncDisposable {
  private readonly simple: SimpleBox

  constructor(options: BoxOptions, runtime: Boxlite) {
    this.simple = new SimpleBox(options, runtime)
  }

  /** Creates and boots the box; later calls return the same box. */
  start(): Promise<PromiseBox> {
    return this.simple.start()
  }

  /** The box's id once it started; BoxStateError before. */
  get id(): string {
    return this.simple.id
  }

  /** The box's info; boots the box if needed. */
  info(): Promise<BoxInfo> {
    return this.simple.info()
  }

  /** CPU time, memory and network use of the running box; boots the box if needed. */
  metrics(): Promise<BoxMetrics> {
    return this.simple.metrics()
  }

  /** Runs `command` on a terminal wired to `input`/`output` until it exits; its exit code. */
  async attach(options: AttachOptions = {}): Promise<number> {
    return attachTerminal(await this.start(), options)
  }

  /** The reference's `wait()`: a shell on this process's terminal until it exits. */
  wait(): Promise<number> {
    return this.attach()
  }

  /** Stops and removes the box (if it was started). */
  stop(): Promise<void> {
    return this.simple.stop()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }
}

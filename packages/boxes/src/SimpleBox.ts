/**
 * SimpleBox: run a command, get `{ exitCode, stdout, stderr }`. The box boots on first use and
 * is stopped (and removed) when the SimpleBox is disposed.
 */
import {
  assertBoxOptionKeys, type Box, type BoxInfo, type BoxMetrics, type BoxOptions, BoxStateError, type CopyOutOptions, type CreateError, type ExecError, type ExecOptions,
  type Execution, type InvalidOptions, Runtime, type SnapshotInfo, type SnapshotOptions, type StartError, type TimeoutError, type WriteFileOptions
} from "@boxlite/core"
import type { Box as PromiseBox, Boxlite } from "@boxlite/core/promise"
import { Effect, Scope, Stream } from "effect"

export interface ExecOutput {
  readonly exitCode: number
  readonly signal?: string
  readonly stdout: string
  readonly stderr: string
}

const collect = (stream: Stream.Stream<Uint8Array, ExecError>) => Stream.mkString(Stream.decodeText(stream))

/** Runs a command to completion in `box`, collecting its output (Effect face). */
export const run = (
  box: Box,
  command: string,
  args: ReadonlyArray<string> = [],
  options?: ExecOptions
): Effect.Effect<ExecOutput, ExecError | TimeoutError | InvalidOptions | StartError> =>
  Effect.gen(function*() {
    const execution: Execution = yield* box.exec(command, args, options)
    const [stdout, stderr] = yield* Effect.all([collect(execution.stdout), collect(execution.stderr)], { concurrency: 2 })
    const result = yield* execution.wait
    return { ...result, stdout, stderr }
  })

/** A box that lives as long as the enclosing Scope (Effect face): stopped and removed on close. */
export const scoped = (options?: BoxOptions): Effect.Effect<Box, CreateError, Runtime | Scope.Scope> =>
  Effect.acquireRelease(
    Runtime.use((runtime) => runtime.create(options)),
    (box) => box.remove
  )

/** Splits `exec("cmd", "a", "b", { timeoutMs })` into arguments and options. */
const splitArgs = (rest: ReadonlyArray<string | ExecOptions>): [Array<string>, ExecOptions | undefined] => {
  const last = rest.at(-1)
  return last !== undefined && typeof last === "object"
    ? [rest.slice(0, -1) as Array<string>, last]
    : [rest as Array<string>, undefined]
}

/** Promise face: `await using box = new SimpleBox({ image })`. */
export class SimpleBox implements AsyncDisposable {
  private box: Promise<PromiseBox> | undefined

  /** Throws InvalidOptions at once for a key that is not a box option (naming the one it probably meant). */
  constructor(private readonly options: BoxOptions, private readonly runtime: Boxlite) {
    assertBoxOptionKeys(options)
  }

  private started: PromiseBox | undefined

  /** Creates and boots the box; later calls return the same box. */
  start(): Promise<PromiseBox> {
    this.box ??= this.runtime.create(this.options).then(async (box) => {
      await box.start().catch(async (e: unknown) => {
        await box.remove()
        throw e
      })
      this.started = box
      return box
    })
    return this.box
  }

  /** The box's id once it started (`start()` or a first call); BoxStateError before. */
  get id(): string {
    if (!this.started) throw new BoxStateError("the box has not started yet: await start() (or a first exec) before reading its id")
    return this.started.id
  }

  /** The box's info (status, image, resources, ports...); boots the box if needed. */
  async info(): Promise<BoxInfo> {
    return (await this.start()).info()
  }

  /** CPU time, memory and network use of the running box; boots the box if needed. */
  async metrics(): Promise<BoxMetrics> {
    return (await this.start()).metrics()
  }

  /** `exec("python", "-c", "print(1)")`, optionally ending with ExecOptions. */
  async exec(command: string, ...rest: Array<string | ExecOptions>): Promise<ExecOutput> {
    const [args, options] = splitArgs(rest)
    const box = await this.start()
    const execution = await box.exec(command, args, options)
    const [stdout, stderr] = await Promise.all([execution.stdout().text(), execution.stderr().text()])
    const result = await execution.wait()
    return { ...result, stdout, stderr }
  }

  /** Copies a host file or tree into the box (see Box.copyIn); boots the box first. */
  async copyIn(hostPath: string, guestPath: string): Promise<void> {
    await (await this.start()).copyIn(hostPath, guestPath)
  }

  /** Copies a guest file or tree to the host (see Box.copyOut). */
  async copyOut(guestPath: string, hostPath: string, options?: CopyOutOptions): Promise<void> {
    await (await this.start()).copyOut(guestPath, hostPath, options)
  }

  /** The content of a small guest file. */
  async readFile(path: string, options?: CopyOutOptions): Promise<Uint8Array> {
    return (await this.start()).readFile(path, options)
  }

  /** Creates or replaces a guest file. */
  async writeFile(path: string, data: string | Uint8Array, options?: WriteFileOptions): Promise<void> {
    await (await this.start()).writeFile(path, data, options)
  }

  /** Stops the box's vCPUs; memory and processes stay, execs are refused until `resume()`. */
  async pause(): Promise<void> {
    await (await this.start()).pause()
  }

  /** Runs a paused box again; a suspended one resumes where it was saved. */
  async resume(): Promise<void> {
    await (await this.start()).resume()
  }

  /** Saves the box (memory, devices, disk) as a snapshot; it runs on. `new SimpleBox({ fromSnapshot })` starts from it. */
  async snapshot(options?: SnapshotOptions): Promise<SnapshotInfo> {
    return (await this.start()).snapshot(options)
  }

  /** Saves the box to disk and ends its VM; the next exec (or `resume()`) resumes it. */
  async suspend(): Promise<void> {
    await (await this.start()).suspend()
  }

  /** Stops and removes the box (if it was started). */
  async stop(): Promise<void> {
    const box = this.box
    this.box = undefined
    this.started = undefined
    if (box) await (await box.catch(() => undefined))?.remove()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }
}

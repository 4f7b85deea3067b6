/**
 * CodeBox: Python in a box. `run(code)` runs a program and returns its output (the reference's
 * CodeBox); `installPackage(s)` pip-installs from the index of your choice; `runCode(code)` runs
 * cells in one long-lived interpreter whose variables, imports and functions persist, with the
 * last expression's value, rich display results and live output, like a notebook kernel.
 */
import {
  type Box,
  type BoxOptions,
  BoxliteError,
  type CreateError,
  ExecError,
  type ExecOptions,
  InvalidOptions,
  Runtime,
  type StartError,
  TimeoutError,
  UnexpectedError
} from "@boxlite/core"
import { Box as PromiseBox, type Boxlite } from "@boxlite/core/promise"
import { Effect, Exit, Schema, Scope } from "effect"
import * as fs from "node:fs/promises"
import { type Execution as CodeExecution, Interpreter, type RunCodeOptions } from "./internal/Interpreter.js"
import { SimpleBox } from "./SimpleBox.js"

export type { CodeError, CodeResult, Execution as CodeExecution, RunCodeOptions } from "./internal/Interpreter.js"

export interface CodeBoxOptions extends BoxOptions {
  /**
   * The package index (PEP 503 "simple" URL) `installPackage` uses, e.g. a local mirror. Default:
   * `PIP_INDEX_URL` of the box's env, else pip's own default. An `http://` index is trusted as given.
   */
  readonly packageIndex?: string
}

export interface RunOptions {
  /** Kill the program after this many ms: TimeoutError, and the box stays usable. */
  readonly timeoutMs?: number
}

/** A program that ended with a nonzero exit code (an ExecError with `exitCode` and `stderr`), and its stdout. */
export class ProgramFailed extends ExecError {
  constructor(
    message: string,
    command: ReadonlyArray<string>,
    override readonly exitCode: number,
    readonly stdout: string,
    override readonly stderr: string,
    readonly signal?: string
  ) {
    super(message, command, exitCode, stderr)
  }
}

/** How long `installPackage(s)` may take, unless `timeoutMs` says otherwise. */
const INSTALL_TIMEOUT_MS = 300_000

const check = <T>(predicate: (value: T) => boolean, message: string) =>
  Schema.makeFilter<T>((value) => (predicate(value) ? undefined : message))

const Fields = {
  packageIndex: Schema.String.check(check((s: string) => {
    try {
      return ["http:", "https:"].includes(new URL(s).protocol)
    } catch {
      return false
    }
  }, "must be an http:// or https:// URL")),
  code: Schema.String,
  // python3's argument: a file, not an option.
  script: Schema.String.check(check((s: string) => s.length > 0 && !s.startsWith("-") && !s.includes("\0"), "must be a .py file on the host or in the box")),
  timeoutMs: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  // A spec is one argument of pip, never an option of it (no "--index-url=..." smuggled in).
  package: Schema.String.check(check((s: string) => s.trim().length > 0 && !s.startsWith("-") && !/[\0\r\n]/.test(s), "must be a requirement (name, name==1.2, name[extra]), a wheel path or a URL, not an option"))
}

const validate = (field: keyof typeof Fields, value: unknown, name: string = field): void => {
  const result = Schema.decodeUnknownExit(Fields[field] as Schema.Codec<unknown>)(value)
  if (Exit.isFailure(result)) {
    const reason = result.cause.reasons[0]
    const detail = reason && "error" in reason ? String((reason.error as { message?: string }).message) : "invalid value"
    throw new InvalidOptions(name, `${detail} (got ${JSON.stringify(value)})`)
  }
}

const lastLine = (text: string): string => text.trimEnd().split("\n").at(-1) ?? ""

/** Runs a command to the end; its output, or ProgramFailed (nonzero exit) / TimeoutError. */
const runProgram = async (box: PromiseBox, command: string, args: ReadonlyArray<string>, options: ExecOptions, stdin?: string): Promise<{ stdout: string; stderr: string }> => {
  const execution = await box.exec(command, args, options)
  const input = stdin === undefined ? undefined : execution.stdin().write(stdin).then(() => execution.stdin().close())
  const [stdout, stderr] = await Promise.all([execution.stdout().text(), execution.stderr().text(), input?.catch(() => {})])
  const result = await execution.wait()
  const argv = [command, ...args]
  if (result.exitCode !== 0 || result.signal !== undefined) {
    const how = result.signal !== undefined ? `was killed by signal ${result.signal}` : `exited with code ${result.exitCode}`
    throw new ProgramFailed(`${argv.join(" ")} ${how}: ${lastLine(stderr)}`, argv, result.exitCode, stdout, stderr, result.signal)
  }
  return { stdout, stderr }
}

/**
 * The CodeBox itself, over a way to get its (started) box; the Promise and Effect faces both
 * wrap it. Cells run one at a time, in call order.
 */
class Engine {
  private interpreter: Promise<Interpreter> | undefined
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly box: () => Promise<PromiseBox>, private readonly packageIndex: string | undefined) {
    if (packageIndex !== undefined) validate("packageIndex", packageIndex)
  }

  async run(code: string, options: RunOptions = {}): Promise<string> {
    validate("code", code)
    if (options.timeoutMs !== undefined) validate("timeoutMs", options.timeoutMs)
    // The code on stdin, not in argv: no size limit, and tracebacks say <stdin>.
    const out = await runProgram(await this.box(), "python3", ["-"], options, code)
    return out.stdout + out.stderr
  }

  async runScript(path: string, options: RunOptions = {}): Promise<string> {
    const local = await fs.readFile(path, "utf8").catch((e: NodeJS.ErrnoException) =>
      e.code === "ENOENT" || e.code === "ENOTDIR" ? undefined : Promise.reject(new InvalidOptions("path", e.message))
    )
    if (local !== undefined) return this.run(local, options)
    validate("script", path, "path")
    if (options.timeoutMs !== undefined) validate("timeoutMs", options.timeoutMs)
    const out = await runProgram(await this.box(), "python3", [path], options)
    return out.stdout + out.stderr
  }

  async installPackages(packages: ReadonlyArray<string>, options: RunOptions = {}): Promise<string> {
    if (packages.length === 0) throw new InvalidOptions("packages", "name at least one package")
    packages.forEach((p, i) => validate("package", p, `packages[${i}]`))
    if (options.timeoutMs !== undefined) validate("timeoutMs", options.timeoutMs)
    const index = this.packageIndex === undefined ? [] : ["--index-url", this.packageIndex]
    const trust = this.packageIndex?.startsWith("http:") ? ["--trusted-host", new URL(this.packageIndex).host] : []
    // Bounded: a dead index fails each request after 15 s, retried once, and the whole within timeoutMs.
    const args = ["-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--progress-bar", "off", "--timeout", "15", "--retries", "1", ...index, ...trust, ...packages]
    try {
      const out = await runProgram(await this.box(), "python3", args, { env: { PIP_ROOT_USER_ACTION: "ignore" }, timeoutMs: options.timeoutMs ?? INSTALL_TIMEOUT_MS })
      return out.stdout + out.stderr
    } catch (e) {
      if (e instanceof ProgramFailed) {
        const said = e.stderr.split("\n").filter((l) => /^(ERROR|WARNING: Retrying|WARNING: The repository)/.test(l)).join("\n") || lastLine(e.stderr)
        throw new ProgramFailed(`pip could not install ${packages.join(", ")}: ${said}`, e.command ?? [], e.exitCode, e.stdout, e.stderr, e.signal)
      }
      if (e instanceof TimeoutError) throw new TimeoutError(`pip did not install ${packages.join(", ")} within ${e.timeoutMs} ms`, e.timeoutMs)
      throw e
    }
  }

  runCode(code: string, options: RunCodeOptions = {}): Promise<CodeExecution> {
    validate("code", code)
    if (options.timeoutMs !== undefined) validate("timeoutMs", options.timeoutMs)
    return this.serially(async () => {
      const interpreter = await this.current()
      return interpreter.run(code, options)
    })
  }

  /** The next cell runs in a fresh interpreter; a running cell ends with InterpreterRestarted. */
  async restartInterpreter(): Promise<void> {
    const old = this.interpreter
    this.interpreter = undefined
    await (await old?.catch(() => undefined))?.close()
  }

  private async current(): Promise<Interpreter> {
    const live = await this.interpreter?.catch(() => undefined)
    if (!live || live.exited) {
      this.interpreter = this.box().then((box) => Interpreter.start((command, args) => box.exec(command, args)))
    }
    return this.interpreter!
  }

  private serially<A>(task: () => Promise<A>): Promise<A> {
    const result = this.queue.then(task)
    this.queue = result.catch(() => {})
    return result
  }
}

/** Promise face: `await using codebox = new CodeBox({ image })`. */
export class CodeBox extends SimpleBox {
  private readonly engine: Engine

  constructor(options: CodeBoxOptions, runtime: Boxlite) {
    const { packageIndex, ...boxOptions } = options
    super(boxOptions, runtime)
    this.engine = new Engine(() => this.start(), packageIndex)
  }

  /** Runs `code` with `python3`; its stdout then stderr. Nonzero exit: ProgramFailed (an ExecError) with the traceback in `stderr`. */
  run(code: string, options?: RunOptions): Promise<string> {
    return this.engine.run(code, options)
  }

  /** Runs a .py file: a host file if `path` names one, else a file in the box. */
  runScript(path: string, options?: RunOptions): Promise<string> {
    return this.engine.runScript(path, options)
  }

  /** `pip install spec` (a requirement, a wheel path in the box, or a URL); pip's output. */
  installPackage(spec: string, options?: RunOptions): Promise<string> {
    return this.engine.installPackages([spec], options)
  }

  installPackages(...specs: Array<string>): Promise<string> {
    return this.engine.installPackages(specs)
  }

  /** Runs a cell in the CodeBox's interpreter (started on first use); what the code does, even raising, is in the result. */
  runCode(code: string, options?: RunCodeOptions): Promise<CodeExecution> {
    return this.engine.runCode(code, options)
  }

  restartInterpreter(): Promise<void> {
    return this.engine.restartInterpreter()
  }

  override async stop(): Promise<void> {
    await this.engine.restartInterpreter()
    await super.stop()
  }
}

/** The Effect face's CodeBox: the same operations as Effects. */
export interface CodeBoxService {
  readonly box: Box
  readonly run: (code: string, options?: RunOptions) => Effect.Effect<string, CodeBoxError>
  readonly runScript: (path: string, options?: RunOptions) => Effect.Effect<string, CodeBoxError>
  readonly installPackages: (packages: ReadonlyArray<string>, options?: RunOptions) => Effect.Effect<string, CodeBoxError>
  readonly runCode: (code: string, options?: RunCodeOptions) => Effect.Effect<CodeExecution, CodeBoxError>
  readonly restartInterpreter: Effect.Effect<void, CodeBoxError>
}

export type CodeBoxError = ExecError | TimeoutError | InvalidOptions | StartError | UnexpectedError

const asError = (e: unknown): CodeBoxError => (e instanceof BoxliteError ? e as CodeBoxError : new UnexpectedError(e))
const runPromise = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect).catch((e: unknown) => Promise.reject(asError(e)))

/** A started CodeBox that lives as long as the enclosing Scope (Effect face): removed on close. */
export const scoped = (options: CodeBoxOptions = {}): Effect.Effect<CodeBoxService, CreateError | StartError | InvalidOptions, Runtime | Scope.Scope> =>
  Effect.gen(function*() {
    const { packageIndex, ...boxOptions } = options
    const engine = yield* Effect.try({ try: () => new Engine(() => Promise.resolve(promiseBox), packageIndex), catch: (e) => e as InvalidOptions })
    const box = yield* Effect.acquireRelease(Runtime.use((runtime) => runtime.create(boxOptions)), (box) => box.remove)
    const promiseBox = new PromiseBox(box, runPromise)
    yield* Effect.addFinalizer(() => Effect.promise(() => engine.restartInterpreter()))
    yield* box.start
    const lift = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: asError })
    return {
      box,
      run: (code, options) => lift(() => engine.run(code, options)),
      runScript: (path, options) => lift(() => engine.runScript(path, options)),
      installPackages: (packages, options) => lift(() => engine.installPackages(packages, options)),
      runCode: (code, options) => lift(() => engine.runCode(code, options)),
      restartInterpreter: lift(() => engine.restartInterpreter())
    }
  })

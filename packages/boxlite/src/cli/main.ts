/**
 * Runs the `boxlite` command line and maps the outcome to Docker's exit codes: the command's
 * own code; 125 when boxlite fails (bad usage included); 126 / 127 when the command cannot be
 * run (not executable / not found).
 */
import { BoxliteError, ExecError, InvalidOptions } from "@boxlite/core"
import { Cause, Console, Effect, FileSystem, Layer, Path, Stdio, Terminal } from "effect"
import { CliConfig, CliError, CliOutput, Command, Flag, GlobalFlag } from "effect/cli"
import { ChildProcessSpawner } from "effect/process"
import { dockerArgv } from "./argv.js"
import { boxlite, Exited, VERSION } from "./commands.js"

/** Option names of the API as the CLI spells them, for error messages. */
const FLAG_OF: Readonly<Record<string, string>> = {
  image: "IMAGE",
  name: "--name",
  cpus: "--cpus",
  memoryMib: "--memory",
  env: "-e",
  workingDir: "-w",
  timeoutMs: "--timeout",
  homeDir: "BOXLITE_HOME"
}

/** `boxlite: <what went wrong>`, naming the CLI's flags where the API names its options. */
export const describeError = (error: unknown): string => {
  if (error instanceof InvalidOptions) {
    const problem = error.message.replace(/^invalid option "[^"]*": /, "")
    // `memoryMib`, `exec.workingDir`, `exec.env[0]`: the option a flag set.
    const option = error.field.replace(/^exec\./, "").split(/[.[]/)[0]!
    return `InvalidOptions: ${FLAG_OF[option] ?? error.field}: ${problem}`
  }
  if (error instanceof BoxliteError) return `${error._tag}: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}

/**
 * A command that could not be started: 127 when it does not exist, 126 when it cannot be
 * executed (Docker's codes); undefined for every other error.
 */
export const execFailureCode = (error: unknown): number | undefined =>
  error instanceof ExecError && (error.exitCode === 126 || error.exitCode === 127) ? error.exitCode : undefined

/**
 * Usage errors as Docker prints them: the problem and where to read more, on stderr (not the
 * whole help, which `--help` prints on stdout).
 */
const presenter: CliOutput.Presenter = {
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(
        `${event.errors.map((e) => `boxlite: ${e.message}`).join("\n")}\nSee '${event.commandPath.join(" ")} --help'.`
      )
      : CliOutput.defaultPresenter.present(event)
}

/** Effect's --version without its `-v`: in Docker `run -v` is a volume, which must not print a version and exit 0. */
const versionFlag = GlobalFlag.Action({
  flag: Flag.Boolean("version").pipe(Flag.withDescription("Show version information"), Flag.withDefault(false)),
  run: GlobalFlag.Version.run
})

/**
 * What Effect's CLI asks of its platform. It reads no files and spawns nothing for these
 * commands, so the Node services it would take from @effect/platform-node are not needed:
 * a terminal of this process's size, and standard I/O, suffice.
 */
const environment = Layer.mergeAll(
  FileSystem.layerNoop({}),
  Path.layer,
  Layer.succeed(Terminal.Terminal, Terminal.make({
    columns: Effect.sync(() => process.stdout.columns ?? 80),
    rows: Effect.sync(() => process.stdout.rows ?? 24),
    size: Effect.die("boxlite asks for no terminal size stream"),
    readInput: Effect.die("boxlite prompts for nothing"),
    readLine: Effect.die("boxlite prompts for nothing"),
    display: (text) => Effect.sync(() => void process.stdout.write(text))
  })),
  Layer.succeed(ChildProcessSpawner.ChildProcessSpawner, ChildProcessSpawner.make(() => Effect.die("boxlite spawns nothing through the CLI"))),
  Stdio.layerTest({ stdoutIsTerminal: Effect.sync(() => process.stdout.isTTY === true), stderrIsTerminal: Effect.sync(() => process.stderr.isTTY === true) }),
  CliOutput.layerPresenter(presenter),
  // Built-ins: --help, --version and --completions (the wizard and --log-level have no use here: BOXLITE_LOG sets the level).
  CliConfig.layer({ builtIns: [GlobalFlag.Help, versionFlag, GlobalFlag.Completions] })
)

/** The exit code of a failed run; its reason on stderr unless the CLI's presenter showed it. */
const failureCode = (cause: Cause.Cause<unknown>): Effect.Effect<number> =>
  Effect.sync(() => {
    const error = Cause.squash(cause)
    if (error instanceof Exited) return error.code
    if (CliError.isCliError(error)) {
      // `boxlite` alone shows the help, as `docker` does; a wrong invocation was reported by the presenter.
      return error._tag === "ShowHelp" && error.errors.length === 0 ? 0 : 125
    }
    process.stderr.write(`boxlite: ${describeError(error)}\n`)
    return execFailureCode(error) ?? 125
  })

/** Runs `argv` (without node and the script); succeeds with the exit code. */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number> =>
  Command.runWith(boxlite, { version: VERSION })(dockerArgv(argv)).pipe(
    Effect.provide(environment),
    Effect.as(0),
    Effect.catchCause(failureCode)
  )

/** `run` as a Promise: resolves with the exit code. */
export const main = (argv: ReadonlyArray<string>): Promise<number> => Effect.runPromise(run(argv))

/**
 * Structured logs, chosen by the environment as the reference documents: `BOXLITE_LOG` (or
 * `RUST_LOG`, its alias) = trace | debug | info | warn | error | off. Lines go to stderr as
 * logfmt (`BOXLITE_LOG_FORMAT=json` for JSON). Unset: warnings and errors only.
 */
import { Cause, Effect, Exit, Layer, Logger, type LogLevel, References } from "effect"

const LEVELS: Record<string, LogLevel.LogLevel> = {
  trace: "Trace", debug: "Debug", info: "Info", warn: "Warn", error: "Error", off: "None"
}

/**
 * The level a `BOXLITE_LOG`/`RUST_LOG` value asks for. RUST_LOG-style directives
 * (`boxlite=debug,info`) are understood: a `boxlite...=level` directive wins over a bare level.
 */
export const logLevelOf = (value: string | undefined): LogLevel.LogLevel | undefined => {
  if (!value) return undefined
  let bare: LogLevel.LogLevel | undefined
  for (const directive of value.toLowerCase().split(",").map((d) => d.trim())) {
    const [target, level] = directive.includes("=") ? directive.split("=", 2) as [string, string] : [undefined, directive]
    const parsed = LEVELS[level]
    if (!parsed) continue
    if (target?.startsWith("boxlite")) return parsed
    if (target === undefined) bare = parsed
  }
  return bare
}

/**
 * Logger and minimum level from the environment (read when the layer is built). Lines go to
 * stderr, or to `sink` (a box's supervisor writes them to its log file).
 */
export const layerFromEnv = (env: NodeJS.ProcessEnv = process.env, sink?: (line: string) => void): Layer.Layer<never> => {
  const level = logLevelOf(env["BOXLITE_LOG"]) ?? logLevelOf(env["RUST_LOG"]) ?? "Warn"
  const format = env["BOXLITE_LOG_FORMAT"] === "json" ? Logger.formatJson : Logger.formatLogFmt
  return Layer.merge(
    Logger.layer([sink ? Logger.map(format, sink) : Logger.withConsoleError(format)]),
    Layer.succeed(References.MinimumLogLevel, level)
  )
}

/**
 * Logs `step` at debug level when `self` ends, with its duration (`ms`), the annotations, and
 * `failed` with the error's message if it failed: what `BOXLITE_LOG=debug` shows of each step.
 */
export const timed = (step: string, annotations: Record<string, unknown> = {}) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.onExit(self, (exit) => {
      const ms = Math.round(performance.now() - started)
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      const failed = Exit.isFailure(exit) ? { failed: error instanceof Error ? error.message : "interrupted" } : {}
      return Effect.logDebug(step).pipe(Effect.annotateLogs({ ...annotations, ms, ...failed }))
    })
  })

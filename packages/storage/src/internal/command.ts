import { Effect } from "effect"
import { execFile } from "node:child_process"

export interface CommandFailure {
  readonly command: string
  readonly code: number | string | null
  readonly stderr: string
}

/** Runs a program to completion; fails with its exit code and stderr. */
export const runCommand = (file: string, args: ReadonlyArray<string>): Effect.Effect<string, CommandFailure> =>
  Effect.callback<string, CommandFailure>((resume) => {
    const child = execFile(file, args, { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code ?? child.exitCode
        resume(Effect.fail({ command: [file, ...args].join(" "), code: code ?? null, stderr: String(stderr || error.message).trim() }))
      } else resume(Effect.succeed(String(stdout)))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

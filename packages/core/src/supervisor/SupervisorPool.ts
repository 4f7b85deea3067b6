/**
 * Spawns the supervisor processes of one home directory, and keeps one spare loaded ahead of
 * the next start: loading Node and the supervisor takes ~0.3 s, which would otherwise be on
 * every start's path. A spare ends by itself when this process does (its stdin closes).
 *
 * Runs in the runtime (the launching process), not in a supervisor.
 */
import { Context } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import type * as net from "node:net"
import { outputTail } from "@boxlite/driver"

/** How this platform runs a supervisor: a Node module that calls `runSupervisorMain` with the same layers. */
export class SupervisorEntry extends Context.Service<SupervisorEntry, {
  readonly module: string
}>()("@boxlite/core/SupervisorEntry") {}

export interface SupervisorProcess {
  readonly child: ChildProcess
  /** The last 4 KiB it wrote on stderr (it logs to its box's file; this catches a crash on load). */
  readonly stderr: () => string
}

export class SupervisorPool {
  private spare: SupervisorProcess | undefined
  private closed = false

  /** `driver`: what a spare loads ahead (the runtime's driver). */
  constructor(private readonly module: string, private readonly homeDir: string, private readonly driver: string) {}

  /** A loaded (or loading) supervisor, waiting for its command on stdin. */
  take(): SupervisorProcess {
    const spare = this.spare
    this.spare = undefined
    return spare && spare.child.exitCode === null && spare.child.signalCode === null ? spare : this.spawn()
  }

  /** Loads a spare for the next start, if there is none. */
  refill(): void {
    if (!this.closed && !this.spare) this.spare = this.spawn()
  }

  close(): void {
    this.closed = true
    this.spare?.child.stdin?.end()
    this.spare = undefined
  }

  private spawn(): SupervisorProcess {
    const child = spawn(process.execPath, [this.module, this.homeDir, this.driver], {
      // Its own session: a Ctrl-C meant for this process does not reach a detached box.
      detached: true,
      stdio: ["pipe", "ignore", "pipe", "pipe"]
    })
    const stderr = outputTail(child.stderr)
    child.on("error", (e) => stderr.note(`cannot start: ${e.message}`))
    // Idle, it must not keep this process alive; a launch refs it while it waits for the report.
    child.unref()
    for (const pipe of [child.stdin, child.stderr, child.stdio[3]]) (pipe as net.Socket | null)?.unref()
    return { child, stderr: stderr.text }
  }
}

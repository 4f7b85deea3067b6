/**
 * A QMP client over the monitor socketpair: commands in order, answers in order (QMP answers
 * each command before it reads the next one), events dropped. QEMU faces the guest, so what it
 * writes here is bounded and parsed, never trusted for more than an answer.
 */
import type { Duplex } from "node:stream"

/** A QMP line longer than this is not an answer QEMU would send: the monitor is closed. */
const MAX_LINE = 1024 * 1024

export class QmpError extends Error {}

interface Waiter {
  readonly resolve: (value: unknown) => void
  readonly reject: (error: Error) => void
}

export class Qmp {
  private text = ""
  private readonly waiting: Array<Waiter> = []
  private closedWith: Error | undefined
  /** QEMU's version, from the greeting (e.g. "7.2.22"). */
  version = ""

  private constructor(private readonly socket: Duplex, greeting: string, leftover: string) {
    const parsed = JSON.parse(greeting) as { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number }; package?: string } } }
    const v = parsed.QMP?.version
    this.version = v?.qemu ? `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package ? ` (${v.package.trim()})` : ""}` : "unknown"
    socket.on("data", (d: Buffer) => this.onData(d.toString()))
    socket.on("error", (e) => this.close(new QmpError(`QEMU's monitor failed: ${e.message}`)))
    socket.on("close", () => this.close(new QmpError("QEMU's monitor closed")))
    if (leftover) this.onData(leftover)
  }

  /** Takes over a monitor whose first line (the greeting) is in `received`, and leaves negotiation mode. */
  static async open(socket: Duplex, received: string): Promise<Qmp> {
    const eol = received.indexOf("\n")
    const qmp = new Qmp(socket, received.slice(0, eol), received.slice(eol + 1))
    await qmp.execute("qmp_capabilities")
    return qmp
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closedWith) return Promise.reject(this.closedWith)
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject })
      this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`)
    })
  }

  close(reason: Error = new QmpError("QEMU's monitor was closed")): void {
    if (this.closedWith) return
    this.closedWith = reason
    for (const waiter of this.waiting.splice(0)) waiter.reject(reason)
    this.socket.destroy()
  }

  private onData(chunk: string): void {
    this.text += chunk
    let eol: number
    while ((eol = this.text.indexOf("\n")) >= 0) {
      const line = this.text.slice(0, eol)
      this.text = this.text.slice(eol + 1)
      this.onLine(line)
    }
    if (this.text.length > MAX_LINE) this.close(new QmpError("QEMU's monitor sent an oversized line"))
  }

  private onLine(line: string): void {
    let message: { return?: unknown; error?: { class?: string; desc?: string }; event?: string }
    try {
      message = JSON.parse(line) as typeof message
    } catch {
      return this.close(new QmpError("QEMU's monitor sent something that is not JSON"))
    }
    if (message.event !== undefined) return
    const waiter = this.waiting.shift()
    if (!waiter) return
    if (message.error) waiter.reject(new QmpError(message.error.desc ?? message.error.class ?? "QMP error"))
    else waiter.resolve(message.return)
  }
}

/**
 * The guest agent's stream through vfkit's vsock proxy. vfkit accepts on its unix socket at once
 * and only then dials the guest's vsock port; while the agent is not listening yet (the guest is
 * booting) that dial fails and vfkit closes the connection, with whatever the host wrote lost.
 * So until the guest's first byte, this stream keeps what was written, reconnects and writes it
 * again; from the first byte on it is the connection, and its end is the stream's end.
 */
import * as net from "node:net"
import { Duplex } from "node:stream"

export class AgentStream extends Duplex {
  private socket: net.Socket | undefined
  /** What was written before the guest answered: sent again on each new connection. */
  private unanswered: Array<Buffer> = []
  private answered = false
  private retry: NodeJS.Timeout | undefined
  /** Resolves at the first connection to vfkit's socket (vfkit proxies the port). */
  readonly connected: Promise<void>
  private onConnected!: () => void

  constructor(private readonly socketPath: string, private readonly retryMs = 50) {
    super()
    this.connected = new Promise((resolve) => (this.onConnected = resolve))
    this.dial()
  }

  private dial(): void {
    this.retry = undefined
    if (this.destroyed) return
    const socket = net.createConnection(this.socketPath)
    this.socket = socket
    socket.on("connect", () => {
      this.onConnected()
      for (const chunk of this.unanswered) socket.write(chunk)
    })
    socket.on("data", (data: Buffer) => {
      this.answered = true
      this.unanswered = []
      if (!this.push(data)) socket.pause()
    })
    // Reported by close: a refused or dropped connection is retried, an answered one ends.
    socket.on("error", () => undefined)
    socket.on("close", () => {
      if (this.destroyed || this.socket !== socket) return
      this.socket = undefined
      if (this.answered) {
        this.push(null)
        this.destroy()
      } else {
        this.retry = setTimeout(() => this.dial(), this.retryMs)
      }
    })
  }

  override _read(): void {
    this.socket?.resume()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.answered) this.unanswered.push(chunk)
    const socket = this.socket
    // Not connected: the chunk goes with the next connection.
    if (!socket || socket.connecting || socket.destroyed) return callback()
    if (socket.write(chunk)) return callback()
    // A connection that drops instead of draining: the chunk is in `unanswered` or lost with the stream.
    let done = false
    const finish = () => {
      if (done) return
      done = true
      callback()
    }
    socket.once("drain", finish)
    socket.once("close", finish)
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket?.end()
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.retry)
    this.socket?.destroy()
    this.socket = undefined
    callback(error)
  }
}

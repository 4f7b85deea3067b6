/**
 * A client's end of the agent protocol (packages/agent-protocol/PROTOCOL.md), spoken to a box's
 * supervisor: handshake, exec streams multiplexed by id, credit-based flow control, ping, metrics.
 * Promise-based on purpose: it is driven by socket events; the Effect API wraps it.
 */
import {
  Channel, ControlDone, type ControlRequest, type CopyRequest, decodeCredit, decodeJson, encodeCredit, encodeFrame, encodeJson, ErrorMessage, type ExecRequest,
  ExitStatus, type Frame, FrameDecoder, FrameType, HelloAck, INITIAL_WINDOW, MAX_DATA_CHUNK, MetricsReport, PROTOCOL_VERSION, Started
} from "@boxlite/agent-protocol"
import type { Duplex } from "node:stream"
import { OutputQueue } from "./OutputQueue.js"

/**
 * Internal reasons, never shown as such: the Execution and BoxHandle turn them into ExecError
 * (every error a user sees is a BoxliteError).
 */
export class ChannelClosed extends Error {}

/** The guest (or the supervisor) refused an EXEC: `code` is spawn_failed, paused, ... */
export class SpawnFailed extends Error {
  constructor(readonly code: string, message: string) {
    super(message)
  }
}

/** A write to the stdin of a command that ended, or whose stdin was closed. */
export class StdinClosed extends Error {}

/** The guest ended a copy with ERROR: `code` is not_found, copy_failed, cancelled or bad_message. */
export class CopyRefused extends Error {
  constructor(readonly code: string, message: string) {
    super(message)
  }
}

/**
 * One COPY_IN or COPY_OUT stream (PROTOCOL.md, "Copying files"): the archive goes out as STDIN
 * within the window, or comes in as STDOUT into `data`, credited as it is consumed.
 */
export class CopyChannel {
  readonly data: OutputQueue
  /** Resolves on the guest's EXIT 0, rejects with CopyRefused or the connection's loss. */
  readonly done: Promise<void>
  private window = INITIAL_WINDOW
  private creditWaiter: (() => void) | undefined
  private failure: Error | undefined
  private dataEnded = false
  private settle!: { resolve: () => void; reject: (e: Error) => void }
  finished = false

  constructor(private readonly conn: AgentConnection, readonly id: number) {
    this.data = new OutputQueue((n) => conn.send(FrameType.CREDIT, id, encodeCredit(Channel.stdout, n)))
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }))
    this.done.catch(() => {})
  }

  /** COPY_OUT: the next chunk of the archive (credited to the guest as it is taken), null at its end. */
  read(): Promise<Uint8Array | null> {
    return this.data.read()
  }

  /** COPY_IN: sends archive bytes, waiting for the guest's credit; throws once the copy failed. */
  async write(bytes: Uint8Array): Promise<void> {
    for (let offset = 0; offset < bytes.length;) {
      if (this.failure) throw this.failure
      if (this.finished) throw new CopyRefused("copy_failed", "the guest ended the copy before the archive did")
      if (this.window === 0) {
        await new Promise<void>((resolve) => (this.creditWaiter = resolve))
        continue
      }
      const n = Math.min(MAX_DATA_CHUNK, this.window, bytes.length - offset)
      this.conn.send(FrameType.STDIN, this.id, bytes.subarray(offset, offset + n))
      this.window -= n
      offset += n
    }
  }

  /** COPY_IN: the archive is complete. */
  end(): void {
    if (!this.finished) this.conn.send(FrameType.STDIN_CLOSE, this.id)
  }

  /** Stops the copy in the guest (it answers ERROR cancelled); what it sends meanwhile is dropped. */
  cancel(): void {
    if (this.finished) return
    this.conn.send(FrameType.SIGNAL, this.id, encodeJson({ signal: 9 }))
    this.data.discard()
  }

  /** @internal */
  onFrame(frame: Frame): string | undefined {
    switch (frame.type) {
      case FrameType.STDOUT:
        if (this.dataEnded) return "copy data after its end"
        if (frame.payload.length === 0) this.dataEnded = true
        return this.data.push(frame.payload) ? undefined : "copy data exceeded its window"
      case FrameType.CREDIT: {
        const credit = decodeCredit(frame.payload)
        if (!credit) return "bad CREDIT payload"
        if (credit.channel === Channel.stdin) {
          this.window += credit.bytes
          this.wakeWriter()
        }
        return undefined
      }
      case FrameType.EXIT:
        this.close()
        this.settle.resolve()
        // A COPY_OUT's EXIT follows the end of its archive; a reader must not wait for ever.
        if (!this.dataEnded) this.data.push(new Uint8Array(0))
        return undefined
      case FrameType.ERROR: {
        const error = decodeJson(ErrorMessage, frame.payload)
        this.fail(new CopyRefused(error?.code ?? "copy_failed", error?.message ?? "the guest refused the copy"))
        return undefined
      }
      default:
        return `unexpected frame type ${frame.type} on a copy stream`
    }
  }

  /** @internal */
  fail(error: Error): void {
    this.failure = error
    this.close()
    this.settle.reject(error)
    this.data.fail(error)
  }

  private close(): void {
    this.finished = true
    this.conn.forget(this.id)
    this.wakeWriter()
  }

  private wakeWriter(): void {
    const waiter = this.creditWaiter
    this.creditWaiter = undefined
    waiter?.()
  }
}

/** One exec stream: its output queues, its stdin with window accounting, and its outcome. */
export class ExecChannel {
  readonly stdout: OutputQueue
  readonly stderr: OutputQueue
  readonly started: Promise<number>
  readonly exit: Promise<ExitStatus>
  private stdinWindow = INITIAL_WINDOW
  private stdinClosed = false
  private hasStarted = false
  /** STDOUT and/or STDERR once their final empty frame came. */
  private readonly outputsEnded = new Set<number>()
  private creditWaiter: (() => void) | undefined
  /** Why the stream ended without an exit (the connection was lost), if it did. */
  private failure: Error | undefined
  private settleStarted!: { resolve: (pid: number) => void; reject: (e: Error) => void }
  private settleExit!: { resolve: (s: ExitStatus) => void; reject: (e: Error) => void }
  done = false

  constructor(private readonly conn: AgentConnection, readonly id: number) {
    this.stdout = new OutputQueue((n) => conn.send(FrameType.CREDIT, id, encodeCredit(Channel.stdout, n)))
    this.stderr = new OutputQueue((n) => conn.send(FrameType.CREDIT, id, encodeCredit(Channel.stderr, n)))
    this.started = new Promise((resolve, reject) => (this.settleStarted = { resolve, reject }))
    this.exit = new Promise((resolve, reject) => (this.settleExit = { resolve, reject }))
    // Callers may only look at `exit`; a failed start must not become an unhandled rejection.
    this.started.catch(() => {})
    this.exit.catch(() => {})
  }

  /** Writes to the process's stdin, waiting for the guest's credit when the window is used up. */
  async writeStdin(data: Uint8Array): Promise<void> {
    let offset = 0
    while (offset < data.length) {
      if (this.failure) throw this.failure
      if (this.done || this.stdinClosed) throw new StdinClosed("stdin is closed")
      if (this.stdinWindow === 0) {
        await new Promise<void>((resolve) => (this.creditWaiter = resolve))
        continue
      }
      const n = Math.min(MAX_DATA_CHUNK, this.stdinWindow, data.length - offset)
      this.conn.send(FrameType.STDIN, this.id, data.subarray(offset, offset + n))
      this.stdinWindow -= n
      offset += n
    }
  }

  closeStdin(): void {
    if (this.stdinClosed || this.done) return
    this.stdinClosed = true
    this.conn.send(FrameType.STDIN_CLOSE, this.id)
  }

  signal(signal: number): void {
    if (!this.done) this.conn.send(FrameType.SIGNAL, this.id, encodeJson({ signal }))
  }

  resize(rows: number, cols: number): void {
    if (!this.done) this.conn.send(FrameType.RESIZE, this.id, encodeJson({ rows, cols }))
  }

  /** @internal called by the connection for each frame of this stream. */
  onFrame(frame: Frame): string | undefined {
    switch (frame.type) {
      case FrameType.STARTED: {
        const started = decodeJson(Started, frame.payload)
        if (!started) return "bad STARTED payload"
        this.hasStarted = true
        this.settleStarted.resolve(started.pid)
        return undefined
      }
      case FrameType.STDOUT:
        if (frame.payload.length === 0) this.outputsEnded.add(frame.type)
        return this.stdout.push(frame.payload) ? undefined : "stdout exceeded its window"
      case FrameType.STDERR:
        if (frame.payload.length === 0) this.outputsEnded.add(frame.type)
        return this.stderr.push(frame.payload) ? undefined : "stderr exceeded its window"
      case FrameType.CREDIT: {
        const credit = decodeCredit(frame.payload)
        if (!credit) return "bad CREDIT payload"
        if (credit.channel === Channel.stdin) {
          this.stdinWindow += credit.bytes
          const waiter = this.creditWaiter
          this.creditWaiter = undefined
          waiter?.()
        }
        return undefined
      }
      case FrameType.EXIT: {
        const status = decodeJson(ExitStatus, frame.payload)
        if (!status) return "bad EXIT payload"
        // Else `started`, or a reader of the output, would wait for ever.
        if (!this.hasStarted) return "EXIT before STARTED"
        if (this.outputsEnded.size < 2) return "EXIT before the end of stdout and stderr"
        this.finish()
        this.settleExit.resolve(status)
        return undefined
      }
      case FrameType.ERROR: {
        const error = decodeJson(ErrorMessage, frame.payload)
        const failure = new SpawnFailed(error?.code ?? "spawn_failed", error ? error.message : "the guest refused the command")
        this.fail(failure)
        return undefined
      }
      default:
        return `unexpected frame type ${frame.type} on an exec stream`
    }
  }

  /** @internal the stream ended without an exit: connection lost or spawn failure. */
  fail(error: Error): void {
    this.failure = error
    this.finish()
    this.settleStarted.reject(error)
    this.settleExit.reject(error)
    this.stdout.fail(error)
    this.stderr.fail(error)
  }

  private finish(): void {
    this.done = true
    this.conn.forget(this.id)
    const waiter = this.creditWaiter
    this.creditWaiter = undefined
    waiter?.()
  }
}

export class AgentConnection {
  private readonly decoder = new FrameDecoder()
  private readonly streams = new Map<number, ExecChannel | CopyChannel>()
  private readonly pings = new Map<string, () => void>()
  private readonly metricsWaiters = new Map<string, (report: MetricsReport | undefined) => void>()
  private readonly controlWaiters = new Map<string, (done: ControlDone | undefined) => void>()
  private nextStream = 1
  private closedWith: Error | undefined
  private helloWaiter: { resolve: (agent: string) => void; reject: (e: Error) => void } | undefined
  /** Resolves when the channel is gone, with the reason. */
  readonly closed: Promise<Error>
  private markClosed!: (e: Error) => void
  agentVersion = ""

  private constructor(private readonly socket: Duplex, lossReason: () => string) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve))
    socket.on("data", (chunk: Buffer) => this.onData(chunk))
    socket.on("error", (e) => this.close(new ChannelClosed(`${lossReason()} (${e.message})`)))
    socket.on("close", () => this.close(new ChannelClosed(lossReason())))
  }

  /**
   * Sends HELLO and resolves once the guest answers; rejects if the channel closes first.
   * `lossReason` says why, when the socket closes under running commands.
   */
  static async open(socket: Duplex, lossReason: () => string = () => "the box's agent channel closed"): Promise<AgentConnection> {
    const conn = new AgentConnection(socket, lossReason)
    const acked = new Promise<string>((resolve, reject) => (conn.helloWaiter = { resolve, reject }))
    conn.send(FrameType.HELLO, 0, encodeJson({ version: PROTOCOL_VERSION }))
    conn.agentVersion = await acked
    return conn
  }

  exec(request: ExecRequest): ExecChannel {
    if (this.closedWith) throw this.closedWith
    const id = this.nextStream++
    const channel = new ExecChannel(this, id)
    this.streams.set(id, channel)
    this.send(FrameType.EXEC, id, encodeJson(request))
    return channel
  }

  /** Starts a COPY_IN or COPY_OUT stream. */
  copy(type: typeof FrameType.COPY_IN | typeof FrameType.COPY_OUT, request: CopyRequest): CopyChannel {
    if (this.closedWith) throw this.closedWith
    const id = this.nextStream++
    const channel = new CopyChannel(this, id)
    this.streams.set(id, channel)
    this.send(type, id, encodeJson(request))
    return channel
  }

  /** Round trip of a PING through the guest agent, in milliseconds. */
  async ping(): Promise<number> {
    if (this.closedWith) throw this.closedWith
    const token = `${process.hrtime.bigint()}`
    const start = performance.now()
    await new Promise<void>((resolve) => {
      this.pings.set(token, resolve)
      this.send(FrameType.PING, 0, Buffer.from(token))
    })
    return performance.now() - start
  }

  /** The guest kernel's memory and network counters. */
  async metrics(): Promise<MetricsReport> {
    if (this.closedWith) throw this.closedWith
    const token = `${process.hrtime.bigint()}`
    const report = await new Promise<MetricsReport | undefined>((resolve) => {
      this.metricsWaiters.set(token, resolve)
      this.send(FrameType.METRICS, 0, Buffer.from(token))
    })
    if (!report) throw this.closedWith ?? new ChannelClosed("the agent channel closed")
    return report
  }

  /**
   * A CONTROL operation of the supervisor (pause, resume, snapshot, suspend). Resolves with its
   * CONTROL_DONE (which may carry an error); rejects if the channel closes first (a suspend
   * closes it after answering).
   */
  async control(op: ControlRequest["op"], dir?: string): Promise<ControlDone> {
    if (this.closedWith) throw this.closedWith
    const token = `${process.hrtime.bigint()}`
    const done = await new Promise<ControlDone | undefined>((resolve) => {
      this.controlWaiters.set(token, resolve)
      this.send(FrameType.CONTROL, 0, encodeJson({ token, op, ...(dir !== undefined ? { dir } : {}) }))
    })
    if (!done) throw this.closedWith ?? new ChannelClosed("the agent channel closed")
    return done
  }

  /** Asks the guest to sync and power off; the channel closes when the VM is gone. */
  shutdown(): void {
    if (!this.closedWith) this.send(FrameType.SHUTDOWN, 0)
  }

  get isClosed(): boolean {
    return this.closedWith !== undefined
  }

  /** @internal */
  send(type: number, stream: number, payload?: Uint8Array): void {
    if (this.closedWith) return
    this.socket.write(encodeFrame(type, stream, payload))
  }

  /** @internal */
  forget(id: number): void {
    this.streams.delete(id)
  }

  close(reason: Error): void {
    if (this.closedWith) return
    this.closedWith = reason
    this.helloWaiter?.reject(reason)
    for (const stream of [...this.streams.values()]) stream.fail(reason)
    for (const resolve of this.pings.values()) resolve()
    for (const resolve of this.metricsWaiters.values()) resolve(undefined)
    for (const resolve of this.controlWaiters.values()) resolve(undefined)
    this.socket.destroy()
    this.markClosed(reason)
  }

  private onData(chunk: Buffer): void {
    let frames: Array<Frame>
    try {
      frames = this.decoder.push(chunk)
    } catch (e) {
      this.close(new ChannelClosed(`agent protocol error: ${(e as Error).message}`))
      return
    }
    for (const frame of frames) {
      const problem = this.dispatch(frame)
      if (problem) {
        this.close(new ChannelClosed(`agent protocol error: ${problem}`))
        return
      }
    }
  }

  private dispatch(frame: Frame): string | undefined {
    if (frame.stream !== 0) {
      const stream = this.streams.get(frame.stream)
      // Late frames of a finished stream (e.g. credits) are harmless.
      return stream ? stream.onFrame(frame) : undefined
    }
    switch (frame.type) {
      case FrameType.HELLO_ACK: {
        const ack = decodeJson(HelloAck, frame.payload)
        if (!ack) return "bad HELLO_ACK"
        if (ack.version !== PROTOCOL_VERSION) return `the guest agent speaks protocol ${ack.version}, the host ${PROTOCOL_VERSION}`
        this.helloWaiter?.resolve(ack.agent)
        this.helloWaiter = undefined
        return undefined
      }
      case FrameType.PONG: {
        const token = Buffer.from(frame.payload).toString()
        this.pings.get(token)?.()
        this.pings.delete(token)
        return undefined
      }
      case FrameType.METRICS_REPORT: {
        const report = decodeJson(MetricsReport, frame.payload)
        if (!report) return "bad METRICS_REPORT"
        this.metricsWaiters.get(report.token)?.(report)
        this.metricsWaiters.delete(report.token)
        return undefined
      }
      case FrameType.CONTROL_DONE: {
        const done = decodeJson(ControlDone, frame.payload)
        if (!done) return "bad CONTROL_DONE"
        this.controlWaiters.get(done.token)?.(done)
        this.controlWaiters.delete(done.token)
        return undefined
      }
      case FrameType.ERROR: {
        const error = decodeJson(ErrorMessage, frame.payload)
        return `the guest reported: ${error ? `${error.code}: ${error.message}` : "an unreadable error"}`
      }
      default:
        return `unexpected frame type ${frame.type} on stream 0`
    }
  }
}

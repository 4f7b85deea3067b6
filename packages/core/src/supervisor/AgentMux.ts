/**
 * The supervisor's side of the agent channel: it holds the one connection to the guest agent
 * and serves the same protocol to any number of clients, mapping each client's stream ids and
 * PING/METRICS tokens onto the guest's (PROTOCOL.md, "Supervisor"). Frames are forwarded one
 * for one, so the guest's credit-based flow control reaches every client unchanged.
 *
 * Runs in the supervisor process.
 */
import {
  type ControlDone, ControlRequest, decodeJson, encodeFrame, encodeJson, ErrorMessage, type Frame, FrameDecoder, FrameType, type GuestConfig,
  HelloAck, MetricsReport, PROTOCOL_VERSION, Thawed, type ThawRequest
} from "@boxlite/agent-protocol"
import type { Duplex } from "node:stream"

const SIGKILL = 9

interface Client {
  readonly socket: Duplex
  /** Client stream id -> guest stream id. */
  readonly streams: Map<number, number>
}

/** Where a guest stream's frames go; `client` undefined once that client has gone. */
interface Route {
  client: Client | undefined
  readonly clientStream: number
}

/** A PING or METRICS in flight: which, who asked, with which token. */
interface Pending {
  readonly type: number
  readonly client: Client
  readonly token: Uint8Array
}

export class AgentMux {
  private readonly decoder = new FrameDecoder()
  private readonly clients = new Set<Client>()
  private readonly routes = new Map<number, Route>()
  private readonly pending = new Map<string, Pending>()
  private nextStream = 1
  private nextToken = 1
  /** The supervisor's own requests to the guest, answered in order. */
  private readonly waiters: Array<{ readonly type: number; resolve: (frame: Frame) => void; reject: (e: Error) => void }> = []
  private closedWith: Error | undefined
  /** Between FREEZE and THAW: what clients send the guest waits here (nothing may follow FREEZE). */
  private held: Array<Buffer> | undefined
  /** vCPUs stopped: new commands are refused rather than left hanging. */
  paused = false
  /** Runs a client's CONTROL request; set by the supervisor. */
  onControl: (request: ControlRequest) => Promise<ControlDone["result"]> = () => Promise.reject(new Error("not supported"))
  agentVersion = ""

  private constructor(private readonly agent: Duplex, private readonly onShutdown: () => void) {
    agent.on("data", (chunk: Buffer) => this.onAgentData(chunk))
    agent.on("error", (e) => this.close(new Error(`agent channel error: ${e.message}`)))
    agent.on("close", () => this.close(new Error("the agent channel closed")))
  }

  /** Handshakes with the guest agent; `onShutdown` runs when a client sends SHUTDOWN. */
  static async open(agent: Duplex, onShutdown: () => void, restored?: ThawRequest): Promise<AgentMux> {
    const mux = new AgentMux(agent, onShutdown)
    // A restored guest is frozen where it was saved: it speaks again after THAW (HELLO follows
    // at once: the guest reads it after THAW, and a round trip less is a warm start faster).
    const thawed = restored ? mux.thaw(restored) : undefined
    const greeted = mux.request(FrameType.HELLO, encodeJson({ version: PROTOCOL_VERSION }), FrameType.HELLO_ACK)
    greeted.catch(() => undefined)
    await thawed
    const ack = await greeted
    const hello = decodeJson(HelloAck, ack.payload)
    if (!hello || hello.version !== PROTOCOL_VERSION) throw new Error(`the guest agent speaks another protocol: ${Buffer.from(ack.payload).toString()}`)
    mux.agentVersion = hello.agent
    return mux
  }

  /** Network and mounts in the guest; before any client is served. */
  async configure(config: GuestConfig): Promise<void> {
    await this.request(FrameType.CONFIGURE, encodeJson(config), FrameType.CONFIGURED)
  }

  /** Until thaw(), the guest writes nothing more and is sent nothing more: a VM saved now holds no half frame. */
  async freeze(): Promise<void> {
    this.held = []
    try {
      await this.request(FrameType.FREEZE, new Uint8Array(0), FrameType.FROZEN)
    } catch (e) {
      this.release()
      throw e
    }
  }

  /** Sends what was held since FREEZE, and stops holding. */
  private release(): void {
    const held = this.held ?? []
    this.held = undefined
    for (const frame of held) this.agent.write(frame)
  }

  /** Lets the guest go on (and fixes its clock and RNG); a fresh thaw numbers new streams above the guest's old ones. */
  async thaw(request: ThawRequest): Promise<void> {
    const answer = this.request(FrameType.THAW, encodeJson(request), FrameType.THAWED)
    // In the same tick as THAW, before anything a client sends next: their order is kept.
    this.release()
    const thawed = decodeJson(Thawed, (await answer).payload)
    if (!thawed) throw new Error("the guest agent sent a bad THAWED")
    this.nextStream = Math.max(this.nextStream, thawed.nextStream)
  }

  /** Asks the guest to sync and power off. */
  shutdown(): void {
    this.sendAgent(FrameType.SHUTDOWN, 0)
  }

  /** Serves one client connection until it closes. */
  serve(socket: Duplex): void {
    if (this.closedWith) {
      socket.destroy()
      return
    }
    const client: Client = { socket, streams: new Map() }
    this.clients.add(client)
    const decoder = new FrameDecoder()
    socket.on("data", (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) this.fromClient(client, frame)
      } catch {
        socket.destroy()
      }
    })
    socket.on("error", () => socket.destroy())
    socket.on("close", () => this.dropClient(client))
  }

  /** Ends every client connection and the agent channel. */
  close(reason: Error): void {
    if (this.closedWith) return
    this.closedWith = reason
    for (const waiter of this.waiters.splice(0)) waiter.reject(reason)
    for (const client of this.clients) client.socket.destroy()
    this.agent.destroy()
  }

  private request(type: number, payload: Uint8Array, answer: number): Promise<Frame> {
    if (this.closedWith) return Promise.reject(this.closedWith)
    return new Promise((resolve, reject) => {
      this.waiters.push({ type: answer, resolve, reject })
      this.agent.write(encodeFrame(type, 0, payload))
    })
  }

  private sendAgent(type: number, stream: number, payload?: Uint8Array): void {
    if (this.closedWith) return
    const frame = encodeFrame(type, stream, payload)
    if (this.held) this.held.push(frame)
    else this.agent.write(frame)
  }

  private sendClient(client: Client, type: number, stream: number, payload?: Uint8Array): void {
    if (!client.socket.destroyed) client.socket.write(encodeFrame(type, stream, payload))
  }

  private refuse(client: Client, stream: number, code: string, message: string): void {
    this.sendClient(client, FrameType.ERROR, stream, encodeJson({ code, message }))
  }

  private fromClient(client: Client, frame: Frame): void {
    switch (frame.type) {
      case FrameType.HELLO:
        return this.sendClient(client, FrameType.HELLO_ACK, 0, encodeJson({ version: PROTOCOL_VERSION, agent: this.agentVersion }))
      case FrameType.EXEC:
      case FrameType.COPY_IN:
      case FrameType.COPY_OUT: {
        if (frame.stream === 0 || client.streams.has(frame.stream)) {
          return this.refuse(client, frame.stream, "stream_in_use", `stream ${frame.stream} is in use`)
        }
        if (this.paused) return this.refuse(client, frame.stream, "paused", "the box is paused: resume it first")
        const guestStream = this.nextStream++
        client.streams.set(frame.stream, guestStream)
        this.routes.set(guestStream, { client, clientStream: frame.stream })
        return this.sendAgent(frame.type, guestStream, frame.payload)
      }
      case FrameType.STDIN:
      case FrameType.STDIN_CLOSE:
      case FrameType.CREDIT:
      case FrameType.SIGNAL:
      case FrameType.RESIZE: {
        const guestStream = client.streams.get(frame.stream)
        if (guestStream !== undefined) this.sendAgent(frame.type, guestStream, frame.payload)
        return
      }
      case FrameType.PING:
      case FrameType.METRICS: {
        const token = `${this.nextToken++}`
        this.pending.set(token, { type: frame.type, client, token: frame.payload })
        return this.sendAgent(frame.type, 0, Buffer.from(token))
      }
      case FrameType.SHUTDOWN:
        return this.onShutdown()
      case FrameType.CONFIGURE:
        return this.refuse(client, 0, "bad_message", "the supervisor configured the guest at boot")
      case FrameType.CONTROL: {
        const request = decodeJson(ControlRequest, frame.payload)
        if (!request) return this.refuse(client, 0, "bad_message", "bad CONTROL payload")
        this.onControl(request).then(
          (result) => this.sendClient(client, FrameType.CONTROL_DONE, 0, encodeJson({ token: request.token, ...(result ? { result } : {}) })),
          (e: Error & { _tag?: string; reason?: unknown }) =>
            this.sendClient(client, FrameType.CONTROL_DONE, 0, encodeJson({
              token: request.token,
              error: { tag: e._tag ?? "BoxStateError", message: e.message, ...(typeof e.reason === "string" ? { reason: e.reason } : {}) }
            }))
        )
        return
      }
      default:
        return this.refuse(client, frame.stream, "bad_message", `unexpected frame type ${frame.type}`)
    }
  }

  /** A client that goes away takes its running commands with it. */
  private dropClient(client: Client): void {
    this.clients.delete(client)
    for (const guestStream of client.streams.values()) {
      const route = this.routes.get(guestStream)
      if (route) {
        route.client = undefined
        this.sendAgent(FrameType.SIGNAL, guestStream, encodeJson({ signal: SIGKILL }))
      }
    }
    for (const [token, pending] of this.pending) if (pending.client === client) this.pending.delete(token)
  }

  private onAgentData(chunk: Buffer): void {
    let frames: Array<Frame>
    try {
      frames = this.decoder.push(chunk)
    } catch (e) {
      this.close(new Error(`agent protocol error: ${(e as Error).message}`))
      return
    }
    for (const frame of frames) this.fromAgent(frame)
  }

  private fromAgent(frame: Frame): void {
    if (frame.stream !== 0) {
      const route = this.routes.get(frame.stream)
      if (!route) return
      const ends = frame.type === FrameType.EXIT || frame.type === FrameType.ERROR
      if (ends) {
        this.routes.delete(frame.stream)
        route.client?.streams.delete(route.clientStream)
      }
      if (route.client) this.sendClient(route.client, frame.type, route.clientStream, frame.payload)
      return
    }
    const waiter = this.waiters[0]
    if (waiter && (frame.type === waiter.type || frame.type === FrameType.ERROR)) {
      this.waiters.shift()
      if (frame.type === FrameType.ERROR) {
        const error = decodeJson(ErrorMessage, frame.payload)
        waiter.reject(new Error(error ? error.message : "the guest refused the request"))
      } else {
        waiter.resolve(frame)
      }
      return
    }
    switch (frame.type) {
      // A guest's answer counts only for a request of its kind: a METRICS_REPORT carrying a
      // PING's token would leave that client's ping unanswered for ever.
      case FrameType.PONG: {
        const token = Buffer.from(frame.payload).toString()
        const pending = this.pending.get(token)
        if (pending?.type !== FrameType.PING) return
        this.pending.delete(token)
        this.sendClient(pending.client, FrameType.PONG, 0, pending.token)
        return
      }
      case FrameType.METRICS_REPORT: {
        const report = decodeJson(MetricsReport, frame.payload)
        const pending = report && this.pending.get(report.token)
        if (!report || pending?.type !== FrameType.METRICS) return
        this.pending.delete(report.token)
        this.sendClient(pending.client, FrameType.METRICS_REPORT, 0, encodeJson({ ...report, token: Buffer.from(pending.token).toString() }))
        return
      }
      default:
        return
    }
  }
}

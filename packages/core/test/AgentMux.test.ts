// The supervisor's multiplexer between clients (AgentConnection, as in real use) and a fake
// guest agent that speaks the protocol over a real unix socket.
import { afterEach, describe, expect, it } from "vitest"
import { encodeFrame, encodeJson, type Frame, FrameDecoder, FrameType } from "@boxlite/agent-protocol"
import type * as net from "node:net"
import { AgentConnection } from "../src/internal/AgentConnection.js"
import { AgentMux } from "../src/supervisor/AgentMux.js"
import { socketPair } from "./socketPair.js"

/** A guest agent that runs nothing: each EXEC prints its argv[0] and exits, unless it is "hang". */
const fakeAgent = (socket: net.Socket) => {
  const seen: Array<Frame> = []
  const copies = new Set<number>()
  const decoder = new FrameDecoder()
  const send = (type: number, stream: number, payload?: Uint8Array) => socket.write(encodeFrame(type, stream, payload))
  socket.on("data", (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      seen.push(frame)
      const json = () => JSON.parse(Buffer.from(frame.payload).toString())
      switch (frame.type) {
        case FrameType.HELLO:
          send(FrameType.HELLO_ACK, 0, encodeJson({ version: 1, agent: "fake" }))
          break
        case FrameType.CONFIGURE:
          send(FrameType.CONFIGURED, 0, encodeJson({}))
          break
        case FrameType.EXEC: {
          const argv0 = json().argv[0] as string
          send(FrameType.STARTED, frame.stream, encodeJson({ pid: 100 + frame.stream }))
          if (argv0 === "hang") break
          send(FrameType.STDOUT, frame.stream, Buffer.from(`ran ${argv0} on guest stream ${frame.stream}`))
          send(FrameType.STDOUT, frame.stream)
          send(FrameType.STDERR, frame.stream)
          send(FrameType.EXIT, frame.stream, encodeJson({ exitCode: 0 }))
          break
        }
        case FrameType.SIGNAL:
          // A cancelled copy ends with ERROR cancelled, as the agent does.
          if (copies.has(frame.stream)) send(FrameType.ERROR, frame.stream, encodeJson({ code: "cancelled", message: "the copy was cancelled" }))
          break
        case FrameType.COPY_OUT:
          if (json().path === "/hang") {
            copies.add(frame.stream)
            break
          }
          send(FrameType.STDOUT, frame.stream, Buffer.from(`archive of ${json().path}`))
          send(FrameType.STDOUT, frame.stream)
          send(FrameType.EXIT, frame.stream, encodeJson({ exitCode: 0 }))
          break
        case FrameType.COPY_IN:
          // As an agent older than copies answers any frame type it does not know.
          send(FrameType.ERROR, frame.stream, encodeJson({ code: "bad_message", message: `unexpected frame type ${frame.type}` }))
          break
        case FrameType.PING:
          send(FrameType.PONG, 0, frame.payload)
          break
        case FrameType.METRICS:
          send(FrameType.METRICS_REPORT, 0, encodeJson({
            token: Buffer.from(frame.payload).toString(), memoryTotalBytes: 100, memoryAvailableBytes: 40, networkRxBytes: 7, networkTxBytes: 9
          }))
          break
      }
    }
  })
  return { seen }
}

const cleanups: Array<() => void> = []
afterEach(() => cleanups.splice(0).forEach((c) => c()))

const setup = async () => {
  const [hostEnd, guestEnd] = await socketPair()
  const agent = fakeAgent(guestEnd)
  let shutdowns = 0
  const mux = await AgentMux.open(hostEnd, () => void shutdowns++)
  await mux.configure({ mounts: [] })
  const connect = async () => {
    const [clientEnd, muxEnd] = await socketPair()
    mux.serve(muxEnd)
    return AgentConnection.open(clientEnd)
  }
  cleanups.push(() => mux.close(new Error("test over")))
  return { agent, mux, connect, shutdowns: () => shutdowns }
}

const output = async (conn: AgentConnection, argv0: string) => {
  const channel = conn.exec({ argv: [argv0], env: [] })
  let out = ""
  for (let chunk; (chunk = await channel.stdout.read()) !== null;) out += Buffer.from(chunk).toString()
  return { out, status: await channel.exit }
}

describe("AgentMux", () => {
  it("answers HELLO itself and gives each client's stream 1 its own guest stream", async () => {
    const { agent, connect } = await setup()
    const [a, b] = await Promise.all([connect(), connect()])
    expect(a.agentVersion).toBe("fake")
    const [fromA, fromB] = await Promise.all([output(a, "a"), output(b, "b")])
    expect(new Set([fromA.out, fromB.out])).toEqual(new Set(["ran a on guest stream 1", "ran b on guest stream 2"]))
    expect(fromA.status).toEqual({ exitCode: 0 })
    expect(agent.seen.filter((f) => f.type === FrameType.HELLO).length).toBe(1)
    expect(agent.seen.filter((f) => f.type === FrameType.EXEC).map((f) => f.stream)).toEqual([1, 2])
  })

  it("routes copy streams like execs; an agent that predates copies fails them at once", async () => {
    const { agent, connect } = await setup()
    const conn = await connect()
    await output(conn, "first")
    const out = conn.copy(FrameType.COPY_OUT, { path: "/etc/hostname" })
    let data = ""
    for (let chunk; (chunk = await out.read()) !== null;) data += Buffer.from(chunk).toString()
    await out.done
    expect(data).toBe("archive of /etc/hostname")
    expect(agent.seen.find((f) => f.type === FrameType.COPY_OUT)?.stream).toBe(2)
    const into = conn.copy(FrameType.COPY_IN, { path: "/root" })
    await expect(into.done).rejects.toMatchObject({ code: "bad_message" })
    await expect(into.write(Buffer.from("more"))).rejects.toMatchObject({ code: "bad_message" })
    // Cancelling reaches the guest stream, whose ERROR ends the copy (and frees the route).
    const stuck = conn.copy(FrameType.COPY_OUT, { path: "/hang" })
    stuck.cancel()
    await expect(stuck.done).rejects.toMatchObject({ code: "cancelled" })
    expect(agent.seen.some((f) => f.type === FrameType.SIGNAL && f.stream === 4)).toBe(true)
  })

  it("routes PONG and METRICS_REPORT back to the client that asked", async () => {
    const { connect } = await setup()
    const [a, b] = await Promise.all([connect(), connect()])
    const [pingA, pingB, metrics] = await Promise.all([a.ping(), b.ping(), b.metrics()])
    expect(pingA).toBeGreaterThanOrEqual(0)
    expect(pingB).toBeGreaterThanOrEqual(0)
    expect(metrics).toMatchObject({ memoryTotalBytes: 100, memoryAvailableBytes: 40, networkRxBytes: 7, networkTxBytes: 9 })
  })

  it("kills the running commands of a client that disconnects, and keeps serving the others", async () => {
    const { agent, connect } = await setup()
    const [a, b] = await Promise.all([connect(), connect()])
    const hanging = a.exec({ argv: ["hang"], env: [] })
    await hanging.started
    a.close(new Error("client went away"))
    await expect.poll(() => agent.seen.find((f) => f.type === FrameType.SIGNAL)).toBeDefined()
    const signal = agent.seen.find((f) => f.type === FrameType.SIGNAL)!
    expect(signal.stream).toBe(1)
    expect(JSON.parse(Buffer.from(signal.payload).toString())).toEqual({ signal: 9 })
    expect((await output(b, "b")).out).toBe("ran b on guest stream 2")
  })

  it("forwards a client's RESIZE to the guest stream of that exec", async () => {
    const { agent, connect } = await setup()
    const [a, b] = await Promise.all([connect(), connect()])
    await b.exec({ argv: ["hang"], env: [] }).started
    const hanging = a.exec({ argv: ["hang"], env: [] })
    await hanging.started
    hanging.resize(50, 132)
    await expect.poll(() => agent.seen.find((f) => f.type === FrameType.RESIZE)).toBeDefined()
    const resize = agent.seen.find((f) => f.type === FrameType.RESIZE)!
    expect(resize.stream).toBe(2)
    expect(JSON.parse(Buffer.from(resize.payload).toString())).toEqual({ rows: 50, cols: 132 })
  })

  it("turns a client's SHUTDOWN into a stop request and refuses CONFIGURE", async () => {
    const { agent, mux, connect, shutdowns } = await setup()
    const conn = await connect()
    conn.shutdown()
    await expect.poll(shutdowns).toBe(1)
    expect(agent.seen.some((f) => f.type === FrameType.SHUTDOWN)).toBe(false)

    const [raw, muxEnd] = await socketPair()
    mux.serve(muxEnd)
    const replies: Array<Frame> = []
    const decoder = new FrameDecoder()
    raw.on("data", (chunk: Buffer) => replies.push(...decoder.push(chunk)))
    raw.write(encodeFrame(FrameType.CONFIGURE, 0, encodeJson({ mounts: [] })))
    await expect.poll(() => replies.length).toBe(1)
    expect(replies[0]!.type).toBe(FrameType.ERROR)
    expect(JSON.parse(Buffer.from(replies[0]!.payload).toString()).code).toBe("bad_message")
    raw.destroy()
  })

  it("closes every client when the agent channel ends", async () => {
    const { mux, connect } = await setup()
    const conn = await connect()
    mux.close(new Error("VM gone"))
    expect(String(await conn.closed)).toContain("closed")
  })
})

// Fuzzing of the host's consumers of guest frames: a hostile guest controls every byte it
// sends to the supervisor (AgentMux) and, through it, to each client (AgentConnection).
// Whatever it sends, split however, neither may throw out of a socket's data handler (that
// would crash the process), buffer past a window, or leave a promise hanging once the channel
// closes; garbage closes the channel with a protocol error. Bounded: FUZZ_RUNS (default 100).
import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import {
  decodeJson, encodeCredit, encodeFrame, encodeJson, type Frame, FrameDecoder, FrameType, INITIAL_WINDOW, MAX_PAYLOAD, MetricsReport
} from "@boxlite/agent-protocol"
import { Duplex } from "node:stream"
import { AgentConnection, ChannelClosed, type ExecChannel, SpawnFailed } from "../src/internal/AgentConnection.js"
import { AgentMux } from "../src/supervisor/AgentMux.js"

const numRuns = Number(process.env["FUZZ_RUNS"] ?? 100)
const timeout = 10_000 + numRuns * 1000

/** One end of a channel: what the code under test writes is kept; the test plays the peer by emitting data. */
const fakeSocket = () => {
  const written: Array<Buffer> = []
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      written.push(chunk)
      done()
    }
  })
  return { socket, frames: (): Array<Frame> => new FrameDecoder().push(Buffer.concat(written)) }
}

/** The peer sends `chunk`, as a socket would: synchronously into the data handlers, and never once destroyed. */
const deliver = (socket: Duplex, chunk: Uint8Array) => {
  if (!socket.destroyed) socket.emit("data", Buffer.from(chunk))
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

const within = <T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`hung: ${what}`)), ms))])

const junk = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.jsonValue().map((v) => encodeJson(v)))
const streamArb = fc.constantFrom(0, 1, 2, 3, 0xffffffff)

/** Frames a guest sends, mostly of the types and shapes the host expects, with hostile values. */
const guestFrameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ type: fc.constant(FrameType.STARTED), stream: streamArb, payload: fc.oneof(fc.integer().map((pid) => encodeJson({ pid })), junk) }),
  fc.record({
    type: fc.constantFrom(FrameType.STDOUT, FrameType.STDERR),
    stream: streamArb,
    // Empty is end of stream; 40 KB frames overrun a window in a few frames.
    payload: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 1, max: 40_000 }).map((n) => new Uint8Array(n).fill(0x78)))
  }),
  fc.record({
    type: fc.constant(FrameType.CREDIT),
    stream: streamArb,
    payload: fc.oneof(fc.tuple(fc.constantFrom(0, 1, 2), fc.nat({ max: 0xffffffff })).map(([c, n]) => encodeCredit(c as 0 | 1 | 2, n)), fc.uint8Array({ maxLength: 7 }))
  }),
  fc.record({
    type: fc.constant(FrameType.EXIT),
    stream: streamArb,
    payload: fc.oneof(fc.record({ exitCode: fc.integer(), signal: fc.integer(), timedOut: fc.boolean() }, { requiredKeys: ["exitCode"] }).map((v) => encodeJson(v)), junk)
  }),
  fc.record({ type: fc.constant(FrameType.ERROR), stream: streamArb, payload: fc.oneof(fc.record({ code: fc.string(), message: fc.string() }).map((v) => encodeJson(v)), junk) }),
  fc.record({ type: fc.constant(FrameType.HELLO_ACK), stream: streamArb, payload: fc.oneof(fc.record({ version: fc.integer({ min: 0, max: 2 }), agent: fc.string() }).map((v) => encodeJson(v)), junk) }),
  fc.record({ type: fc.constant(FrameType.PONG), stream: streamArb, payload: fc.oneof(fc.constantFrom("1", "2", "p").map((s) => Buffer.from(s)), junk) }),
  fc.record({
    type: fc.constant(FrameType.METRICS_REPORT),
    stream: streamArb,
    payload: fc.oneof(
      fc.record({ token: fc.constantFrom("1", "2", "x"), memoryTotalBytes: fc.nat(), memoryAvailableBytes: fc.nat(), networkRxBytes: fc.nat(), networkTxBytes: fc.nat() }).map((v) => encodeJson(v)),
      junk
    )
  }),
  fc.record({ type: fc.integer({ min: 0, max: 255 }), stream: streamArb, payload: junk })
)

/** Garbage after the frames: often a hostile length field. */
const garbageArb = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 16 }),
  fc.constantFrom(0, 4, 5 + MAX_PAYLOAD + 1, 0xffffffff).map((length) => {
    const header = Buffer.alloc(4)
    header.writeUInt32BE(length)
    return header
  })
)

const hostileArb = fc.record({
  frames: fc.array(guestFrameArb, { maxLength: 24 }),
  garbage: fc.option(garbageArb),
  cuts: fc.array(fc.nat(), { maxLength: 8 })
})

const bytesOf = (frames: ReadonlyArray<Frame>, garbage: Uint8Array | null) =>
  Buffer.concat([...frames.map((f) => encodeFrame(f.type, f.stream, f.payload)), garbage ?? Buffer.alloc(0)])

const split = (bytes: Buffer, cuts: ReadonlyArray<number>): Array<Buffer> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  return [...points, bytes.length].map((p, i, all) => bytes.subarray(i === 0 ? 0 : all[i - 1]!, p))
}

/**
 * Whether the bytes break the framing rules while they stream (a bad length). A frame cut
 * short is only seen when the channel ends, which is then an ordinary close (the VM stopped).
 */
const malformed = (bytes: Buffer): boolean => {
  try {
    new FrameDecoder().push(bytes)
    return false
  } catch {
    return true
  }
}

/** A queue's bytes waiting for the consumer (private: the public API only hands them out). */
const queued = (channel: ExecChannel) => [channel.stdout, channel.stderr].map((q) => (q as unknown as { queued: number }).queued)

/** The token of a METRICS_REPORT payload the host would accept, else undefined. */
const jsonToken = (payload: Uint8Array): string | undefined => {
  const report = decodeJson(MetricsReport, payload)
  return report?.token
}

const expectTypedError = (e: unknown) => expect(e instanceof ChannelClosed || e instanceof SpawnFailed ? "typed" : e).toBe("typed")

describe("a hostile guest, to a client's AgentConnection", () => {
  it("never throws out of the data handler, buffers at most a window and a frame per channel, and settles everything when the channel ends", async () => {
    await fc.assert(
      fc.asyncProperty(hostileArb, async ({ frames, garbage, cuts }) => {
        const { socket, frames: sent } = fakeSocket()
        const opening = AgentConnection.open(socket)
        deliver(socket, encodeFrame(FrameType.HELLO_ACK, 0, encodeJson({ version: 1, agent: "hostile" })))
        const conn = await opening
        // Stream 1 has a reader; stream 2 has none, so its window fills.
        const [read, unread] = [conn.exec({ argv: ["a"], env: [] }), conn.exec({ argv: ["b"], env: [] })]
        const outcomes = [read, unread].flatMap((c) => [c.started, c.exit]).map((p) => p.then((v) => ({ ok: v }), (e: unknown) => ({ error: e })))
        const reader = (async () => {
          for (;;) if ((await read.stdout.read()) === null) return "end"
        })().catch((e: unknown) => ({ error: e }))

        const bytes = bytesOf(frames, garbage)
        for (const chunk of split(bytes, cuts)) {
          expect(() => deliver(socket, chunk)).not.toThrow()
          for (const n of [...queued(read), ...queued(unread)]) expect(n).toBeLessThanOrEqual(INITIAL_WINDOW + MAX_PAYLOAD)
          await tick()
        }
        // Garbage ends the channel at once, with a protocol error.
        if (malformed(bytes)) {
          expect(conn.isClosed).toBe(true)
          expect(String(await within(conn.closed, "closed"))).toMatch(/agent protocol error/)
        }
        socket.destroy()
        expect(await within(conn.closed, "closed")).toBeInstanceOf(ChannelClosed)
        for (const outcome of await within(Promise.all(outcomes), "exec outcomes")) if ("error" in outcome) expectTypedError(outcome.error)
        const readEnd = await within(reader, "stdout reader")
        if (readEnd !== "end") expectTypedError(readEnd.error)
        // The host credits only what it was sent (and handed to a reader or dropped).
        const received = new Map<string, number>()
        for (const f of frames) {
          if (f.type === FrameType.STDOUT || f.type === FrameType.STDERR) {
            const key = `${f.stream}/${f.type - FrameType.STDOUT + 1}`
            received.set(key, (received.get(key) ?? 0) + f.payload.length)
          }
        }
        for (const f of sent().filter((f) => f.type === FrameType.CREDIT)) {
          const key = `${f.stream}/${f.payload[0]}`
          received.set(key, (received.get(key) ?? 0) - Buffer.from(f.payload).readUInt32BE(1))
          expect(received.get(key)).toBeGreaterThanOrEqual(0)
        }
      }),
      { numRuns }
    )
  }, timeout)
})

describe("a hostile guest, to the supervisor's AgentMux", () => {
  it("never throws out of the data handler, forwards each stream's frames unchanged to its client until its end, and closes everything on garbage", async () => {
    await fc.assert(
      fc.asyncProperty(hostileArb, async ({ frames, garbage, cuts }) => {
        const agent = fakeSocket()
        const opening = AgentMux.open(agent.socket, () => {})
        deliver(agent.socket, encodeFrame(FrameType.HELLO_ACK, 0, encodeJson({ version: 1, agent: "hostile" })))
        const mux = await opening
        const client = fakeSocket()
        mux.serve(client.socket)
        // Client streams 1 and 2 become guest streams 1 and 2; PING and METRICS get tokens "1" and "2".
        deliver(client.socket, Buffer.concat([
          encodeFrame(FrameType.EXEC, 1, encodeJson({ argv: ["a"], env: [] })),
          encodeFrame(FrameType.EXEC, 2, encodeJson({ argv: ["b"], env: [] })),
          encodeFrame(FrameType.PING, 0, Buffer.from("p")),
          encodeFrame(FrameType.METRICS, 0, Buffer.from("m"))
        ]))
        expect(agent.frames().map((f) => [f.type, f.stream, Buffer.from(f.payload).toString()]).slice(1)).toEqual([
          [FrameType.EXEC, 1, JSON.stringify({ argv: ["a"], env: [] })],
          [FrameType.EXEC, 2, JSON.stringify({ argv: ["b"], env: [] })],
          [FrameType.PING, 0, "1"],
          [FrameType.METRICS, 0, "2"]
        ])

        const bytes = bytesOf(frames, garbage)
        for (const chunk of split(bytes, cuts)) expect(() => deliver(agent.socket, chunk)).not.toThrow()
        await tick()

        const toClient = client.frames()
        // Each exec stream: exactly the guest's frames of that stream, up to and including its EXIT or ERROR.
        for (const stream of [1, 2]) {
          const expected: Array<[number, string]> = []
          for (const f of frames.filter((f) => f.stream === stream)) {
            expected.push([f.type, Buffer.from(f.payload).toString("hex")])
            if (f.type === FrameType.EXIT || f.type === FrameType.ERROR) break
          }
          const forwarded = toClient.filter((f) => f.stream === stream).map((f) => [f.type, Buffer.from(f.payload).toString("hex")])
          // Garbage may cut the stream short: what arrived is a prefix.
          expect(expected.slice(0, forwarded.length)).toEqual(forwarded)
          if (!malformed(bytes)) expect(forwarded).toEqual(expected)
        }
        // Nothing reaches the client on a stream that is not its own; its PING and METRICS are answered at most once, with its own tokens.
        expect(toClient.every((f) => [0, 1, 2].includes(f.stream))).toBe(true)
        const control = toClient.filter((f) => f.stream === 0)
        const answered = (type: number, token: string) =>
          frames.some((f) => f.stream === 0 && f.type === type && (type === FrameType.PONG ? Buffer.from(f.payload).toString() : jsonToken(f.payload)) === token)
        for (const [type, token] of [[FrameType.PONG, "1"], [FrameType.METRICS_REPORT, "2"]] as const) {
          // Answered once if the guest answered it (a frame dropped with garbage may not be), never otherwise.
          const count = control.filter((f) => f.type === type).length
          expect(count).toBe(answered(type, token) ? (malformed(bytes) ? count : 1) : 0)
          expect(count).toBeLessThanOrEqual(1)
        }
        // Garbage from the guest ends the agent channel and every client's.
        if (malformed(bytes)) {
          expect(agent.socket.destroyed).toBe(true)
          expect(client.socket.destroyed).toBe(true)
        }
        mux.close(new Error("test over"))
      }),
      { numRuns }
    )
  }, timeout)
})

// Fuzzing of what the host decodes from a guest, which controls every byte it sends: hostile
// streams (valid frames, then garbage) split anywhere, lengths around the limits, a frame
// trickled a byte at a time, and every JSON message schema and the CREDIT payload.
// Bounded: FUZZ_RUNS runs per property (default 200; CI may raise it).
import { afterEach, describe, expect, it, vi } from "vitest"
import * as fc from "fast-check"
import { Schema } from "effect"
import {
  Configured, decodeCredit, decodeJson, encodeCredit, encodeFrame, encodeJson, ErrorMessage, ExecRequest, ExitStatus, type Frame,
  FrameDecoder, GuestConfig, Hello, HelloAck, HEADER_SIZE, MAX_PAYLOAD, MetricsReport, ProtocolError, SignalRequest, Started, TtySize
} from "../src/index.js"

const numRuns = Number(process.env["FUZZ_RUNS"] ?? 200)
/** Per property: generous, runs cost up to ~20 ms each on a loaded 2-core machine. */
const timeout = 10_000 + numRuns * 40

/** A frame as plain data, whatever Uint8Array subclass carries its payload. */
const plain = (frame: Frame) => ({ type: frame.type, stream: frame.stream, payload: Buffer.from(frame.payload).toString("hex") })

/** What a decoder made of a stream fed in `chunks`: its frames, then how it stopped. */
const decode = (chunks: ReadonlyArray<Uint8Array>): { frames: Array<ReturnType<typeof plain>>; end: string } => {
  const decoder = new FrameDecoder()
  const frames: Array<ReturnType<typeof plain>> = []
  try {
    for (const chunk of chunks) frames.push(...decoder.push(chunk).map(plain))
    decoder.end()
    return { frames, end: "clean" }
  } catch (e) {
    // The only thing a decoder may throw; after it, the stream is closed (the caller stops feeding it).
    if (!(e instanceof ProtocolError)) throw e
    return { frames, end: e.reason }
  }
}

const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Uint8Array> = []
  let start = 0
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, p))
    start = p
  }
  return chunks
}

const frameArb = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  stream: fc.integer({ min: 0, max: 0xffffffff }),
  payload: fc.uint8Array({ maxLength: 200 })
})

/** A length field: mostly near the limits, where the checks are. */
const lengthArb = fc.oneof(
  fc.integer({ min: 0, max: 12 }),
  fc.integer({ min: 5 + MAX_PAYLOAD - 4, max: 5 + MAX_PAYLOAD + 4 }),
  fc.constant(0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff })
)

/** Garbage that often starts with a plausible or hostile length. */
const garbageArb = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 64 }),
  fc.tuple(lengthArb, fc.uint8Array({ maxLength: 64 })).map(([length, rest]) => {
    const bytes = Buffer.alloc(4 + rest.length)
    bytes.writeUInt32BE(length)
    bytes.set(rest, 4)
    return bytes
  })
)

/** Bytes the decoder asks Buffer for while `f` runs (what it allocates, copies included). */
const allocations = (f: () => void): Array<number> => {
  const sizes: Array<number> = []
  const record = <A extends Array<unknown>>(name: "allocUnsafe" | "alloc" | "allocUnsafeSlow", original: (...args: A) => Buffer) =>
    vi.spyOn(Buffer, name).mockImplementation(((...args: A) => {
      const buffer = original.apply(Buffer, args)
      sizes.push(buffer.length)
      return buffer
    }) as never)
  record("allocUnsafe", Buffer.allocUnsafe)
  record("alloc", Buffer.alloc)
  record("allocUnsafeSlow", Buffer.allocUnsafeSlow)
  try {
    f()
  } finally {
    vi.restoreAllMocks()
  }
  return sizes
}

afterEach(() => vi.restoreAllMocks())

describe("a hostile guest's byte stream", () => {
  it("valid frames then garbage, split at any byte boundaries, decode as the whole stream: the same frames, then the same error", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 6 }), fc.option(garbageArb), fc.array(fc.nat(), { maxLength: 12 }), (valid, garbage, cuts) => {
        const bytes = Buffer.concat([...valid.map((f) => encodeFrame(f.type, f.stream, f.payload)), garbage ?? Buffer.alloc(0)])
        const whole = decode([bytes])
        const pieces = decode(split(bytes, cuts))
        const byteByByte = decode([...bytes].map((b) => Uint8Array.of(b)))
        // Fed a byte at a time, every frame before the garbage comes out, then the error.
        expect(byteByByte.frames.slice(0, valid.length)).toEqual(valid.map(plain))
        for (const other of [whole, pieces]) {
          expect(other.end).toBe(byteByByte.end)
          // A push that throws drops the frames its chunk completed (the stream is dead anyway):
          // larger chunks may deliver fewer frames before the error, never other ones.
          expect(byteByByte.frames.slice(0, other.frames.length)).toEqual(other.frames)
          if (other.end === "clean" || other.end === "truncated") expect(other.frames).toEqual(byteByByte.frames)
        }
        if (garbage === null) expect(whole.end).toBe("clean")
      }),
      { numRuns }
    )
  }, timeout)

  it("a length outside the limits is refused as soon as its 4 bytes are in, at any split, and nothing of the payload is awaited", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 3 }), lengthArb, fc.nat({ max: 3 }), (valid, length, headSplit) => {
        const prefix = Buffer.concat(valid.map((f) => encodeFrame(f.type, f.stream, f.payload)))
        const header = Buffer.alloc(4)
        header.writeUInt32BE(length)
        const decoder = new FrameDecoder()
        expect(decoder.push(prefix)).toHaveLength(valid.length)
        decoder.push(header.subarray(0, headSplit))
        const bad = length < 5 ? "short" : length > 5 + MAX_PAYLOAD ? "oversized" : undefined
        let error: unknown
        try {
          decoder.push(header.subarray(headSplit))
        } catch (e) {
          error = e
        }
        if (bad) {
          expect(error).toBeInstanceOf(ProtocolError)
          expect((error as ProtocolError).reason).toBe(bad)
        } else {
          expect(error).toBeUndefined()
          expect(() => decoder.end()).toThrow(ProtocolError)
        }
      }),
      { numRuns }
    )
  }, timeout)

  it("never allocates more than the largest frame plus the chunk fed, whatever the length field says", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 3 }), garbageArb, fc.array(fc.nat(), { maxLength: 6 }), (valid, garbage, cuts) => {
        const bytes = Buffer.concat([...valid.map((f) => encodeFrame(f.type, f.stream, f.payload)), garbage])
        const decoder = new FrameDecoder()
        for (const chunk of split(bytes, cuts)) {
          let sizes: Array<number> = []
          try {
            sizes = allocations(() => decoder.push(chunk))
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError)
            return
          }
          for (const size of sizes) expect(size).toBeLessThanOrEqual(HEADER_SIZE + MAX_PAYLOAD + chunk.length)
        }
      }),
      { numRuns }
    )
  }, timeout)

  it("a frame trickled a byte at a time costs memory linear in its size (a guest cannot make the host copy quadratically)", () => {
    const payloadSize = 64 * 1024
    const frame = encodeFrame(7, 1, Buffer.alloc(payloadSize, 0x61))
    const decoder = new FrameDecoder()
    const frames: Array<Frame> = []
    const sizes = allocations(() => {
      for (let i = 0; i < frame.length; i++) frames.push(...decoder.push(frame.subarray(i, i + 1)))
    })
    expect(frames).toHaveLength(1)
    expect(Buffer.from(frames[0]!.payload).equals(Buffer.alloc(payloadSize, 0x61))).toBe(true)
    // Concatenating at each byte would ask for ~frame²/2 = 2 GiB here.
    expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(4 * frame.length)
  })
})

/** Values of the shapes the schemas expect, with every field sometimes of a hostile kind. */
const hostile = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 })
)
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, hostile)
const shapeArb = fc.oneof(
  fc.record({ version: maybe(fc.integer()), agent: maybe(fc.string()) }, { requiredKeys: [] }),
  fc.record({ pid: maybe(fc.integer()), exitCode: maybe(fc.integer()), signal: maybe(fc.integer()), timedOut: maybe(fc.boolean()) }, { requiredKeys: [] }),
  fc.record({ code: maybe(fc.string()), message: maybe(fc.string()), rows: maybe(fc.integer()), cols: maybe(fc.integer()) }, { requiredKeys: [] }),
  fc.record({
    token: maybe(fc.string()), memoryTotalBytes: maybe(fc.nat()), memoryAvailableBytes: maybe(fc.nat()), networkRxBytes: maybe(fc.nat()), networkTxBytes: maybe(fc.nat())
  }, { requiredKeys: [] }),
  fc.record({
    argv: maybe(fc.array(fc.string(), { maxLength: 3 })), env: maybe(fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 3 })),
    tty: maybe(fc.record({ rows: maybe(fc.integer()), cols: maybe(fc.integer()) }))
  }, { requiredKeys: [] }),
  fc.record({
    network: maybe(fc.record({ address: maybe(fc.string()), prefixLength: maybe(fc.integer()), gateway: maybe(fc.string()), dns: maybe(fc.array(fc.string())) })),
    mounts: maybe(fc.array(fc.record({ tag: maybe(fc.string()), path: maybe(fc.string()), readOnly: maybe(fc.boolean()), file: maybe(fc.string()) }), { maxLength: 2 }))
  }, { requiredKeys: [] })
)

const payloadArb = fc.oneof(
  shapeArb.map((v) => encodeJson(v)),
  fc.jsonValue().map((v) => encodeJson(v)),
  fc.uint8Array({ maxLength: 200 }),
  fc.string().map((s) => Buffer.from(s)),
  // Numbers JSON can spell but doubles cannot hold, keys that are Object.prototype's, deep nesting.
  fc.constantFrom(
    `{"version":1e400,"agent":"a","pid":-1e400,"exitCode":1e400,"token":"t","memoryTotalBytes":1e999,"memoryAvailableBytes":0,"networkRxBytes":0,"networkTxBytes":0}`,
    `{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"argv":["x"],"env":[],"mounts":[]}`,
    `${"[".repeat(20_000)}${"]".repeat(20_000)}`,
    `{"argv":${"[".repeat(10_000)}${"]".repeat(10_000)},"env":[]}`
  ).map((s) => Buffer.from(s))
)

const schemas = { Hello, HelloAck, TtySize, ExecRequest, Started, SignalRequest, ExitStatus, GuestConfig, Configured, MetricsReport, ErrorMessage }

describe("a hostile guest's messages", () => {
  it("every JSON schema decodes any payload to undefined or a value of its type, without throwing or polluting prototypes", () => {
    fc.assert(
      fc.property(payloadArb, (payload) => {
        for (const [name, schema] of Object.entries(schemas)) {
          const value = decodeJson(schema as Schema.Codec<unknown>, payload)
          if (value !== undefined) {
            expect({ name, ok: Schema.is(schema as Schema.Codec<unknown>)(value) }).toEqual({ name, ok: true })
            // What was accepted survives a round trip: it is plain data.
            expect(decodeJson(schema as Schema.Codec<unknown>, encodeJson(value))).toEqual(value)
          }
        }
        expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined()
      }),
      { numRuns }
    )
  }, timeout)

  it("a CREDIT payload decodes only at 5 bytes, to a channel byte and a u32, and round-trips", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (payload) => {
        const credit = decodeCredit(payload)
        if (payload.length !== 5) {
          expect(credit).toBeUndefined()
        } else {
          expect(credit).toEqual({ channel: payload[0], bytes: Buffer.from(payload).readUInt32BE(1) })
          if (credit!.channel <= 2) expect(encodeCredit(credit!.channel as 0 | 1 | 2, credit!.bytes)).toEqual(Buffer.from(payload))
        }
      }),
      { numRuns }
    )
    // A view into a larger buffer decodes its own bytes, not the buffer's.
    const big = Buffer.from([9, 9, 1, 0, 0, 1, 0, 9])
    expect(decodeCredit(big.subarray(2, 7))).toEqual({ channel: 1, bytes: 256 })
  })
})

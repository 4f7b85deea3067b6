import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { encodeFrame, FrameDecoder, FrameType, HEADER_SIZE, INITIAL_WINDOW, MAX_DATA_CHUNK, MAX_PAYLOAD, PROTOCOL_VERSION, ProtocolError, vectorsPath } from "../src/index.js"

interface VectorFrame { type: number; stream: number; payloadHex: string }
const vectors = JSON.parse(readFileSync(vectorsPath, "utf8")) as {
  constants: Record<string, number>
  types: Record<string, number>
  valid: Array<{ name: string; hex: string; frames: Array<VectorFrame> }>
  invalid: Array<{ name: string; hex: string; error: string; framesBefore?: number }>
  maxPayloadFrame: { type: number; stream: number; payloadByte: string; payloadLength: number; sha256: string }
}

const toVector = (frame: { type: number; stream: number; payload: Uint8Array }): VectorFrame => ({
  type: frame.type, stream: frame.stream, payloadHex: Buffer.from(frame.payload).toString("hex")
})

describe("shared vectors", () => {
  it("constants and type numbers match the spec", () => {
    expect(vectors.constants).toEqual({ version: PROTOCOL_VERSION, maxPayload: MAX_PAYLOAD, maxDataChunk: MAX_DATA_CHUNK, initialWindow: INITIAL_WINDOW, headerSize: HEADER_SIZE })
    expect(vectors.types).toEqual(FrameType)
  })

  for (const v of vectors.valid) {
    it(`valid: ${v.name}`, () => {
      const decoder = new FrameDecoder()
      expect(decoder.push(Buffer.from(v.hex, "hex")).map(toVector)).toEqual(v.frames)
      decoder.end()
      const encoded = Buffer.concat(v.frames.map((f) => encodeFrame(f.type, f.stream, Buffer.from(f.payloadHex, "hex"))))
      expect(encoded.toString("hex")).toBe(v.hex)
    })
    it(`valid byte by byte: ${v.name}`, () => {
      const decoder = new FrameDecoder()
      const bytes = Buffer.from(v.hex, "hex")
      const frames = []
      for (const byte of bytes) frames.push(...decoder.push(Uint8Array.of(byte)))
      expect(frames.map(toVector)).toEqual(v.frames)
    })
  }

  for (const v of vectors.invalid) {
    it(`invalid: ${v.name}`, () => {
      const decoder = new FrameDecoder()
      const frames: Array<unknown> = []
      let error: unknown
      try {
        frames.push(...decoder.push(Buffer.from(v.hex, "hex")))
        decoder.end()
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(ProtocolError)
      expect((error as ProtocolError).reason).toBe(v.error)
      expect(frames.length).toBe(v.framesBefore ?? 0)
    })
  }

  it("the largest frame round-trips and hashes as in the vectors", () => {
    const m = vectors.maxPayloadFrame
    const frame = encodeFrame(m.type, m.stream, Buffer.alloc(m.payloadLength, Buffer.from(m.payloadByte, "hex")))
    expect(createHash("sha256").update(frame).digest("hex")).toBe(m.sha256)
    const [decoded] = new FrameDecoder().push(frame)
    expect(decoded?.payload.length).toBe(MAX_PAYLOAD)
    expect(() => encodeFrame(7, 1, Buffer.alloc(MAX_PAYLOAD + 1))).toThrow(RangeError)
  })
})

describe("decoder properties", () => {
  const frameArb = fc.record({
    type: fc.integer({ min: 0, max: 255 }),
    stream: fc.integer({ min: 0, max: 0xffffffff }),
    payload: fc.uint8Array({ maxLength: 300 })
  })

  it("any frames, split at any points, decode to the same frames", () => {
    fc.assert(fc.property(fc.array(frameArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (frames, cuts) => {
      const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.stream, f.payload)))
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
      const decoder = new FrameDecoder()
      const out = []
      let start = 0
      for (const p of [...points, bytes.length]) {
        out.push(...decoder.push(bytes.subarray(start, p)))
        start = p
      }
      decoder.end()
      expect(out.map(toVector)).toEqual(frames.map((f) => toVector(f)))
    }))
  })

  it("arbitrary bytes never throw anything but ProtocolError", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
      const decoder = new FrameDecoder()
      try {
        for (const frame of decoder.push(bytes)) {
          expect(frame.payload.length).toBeLessThanOrEqual(MAX_PAYLOAD)
        }
        decoder.end()
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError)
      }
    }))
  })

  it("an oversized length is rejected before its payload arrives", () => {
    const header = Buffer.alloc(4)
    header.writeUInt32BE(5 + MAX_PAYLOAD + 1)
    expect(() => new FrameDecoder().push(header)).toThrow(/exceeds/)
  })
})

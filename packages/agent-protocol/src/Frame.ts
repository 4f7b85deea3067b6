/**
 * Frames: the unit of the BoxLite agent protocol (see PROTOCOL.md).
 *
 * `length u32be | type u8 | stream u32be | payload`, where length counts type + stream + payload.
 */
import { Data } from "effect"

export const PROTOCOL_VERSION = 1
export const HEADER_SIZE = 9
export const MAX_PAYLOAD = 1024 * 1024
export const MAX_DATA_CHUNK = 32 * 1024
export const INITIAL_WINDOW = 256 * 1024

export const FrameType = {
  HELLO: 1,
  HELLO_ACK: 2,
  EXEC: 3,
  STARTED: 4,
  STDIN: 5,
  STDIN_CLOSE: 6,
  STDOUT: 7,
  STDERR: 8,
  CREDIT: 9,
  SIGNAL: 10,
  EXIT: 11,
  ERROR: 12,
  PING: 13,
  PONG: 14,
  SHUTDOWN: 15,
  CONFIGURE: 16,
  CONFIGURED: 17,
  METRICS: 18,
  METRICS_REPORT: 19,
  RESIZE: 20
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export interface Frame {
  readonly type: number
  readonly stream: number
  readonly payload: Uint8Array
}

/** The byte stream broke the framing rules; the connection cannot be used any more. */
export class ProtocolError extends Data.TaggedError("ProtocolError")<{
  readonly reason: "short" | "oversized" | "truncated"
  readonly message: string
}> {}

export const encodeFrame = (type: number, stream: number, payload: Uint8Array = new Uint8Array(0)): Buffer => {
  if (payload.length > MAX_PAYLOAD) {
    throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`)
  }
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length)
  frame.writeUInt32BE(5 + payload.length, 0)
  frame.writeUInt8(type, 4)
  frame.writeUInt32BE(stream >>> 0, 5)
  frame.set(payload, HEADER_SIZE)
  return frame
}

/**
 * Incremental decoder: feed it chunks as they arrive, take the complete frames.
 * Memory is bounded by one frame (MAX_PAYLOAD + header) plus the chunk being fed.
 */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0)

  /** Returns the frames completed by `chunk`; throws ProtocolError on a framing violation. */
  push(chunk: Uint8Array): Array<Frame> {
    let buffer = this.pending.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length) : Buffer.concat([this.pending, chunk])
    const frames: Array<Frame> = []
    let offset = 0
    while (buffer.length - offset >= 4) {
      const length = buffer.readUInt32BE(offset)
      if (length < 5) {
        throw new ProtocolError({ reason: "short", message: `frame length ${length} is below the 5-byte minimum` })
      }
      if (length > 5 + MAX_PAYLOAD) {
        throw new ProtocolError({ reason: "oversized", message: `frame length ${length} exceeds ${5 + MAX_PAYLOAD}` })
      }
      if (buffer.length - offset < 4 + length) break
      frames.push({
        type: buffer.readUInt8(offset + 4),
        stream: buffer.readUInt32BE(offset + 5),
        // Copy: the caller may keep the payload while this buffer is reused.
        payload: Uint8Array.prototype.slice.call(buffer, offset + HEADER_SIZE, offset + 4 + length)
      })
      offset += 4 + length
    }
    buffer = buffer.subarray(offset)
    this.pending = buffer.length === 0 ? Buffer.alloc(0) : Buffer.from(buffer)
    return frames
  }

  /** Call at end of stream: a partial frame left over is a `truncated` error. */
  end(): void {
    if (this.pending.length > 0) {
      throw new ProtocolError({
        reason: "truncated",
        message: `stream ended inside a frame (${this.pending.length} bytes pending)`
      })
    }
  }
}

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
  RESIZE: 20,
  COPY_IN: 21,
  COPY_OUT: 22,
  FREEZE: 23,
  FROZEN: 24,
  THAW: 25,
  THAWED: 26,
  CONTROL: 27,
  CONTROL_DONE: 28
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
 * Memory is bounded by one frame (MAX_PAYLOAD + header) plus the chunk being fed, and time by
 * the bytes fed: a frame that arrives in pieces is copied once into a buffer of its final size
 * (concatenating what came so far at every piece would be quadratic in a peer that sends a
 * byte at a time).
 */
export class FrameDecoder {
  /** The frame being received: 4 bytes until its length is known, then the whole frame. */
  private partial: Buffer | undefined
  private filled = 0

  /** Returns the frames completed by `chunk`; throws ProtocolError on a framing violation. */
  push(chunk: Uint8Array): Array<Frame> {
    const frames: Array<Frame> = []
    let input = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
    while (this.partial !== undefined && input.length > 0) {
      const n = Math.min(this.partial.length - this.filled, input.length)
      input.copy(this.partial, this.filled, 0, n)
      this.filled += n
      input = input.subarray(n)
      if (this.filled < this.partial.length) break
      if (this.partial.length === 4) {
        const whole = Buffer.allocUnsafe(4 + checkedLength(this.partial.readUInt32BE(0)))
        this.partial.copy(whole)
        this.partial = whole
      } else {
        // This buffer is ours alone: its payload needs no copy.
        frames.push(frameAt(this.partial, 0, this.partial.length - 4, false))
        this.partial = undefined
        this.filled = 0
      }
    }
    let offset = 0
    while (input.length - offset >= 4) {
      const length = checkedLength(input.readUInt32BE(offset))
      if (input.length - offset < 4 + length) break
      // Copy: the caller may keep the payload while the chunk's buffer is reused.
      frames.push(frameAt(input, offset, length, true))
      offset += 4 + length
    }
    const rest = input.length - offset
    if (rest > 0) {
      // The length of a frame with 4 bytes or more here was checked by the loop above.
      this.partial = Buffer.allocUnsafe(rest >= 4 ? 4 + input.readUInt32BE(offset) : 4)
      input.copy(this.partial, 0, offset)
      this.filled = rest
    }
    return frames
  }

  /** Call at end of stream: a partial frame left over is a `truncated` error. */
  end(): void {
    if (this.partial !== undefined) {
      throw new ProtocolError({
        reason: "truncated",
        message: `stream ended inside a frame (${this.filled} bytes pending)`
      })
    }
  }
}

const checkedLength = (length: number): number => {
  if (length < 5) {
    throw new ProtocolError({ reason: "short", message: `frame length ${length} is below the 5-byte minimum` })
  }
  if (length > 5 + MAX_PAYLOAD) {
    throw new ProtocolError({ reason: "oversized", message: `frame length ${length} exceeds ${5 + MAX_PAYLOAD}` })
  }
  return length
}

const frameAt = (buffer: Buffer, offset: number, length: number, copy: boolean): Frame => ({
  type: buffer.readUInt8(offset + 4),
  stream: buffer.readUInt32BE(offset + 5),
  payload: copy
    ? Uint8Array.prototype.slice.call(buffer, offset + HEADER_SIZE, offset + 4 + length)
    : buffer.subarray(offset + HEADER_SIZE, offset + 4 + length)
})

/**
 * The guest console, read by the driver from QEMU's serial chardev: the last bytes stay in
 * memory (for BootError and Vm.consoleTail), the rest goes to a capped, rotated log file.
 * A guest that floods its console therefore costs the host a fixed amount of memory and disk.
 */
import { RotatingLog } from "@boxlite/driver"
import type { Readable } from "node:stream"

/** How much of the console a Vm keeps in memory. */
export const CONSOLE_TAIL_BYTES = 64 * 1024

/** A fixed-size ring of the last bytes written; no copy of the whole ring per write. */
export class TailBuffer {
  private readonly ring: Buffer
  private end = 0
  private full = false

  constructor(readonly capacity: number) {
    this.ring = Buffer.alloc(capacity)
  }

  push(data: Uint8Array): void {
    const bytes = data.length > this.capacity ? data.subarray(data.length - this.capacity) : data
    const first = Math.min(bytes.length, this.capacity - this.end)
    this.ring.set(bytes.subarray(0, first), this.end)
    this.ring.set(bytes.subarray(first), 0)
    const end = this.end + bytes.length
    if (end >= this.capacity) this.full = true
    this.end = end % this.capacity
  }

  /** The last `bytes` bytes (fewer if fewer were written). */
  tail(bytes: number): Buffer {
    const held = this.full ? this.capacity : this.end
    const n = Math.max(0, Math.min(bytes, held))
    const start = this.end - n
    return start >= 0
      ? Buffer.from(this.ring.subarray(start, this.end))
      : Buffer.concat([this.ring.subarray(this.capacity + start), this.ring.subarray(0, this.end)])
  }
}

/**
 * Reads the console stream until it ends: into a TailBuffer and `logFile` (capped at
 * `maxBytes`, one rotated file). A log that cannot be written later (disk full, box directory
 * removed) is dropped rather than stopping the VM; the tail in memory stays.
 */
export const readConsole = (stream: Readable, logFile: string, maxBytes: number): TailBuffer => {
  const tail = new TailBuffer(CONSOLE_TAIL_BYTES)
  let log: RotatingLog.RotatingLog | undefined = RotatingLog.make(logFile, maxBytes)
  stream.on("data", (chunk: Buffer) => {
    tail.push(chunk)
    try {
      log?.write(chunk)
    } catch {
      log?.close()
      log = undefined
    }
  })
  // An error ends the stream as well: the VMM is gone.
  stream.on("error", () => undefined)
  stream.on("close", () => log?.close())
  return tail
}

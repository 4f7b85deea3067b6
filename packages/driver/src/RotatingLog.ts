/**
 * An append-only log file with a size cap and one rotated file: when `file` would grow past
 * `maxBytes` it becomes `file.1` (replacing the previous one) and a new `file` starts. So the
 * log never takes more than 2 x maxBytes on disk, and the newest maxBytes to 2 x maxBytes
 * bytes are kept. Writes are synchronous: a log line is on disk (in the page cache) before the
 * next event, and order is kept without a queue; a write of a few KiB costs microseconds.
 */
import * as fs from "node:fs"

export interface RotatingLog {
  /** The log's path; the rotated file is `${file}.1`. */
  readonly file: string
  /** Appends `data`, rotating as often as the cap requires; throws what the file system throws. */
  readonly write: (data: Uint8Array | string) => void
  readonly close: () => void
}

/**
 * Opens `file` for appending (created 0600: logs may carry what a box printed), keeping what
 * it already holds towards the cap.
 */
export const make = (file: string, maxBytes: number): RotatingLog => {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError(`maxBytes must be a positive integer (got ${maxBytes})`)
  let fd: number | undefined = fs.openSync(file, "a", 0o600)
  let size = fs.fstatSync(fd).size
  const rotate = () => {
    fs.closeSync(fd!)
    fd = undefined
    fs.renameSync(file, `${file}.1`)
    fd = fs.openSync(file, "a", 0o600)
    size = 0
  }
  return {
    file,
    write: (data) => {
      if (fd === undefined) throw new Error(`${file} is closed`)
      let bytes = typeof data === "string" ? Buffer.from(data) : data
      // Only the last 2 x maxBytes can survive the rotations this write causes.
      if (bytes.length > 2 * maxBytes) bytes = bytes.subarray(bytes.length - 2 * maxBytes)
      while (bytes.length > 0) {
        if (size >= maxBytes) rotate()
        const written = fs.writeSync(fd!, bytes.subarray(0, maxBytes - size))
        size += written
        bytes = bytes.subarray(written)
      }
    },
    close: () => {
      if (fd !== undefined) fs.closeSync(fd)
      fd = undefined
    }
  }
}

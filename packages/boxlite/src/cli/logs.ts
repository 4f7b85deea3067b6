/**
 * `boxlite logs`: a box's guest console (`console.log`) and supervisor log (`supervisor.log`),
 * each with its rotated part (`.1`) first. They are files in the box's directory that the
 * driver and the supervisor append to, so reading them needs no running box.
 */
import * as fs from "node:fs"
import * as path from "node:path"

const POLL_MS = 250

/** A log read from where the last read stopped; follows the file across a rotation. */
class LogReader {
  private fd: number | undefined
  private readonly buffer = Buffer.alloc(64 * 1024)

  constructor(private readonly file: string, private readonly sink: NodeJS.WriteStream) {}

  /** Writes what the log has gained since the last call (from its rotated part onwards, the first time). */
  drain(): void {
    if (this.fd === undefined) {
      this.copyAll(`${this.file}.1`)
      this.fd = openOrUndefined(this.file)
    }
    if (this.fd === undefined) return
    this.copyFrom(this.fd)
    // Rotated: the file we hold is now `.1` (read to its end just above); a new one began.
    const now = fs.statSync(this.file, { throwIfNoEntry: false })
    if (now && now.ino !== fs.fstatSync(this.fd).ino) {
      fs.closeSync(this.fd)
      this.fd = openOrUndefined(this.file)
      if (this.fd !== undefined) this.copyFrom(this.fd)
    }
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
  }

  private copyAll(file: string): void {
    const fd = openOrUndefined(file)
    if (fd === undefined) return
    this.copyFrom(fd)
    fs.closeSync(fd)
  }

  private copyFrom(fd: number): void {
    for (let n = fs.readSync(fd, this.buffer); n > 0; n = fs.readSync(fd, this.buffer)) this.sink.write(Buffer.from(this.buffer.subarray(0, n)))
  }
}

const openOrUndefined = (file: string): number | undefined => {
  try {
    return fs.openSync(file, "r")
  } catch {
    return undefined
  }
}

/**
 * Prints the console log to stdout and the supervisor log to stderr (the guest's output and the
 * host's account of it, as `docker logs` splits a container's streams). With `follow`, keeps
 * printing what they gain until `running()` says the box is no longer running.
 */
export const printLogs = async (boxDir: string, follow: boolean, running: () => Promise<boolean>): Promise<void> => {
  const readers = [new LogReader(path.join(boxDir, "console.log"), process.stdout), new LogReader(path.join(boxDir, "supervisor.log"), process.stderr)]
  try {
    for (const r of readers) r.drain()
    while (follow && (await running())) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
      for (const r of readers) r.drain()
    }
    // What was written while the box stopped.
    if (follow) for (const r of readers) r.drain()
  } finally {
    for (const r of readers) r.close()
  }
}

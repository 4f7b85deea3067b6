/**
 * A push parser for tar streams (ustar, GNU long names, PAX) that hands entries to a handler
 * one at a time, synchronously, so each entry is on disk before the next one is resolved.
 *
 * Written instead of using node-tar's Parser because that one decodes PAX records as UTF-8
 * text (binary xattr values such as `security.capability` are mangled and `SCHILY.xattr.*`
 * is dropped), silently skips GNU sparse entries, and sniffs and inflates a nested gzip or
 * zstd stream past any byte accounting. Header blocks are still decoded by node-tar's Header.
 */
import { Header, type HeaderData } from "tar"

export type TarEntryType = "File" | "Directory" | "SymbolicLink" | "Link" | "CharacterDevice" | "BlockDevice" | "FIFO"

export interface TarEntry {
  readonly type: TarEntryType
  readonly path: string
  /** Symlink target (verbatim) or hard link target (a path in the archive). */
  readonly linkpath: string
  readonly size: number
  /** Permission bits including setuid, setgid and sticky. */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly mtime: Date | undefined
  readonly devmajor: number
  readonly devminor: number
  /** From PAX `SCHILY.xattr.<name>` records, values as raw bytes. */
  readonly xattrs: ReadonlyMap<string, Buffer>
}

export interface TarHandler {
  /** An entry begins; for a file, its `size` bytes follow through `data`, then `end`. */
  readonly entry: (entry: TarEntry) => void
  readonly data: (chunk: Buffer) => void
  readonly end: () => void
}

const BLOCK = 512
/** PAX and GNU long-name bodies are held in memory; real ones are a few hundred bytes. */
const MAX_META_BYTES = 1024 * 1024

const ENTRY_TYPES: Record<string, TarEntryType> = {
  "0": "File", "\0": "File", "7": "File", "5": "Directory", "2": "SymbolicLink", "1": "Link",
  "3": "CharacterDevice", "4": "BlockDevice", "6": "FIFO"
}
const META_TYPES = new Set(["x", "g", "L", "K"])

/** What PAX records and GNU long names say about the next entry. */
interface Extended {
  header: HeaderData
  xattrs: Map<string, Buffer>
  sparse: boolean
}

const emptyExtended = (): Extended => ({ header: {}, xattrs: new Map(), sparse: false })

const nonNegativeInteger = (key: string, text: string): number => {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`PAX record ${key}=${text} is not a valid number`)
  return n
}

/** PAX records are `<length> <key>=<value>\n`, length in bytes; values may be binary. */
const parsePax = (body: Buffer, into: Extended): void => {
  let at = 0
  while (at < body.length) {
    if (body[at] === 0) break // GNU tar pads the body with NULs
    const space = body.indexOf(0x20, at)
    const length = space < 0 ? NaN : Number(body.toString("latin1", at, space))
    if (!Number.isSafeInteger(length) || at + length > body.length || body[at + length - 1] !== 0x0a || space >= at + length) {
      throw new Error(`malformed PAX header at byte ${at} of its record`)
    }
    const record = body.subarray(space + 1, at + length - 1)
    const equals = record.indexOf(0x3d)
    if (equals < 0) throw new Error("malformed PAX record without '='")
    const key = record.toString("utf8", 0, equals)
    const value = record.subarray(equals + 1)
    const text = value.toString("utf8")
    at += length
    if (key.startsWith("SCHILY.xattr.")) into.xattrs.set(key.slice("SCHILY.xattr.".length), Buffer.from(value))
    else if (key.startsWith("GNU.sparse.")) into.sparse = true
    else if (key === "path" || key === "linkpath") into.header[key] = text
    else if (key === "size" || key === "uid" || key === "gid") into.header[key] = nonNegativeInteger(key, text)
    else if (key === "mtime") into.header.mtime = new Date(Number(text) * 1000)
  }
}

const cString = (body: Buffer): string => {
  const nul = body.indexOf(0)
  return body.toString("utf8", 0, nul < 0 ? body.length : nul)
}

export class TarReader {
  private readonly headerBlock = Buffer.alloc(BLOCK)
  private headerFill = 0
  private state: "header" | "body" | "meta" | "padding" | "done" = "header"
  /** Bytes left of the current body (state body or meta) or its padding (state padding). */
  private remaining = 0
  private padding = 0
  private sawZeroBlock = false
  private metaType = ""
  private metaChunks: Array<Buffer> = []
  private local = emptyExtended()
  private readonly global = emptyExtended()
  private currentPath = ""
  /** Offset in the stream, for error messages. */
  private position = 0

  constructor(private readonly handler: TarHandler) {}

  write(chunk: Buffer): void {
    let at = 0
    while (at < chunk.length && this.state !== "done") {
      const available = chunk.length - at
      if (this.state === "header") {
        const n = Math.min(BLOCK - this.headerFill, available)
        chunk.copy(this.headerBlock, this.headerFill, at, at + n)
        this.headerFill += n
        at += n
        if (this.headerFill === BLOCK) {
          this.headerFill = 0
          this.position += BLOCK
          this.onHeader()
        }
      } else if (this.state === "padding") {
        const n = Math.min(this.padding, available)
        this.padding -= n
        at += n
        this.position += n
        if (this.padding === 0) this.state = "header"
      } else {
        const n = Math.min(this.remaining, available)
        const piece = chunk.subarray(at, at + n)
        if (this.state === "body") this.handler.data(piece)
        else this.metaChunks.push(Buffer.from(piece))
        this.remaining -= n
        at += n
        this.position += n
        if (this.remaining === 0) this.finishBody()
      }
    }
  }

  /** The stream ended: anything but a clean end of archive means the layer is truncated. */
  end(): void {
    if (this.state === "done" || (this.state === "header" && this.headerFill === 0 && this.sawZeroBlock)) return
    if (this.state === "body") {
      throw new Error(`truncated: the archive ends inside ${this.currentPath} (${this.remaining} bytes of it missing)`)
    }
    throw new Error(`truncated: the archive ends at byte ${this.position + this.headerFill} without its end-of-archive blocks`)
  }

  private finishBody(): void {
    if (this.state === "body") this.handler.end()
    else this.onMeta(Buffer.concat(this.metaChunks))
    this.metaChunks = []
    this.skip(0)
  }

  /** Skips `bytes` and the padding after them to the next block boundary. */
  private skip(bytes: number): void {
    this.padding = bytes + ((BLOCK - ((this.position + bytes) % BLOCK)) % BLOCK)
    this.state = this.padding > 0 ? "padding" : "header"
  }

  private onHeader(): void {
    const block = this.headerBlock
    if (block.every((byte) => byte === 0)) {
      // Two zero blocks end the archive; some writers stop after one.
      if (this.sawZeroBlock) this.state = "done"
      this.sawZeroBlock = true
      return
    }
    this.sawZeroBlock = false
    const typeflag = String.fromCharCode(block[156] ?? 0)
    const isEntry = typeflag in ENTRY_TYPES
    const header = this.decodeHeader(block, isEntry)
    if (!header.cksumValid) throw new Error(`not a tar archive: bad header checksum at byte ${this.position - BLOCK}`)
    const size = header.size ?? 0
    const path = (isEntry ? this.local.header.path : undefined) ?? header.path ?? ""
    if (META_TYPES.has(typeflag)) {
      if (size > MAX_META_BYTES) throw new Error(`extended header of ${size} bytes at byte ${this.position - BLOCK} is too large`)
      this.metaType = typeflag
      this.beginBody("meta", size)
      return
    }
    const type = ENTRY_TYPES[typeflag]
    if (type === undefined) {
      const what = typeflag === "S" ? "a GNU sparse file" : `entry type '${typeflag}'`
      throw new Error(`${path}: ${what} is not supported`)
    }
    if (this.local.sparse || this.global.sparse) throw new Error(`${path}: sparse files (PAX GNU.sparse) are not supported`)
    // Old tars mark directories as files with a trailing slash.
    const entryType = type === "File" && path.endsWith("/") ? "Directory" : type
    const entry: TarEntry = {
      type: entryType,
      path,
      linkpath: this.local.header.linkpath ?? header.linkpath ?? "",
      size: entryType === "File" ? size : 0,
      mode: (header.mode ?? 0o644) & 0o7777,
      uid: header.uid ?? 0,
      gid: header.gid ?? 0,
      mtime: header.mtime,
      devmajor: header.devmaj,
      devminor: header.devmin,
      xattrs: this.local.xattrs
    }
    this.local = emptyExtended()
    this.currentPath = path
    this.handler.entry(entry)
    // Bodies of non-files (a hard link may carry one) are read and dropped.
    if (entryType !== "File") {
      this.handler.end()
      this.skip(size)
      return
    }
    this.beginBody("body", size)
  }

  private decodeHeader(block: Buffer, isEntry: boolean): Header {
    try {
      return new Header(block, 0, isEntry ? this.local.header : undefined, isEntry ? this.global.header : undefined)
    } catch (e) {
      throw new Error(`not a tar archive: bad header at byte ${this.position - BLOCK} (${(e as Error).message})`)
    }
  }

  private beginBody(state: "body" | "meta", size: number): void {
    this.state = state
    this.remaining = size
    if (size === 0) this.finishBody()
  }

  private onMeta(body: Buffer): void {
    if (this.metaType === "x") parsePax(body, this.local)
    else if (this.metaType === "g") parsePax(body, this.global)
    else if (this.metaType === "L") this.local.header.path = cString(body)
    else this.local.header.linkpath = cString(body)
  }
}

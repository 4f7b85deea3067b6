/**
 * Layers written byte by byte for the tests, so that they can be as hostile as wanted: `..`
 * paths, links anywhere, devices, PAX xattrs, sparse headers, lying sizes, missing ends.
 */
import type { ResolvedImage } from "@boxlite/oci"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { gzipSync } from "node:zlib"

export interface TarEntrySpec {
  readonly path: string
  /** Typeflag: 0 file, 1 hard link, 2 symlink, 3 char device, 4 block device, 5 directory, 6 FIFO, S GNU sparse. */
  readonly type?: "0" | "1" | "2" | "3" | "4" | "5" | "6" | "S"
  readonly body?: Buffer | string
  /** Size written in the header when it must differ from the body's. */
  readonly declaredSize?: number
  readonly linkpath?: string
  readonly mode?: number
  readonly uid?: number
  readonly gid?: number
  readonly devmajor?: number
  readonly devminor?: number
  /** PAX records put in an `x` header before the entry (values may be binary). */
  readonly pax?: Readonly<Record<string, Buffer | string>>
}

const BLOCK = 512

const numberField = (block: Buffer, offset: number, length: number, value: number) => {
  const octal = value.toString(8)
  if (octal.length < length) {
    block.write(octal.padStart(length - 1, "0"), offset, "ascii")
    return
  }
  // Too large for octal: GNU base-256, as tars write sizes over 8 GiB.
  let rest = BigInt(value)
  for (let i = length - 1; i > 0; i--) {
    block[offset + i] = Number(rest & 0xffn)
    rest >>= 8n
  }
  block[offset] = 0x80
}

const header = (name: string, type: string, size: number, spec: Partial<TarEntrySpec> = {}) => {
  const block = Buffer.alloc(BLOCK)
  block.write(name, 0, 100, "utf8")
  numberField(block, 100, 8, spec.mode ?? (type === "5" ? 0o755 : 0o644))
  numberField(block, 108, 8, spec.uid ?? 0)
  numberField(block, 116, 8, spec.gid ?? 0)
  numberField(block, 124, 12, size)
  numberField(block, 136, 12, 1_700_000_000)
  block.write(type, 156, 1, "ascii")
  block.write(spec.linkpath ?? "", 157, 100, "utf8")
  block.write("ustar\u000000", 257, 8, "binary")
  numberField(block, 329, 8, spec.devmajor ?? 0)
  numberField(block, 337, 8, spec.devminor ?? 0)
  block.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148, 8, "binary")
  return block
}

const padded = (body: Buffer) => Buffer.concat([body, Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK)])

const paxRecord = (key: string, value: Buffer | string) => {
  const payload = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from("\n")])
  let length = payload.length + 1
  while (String(length).length + payload.length !== length) length++
  return Buffer.concat([Buffer.from(String(length)), payload])
}

/** One entry's blocks (its PAX header, header, padded body). */
export const tarEntry = (spec: TarEntrySpec): Buffer => {
  const body = Buffer.from(spec.body ?? "")
  const parts: Array<Buffer> = []
  if (spec.pax) {
    const records = Buffer.concat(Object.entries(spec.pax).map(([k, v]) => paxRecord(k, v)))
    parts.push(header("PaxHeader", "x", records.length), padded(records))
  }
  parts.push(header(spec.path, spec.type ?? "0", spec.declaredSize ?? body.length, spec), padded(body))
  return Buffer.concat(parts)
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK)

export const tarBytes = (entries: ReadonlyArray<TarEntrySpec>): Buffer => Buffer.concat([...entries.map(tarEntry), END_OF_ARCHIVE])

export type Layer = ResolvedImage["layers"][number]

const MEDIA_TYPES = {
  none: "application/vnd.oci.image.layer.v1.tar",
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd"
} as const

/** Stores `blob` (already compressed as said) as a layer file in `dir`. */
export const layerBlob = (dir: string, blob: Buffer, compression: keyof typeof MEDIA_TYPES): Layer => {
  const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`
  const file = path.join(dir, digest.replace(":", "-"))
  fs.writeFileSync(file, blob)
  return { digest, size: blob.length, mediaType: MEDIA_TYPES[compression], compression, path: file }
}

/** A layer of `tar`, compressed as asked. */
export const layerOf = (dir: string, tar: Buffer, compression: keyof typeof MEDIA_TYPES = "none"): Layer =>
  layerBlob(dir, compression === "gzip" ? gzipSync(tar) : compression === "zstd" ? execFileSync("zstd", ["-qc"], { input: tar }) : tar, compression)

let images = 0
export const imageOf = (layers: ReadonlyArray<Layer>): ResolvedImage => {
  const id = `${process.pid}-${++images}`
  return {
    reference: `test:${id}`, manifestDigest: `sha256:${id}`, configDigest: `sha256:${createHash("sha256").update(id).digest("hex")}`,
    os: "linux", architecture: "amd64", config: { env: [], entrypoint: [], cmd: [], workingDir: undefined, user: undefined }, layers: [...layers]
  }
}

export const debugfs = (image: string, command: string): string =>
  execFileSync("debugfs", ["-R", command, image], { stdio: ["ignore", "pipe", "ignore"] }).toString()

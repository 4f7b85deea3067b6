/**
 * The content store on disk:
 *
 *   <dir>/blobs/<alg>/<hex>     blobs, each verified against its digest before it gets that name
 *   <dir>/refs/<sha256>.json    one image record per canonical reference (hash of it as file name)
 *
 * Everything is written to a uniquely named temp file in the destination directory and renamed
 * into place, so readers (and other processes pulling the same image) never see partial files,
 * and two writers of the same blob both rename identical content.
 */
import { Effect, Schema } from "effect"
import { createHash, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { InvalidImage, layerCompression, type Layer, type ResolvedImage } from "../Image.js"
import { digestAlgorithm, isDigest, newHash } from "./digest.js"
import { StoreError } from "./errors.js"
import { ImageConfig, Manifest, parseJson, runConfig } from "./json.js"

export const ImageRecord = Schema.Struct({
  reference: Schema.String,
  manifestDigest: Schema.String,
  configDigest: Schema.String,
  platform: Schema.Struct({ os: Schema.String, architecture: Schema.String, variant: Schema.optionalKey(Schema.String) }),
  pulledAt: Schema.String,
  size: Schema.Number
})
export type ImageRecord = typeof ImageRecord.Type

export const blobFile = (dir: string, digest: string): string => {
  const algorithm = digestAlgorithm(digest)
  return path.join(dir, "blobs", algorithm, digest.slice(algorithm.length + 1))
}

const storeError = (file: string, action: string) => (e: unknown) =>
  new StoreError({ path: file, message: `cannot ${action} ${file}: ${(e as Error).message}` })

/** Whether the blob is stored (with the expected size; its content was verified when written). */
export const hasBlob = (dir: string, digest: string, size: number): Effect.Effect<boolean> =>
  Effect.promise(() => fs.stat(blobFile(dir, digest)).then((s) => s.size === size, () => false))

/** Writes `content` under a temp name next to `file`, then renames it into place. */
const writeAtomically = (file: string, content: Buffer | string): Effect.Effect<void, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      await fs.mkdir(path.dirname(file), { recursive: true })
      const temp = path.join(path.dirname(file), `.tmp-${randomUUID()}`)
      try {
        await fs.writeFile(temp, content, { flag: "wx" })
        await fs.rename(temp, file)
      } catch (e) {
        await fs.rm(temp, { force: true })
        throw e
      }
    },
    catch: storeError(file, "write")
  })

/** Stores bytes already checked against `digest`. */
export const storeVerifiedBytes = (dir: string, digest: string, bytes: Buffer): Effect.Effect<void, StoreError> =>
  writeAtomically(blobFile(dir, digest), bytes)

/** Marks an error of the incoming stream, as opposed to one of the file being written. */
class StreamFailure {
  constructor(readonly cause: unknown) {}
}

/**
 * Streams a blob into the store, hashing as it goes; only content that hashes to `digest`
 * and has `size` bytes is renamed to the digest's name. `onBytes` reports each chunk;
 * `streamFailed` describes a stream that broke off.
 */
export const storeStream = <E>(
  dir: string,
  digest: string,
  size: number,
  body: AsyncIterable<Buffer> & { destroy: () => unknown },
  onBytes: (count: number) => void,
  invalid: (message: string) => InvalidImage,
  streamFailed: (cause: unknown) => E
): Effect.Effect<void, InvalidImage | StoreError | E> => {
  const file = blobFile(dir, digest)
  const temp = path.join(path.dirname(file), `.tmp-${path.basename(file)}-${randomUUID()}`)
  return Effect.tryPromise({
    try: async (signal) => {
      const abort = () => body.destroy()
      signal.addEventListener("abort", abort)
      await fs.mkdir(path.dirname(file), { recursive: true })
      const handle = await fs.open(temp, "wx")
      try {
        const hash = newHash(digestAlgorithm(digest))
        let received = 0
        const chunks = body[Symbol.asyncIterator]()
        while (true) {
          const next = await chunks.next().catch((e: unknown) => { throw new StreamFailure(e) })
          if (next.done) break
          const chunk = next.value
          received += chunk.length
          if (received > size) throw invalid(`blob ${digest} is larger than the ${size} bytes its manifest says`)
          hash.update(chunk)
          await handle.write(chunk)
          onBytes(chunk.length)
        }
        const actual = `${digestAlgorithm(digest)}:${hash.digest("hex")}`
        if (received !== size) throw invalid(`blob ${digest} has ${received} bytes, its manifest says ${size}`)
        if (actual !== digest) throw invalid(`blob ${digest} is corrupt: its content hashes to ${actual}`)
        // Durable before it is named: a crash must not leave an empty file under a digest.
        await handle.datasync()
        await handle.close()
        await fs.rename(temp, file)
      } catch (e) {
        body.destroy()
        await handle.close().catch(() => undefined)
        await fs.rm(temp, { force: true })
        throw e
      } finally {
        signal.removeEventListener("abort", abort)
      }
    },
    catch: (e) => e instanceof InvalidImage ? e : e instanceof StreamFailure ? streamFailed(e.cause) : storeError(temp, "write")(e)
  })
}

/** A stored blob's bytes, or undefined when it is not stored. */
export const readBlob = (dir: string, digest: string): Effect.Effect<Buffer | undefined> =>
  Effect.promise(() => fs.readFile(blobFile(dir, digest)).catch(() => undefined))

// Records ---------------------------------------------------------------------------------

const recordFile = (dir: string, reference: string) =>
  path.join(dir, "refs", `${createHash("sha256").update(reference).digest("hex")}.json`)

export const writeRecord = (dir: string, record: ImageRecord): Effect.Effect<void, StoreError> =>
  writeAtomically(recordFile(dir, record.reference), JSON.stringify(record, null, 2))

const decodeRecord = Schema.decodeUnknownOption(ImageRecord)

const parseRecord = (text: string | undefined): ImageRecord | undefined => {
  if (text === undefined) return undefined
  try {
    const record = decodeRecord(JSON.parse(text))
    return record._tag === "Some" ? record.value : undefined
  } catch {
    return undefined
  }
}

export const readRecord = (dir: string, reference: string): Effect.Effect<ImageRecord | undefined> =>
  Effect.promise(() => fs.readFile(recordFile(dir, reference), "utf8").then(parseRecord, () => undefined))

/** Drops a record; false if there was none. */
export const deleteRecord = (dir: string, reference: string): Effect.Effect<boolean, StoreError> =>
  Effect.tryPromise({
    try: () => fs.rm(recordFile(dir, reference)).then(() => true, (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return false
      throw e
    }),
    catch: storeError(recordFile(dir, reference), "remove")
  })

/** All readable records, by reference. Records are written atomically, so unreadable ones are foreign files. */
export const listRecords = (dir: string): Effect.Effect<ReadonlyArray<ImageRecord>, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      const refsDir = path.join(dir, "refs")
      const names = await fs.readdir(refsDir).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return []
        throw e
      })
      const records = await Promise.all(names.filter((n) => n.endsWith(".json") && !n.startsWith("."))
        .map((n) => fs.readFile(path.join(refsDir, n), "utf8").then(parseRecord, () => undefined)))
      return records.filter((r): r is ImageRecord => r !== undefined).sort((a, b) => a.reference.localeCompare(b.reference))
    },
    catch: storeError(path.join(dir, "refs"), "read")
  })

// Images ----------------------------------------------------------------------------------

/** Reads a stored manifest (undefined when it is not in the store). */
export const readManifest = (dir: string, digest: string, invalid: (message: string) => InvalidImage): Effect.Effect<Manifest | undefined, InvalidImage> =>
  Effect.flatMap(readBlob(dir, digest), (bytes) =>
    bytes === undefined ? Effect.succeed(undefined) : parseJson(Manifest, bytes.toString("utf8"), `manifest ${digest}`, invalid))

/** The stored image of a record, or undefined when some of its blobs are not (or no longer) stored. */
export const loadImage = (dir: string, record: ImageRecord, rawReference: string): Effect.Effect<ResolvedImage | undefined, InvalidImage> =>
  Effect.gen(function*() {
    const invalid = (message: string) => new InvalidImage({ reference: rawReference, message })
    const manifest = yield* readManifest(dir, record.manifestDigest, invalid)
    if (manifest === undefined) return undefined
    const configBytes = yield* readBlob(dir, manifest.config.digest)
    if (configBytes === undefined) return undefined
    const config = yield* parseJson(ImageConfig, configBytes.toString("utf8"), `config ${manifest.config.digest}`, invalid)
    const layers: Array<Layer> = []
    for (const descriptor of manifest.layers) {
      const layer = yield* describeLayer(descriptor, invalid)
      if (!(yield* hasBlob(dir, layer.digest, layer.size))) return undefined
      layers.push({ ...layer, path: blobFile(dir, layer.digest) })
    }
    return {
      reference: rawReference,
      manifestDigest: record.manifestDigest,
      configDigest: manifest.config.digest,
      os: record.platform.os,
      architecture: record.platform.architecture,
      config: runConfig(config),
      layers
    } satisfies ResolvedImage
  })

/** A manifest's layer as the model has it (without its path), refusing layers BoxLite cannot unpack. */
export const describeLayer = (
  descriptor: Manifest["layers"][number],
  invalid: (message: string) => InvalidImage
): Effect.Effect<Omit<Layer, "path">, InvalidImage> => {
  const mediaType = descriptor.mediaType ?? "application/vnd.oci.image.layer.v1.tar+gzip"
  const compression = layerCompression(mediaType)
  if (compression === undefined) return Effect.fail(invalid(`layer ${descriptor.digest} has an unsupported media type ${mediaType}`))
  if (!isDigest(descriptor.digest)) return Effect.fail(invalid(`layer digest "${descriptor.digest}" is not a supported digest`))
  return Effect.succeed({ digest: descriptor.digest, size: descriptor.size, mediaType, compression })
}

/** Deletes blobs outside `keep`; temp files are left to their writers. */
export const deleteBlobsExcept = (dir: string, keep: ReadonlySet<string>): Effect.Effect<{ removedBlobs: number; freedBytes: number }, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      let removedBlobs = 0
      let freedBytes = 0
      const blobsDir = path.join(dir, "blobs")
      const algorithms = await fs.readdir(blobsDir).catch(() => [])
      for (const algorithm of algorithms) {
        for (const name of await fs.readdir(path.join(blobsDir, algorithm))) {
          const digest = `${algorithm}:${name}`
          if (!isDigest(digest) || keep.has(digest)) continue
          const file = path.join(blobsDir, algorithm, name)
          const stat = await fs.stat(file).catch(() => undefined)
          if (stat === undefined) continue
          await fs.rm(file, { force: true })
          removedBlobs++
          freedBytes += stat.size
        }
      }
      return { removedBlobs, freedBytes }
    },
    catch: storeError(path.join(dir, "blobs"), "prune")
  })

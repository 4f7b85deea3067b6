/**
 * The content store of pulled images (containerd's idea, on plain files): blobs by digest,
 * shared between images and verified before they are named, plus one record per pulled
 * reference. Core keeps it at `<home>/images`.
 */
import { Context, Effect, Layer } from "effect"
import { ImageNotFound, InvalidImage, type Layer as ImageLayer, type ResolvedImage, type RunConfig } from "./Image.js"
import { formatReference, InvalidReference, parseReference, type RegistryReference } from "./ImageReference.js"
import type { RegistryAuthError, RegistryError, StoreError } from "./internal/errors.js"
import { pullImage } from "./internal/pull.js"
import { deleteBlobsExcept, deleteRecord, type ImageRecord, listRecords, loadImage, readManifest, readRecord } from "./internal/store.js"
import { type Platform, platformMatches } from "./Platform.js"
import type { PullOptions } from "./Registry.js"

export { StoreError } from "./internal/errors.js"

/** A pulled image as `list` shows it. */
export interface ImageInfo {
  /** Canonical: `docker.io/library/busybox:latest`. */
  readonly reference: string
  readonly manifestDigest: string
  readonly configDigest: string
  readonly platform: Platform
  /** ISO 8601. */
  readonly pulledAt: string
  /** Bytes of config and (compressed) layers. */
  readonly size: number
}

export interface ImageDetails extends ImageInfo {
  readonly config: RunConfig
  readonly layers: ReadonlyArray<ImageLayer>
}

export interface PruneResult {
  readonly removedBlobs: number
  readonly freedBytes: number
}

export type PullError = InvalidReference | ImageNotFound | InvalidImage | RegistryError | RegistryAuthError | StoreError

export interface ContentStoreShape {
  readonly dir: string
  /** Downloads what is missing and records the image; blobs already stored are not fetched again. */
  readonly pull: (reference: string | RegistryReference, options?: PullOptions) => Effect.Effect<ResolvedImage, PullError>
  /** An already pulled image (for `platform`, when given), without the network; undefined if not pulled. */
  readonly resolveLocal: (reference: string | RegistryReference, platform?: Platform) => Effect.Effect<ResolvedImage | undefined, InvalidReference | InvalidImage>
  readonly list: Effect.Effect<ReadonlyArray<ImageInfo>, StoreError>
  readonly inspect: (reference: string | RegistryReference) => Effect.Effect<ImageDetails, InvalidReference | ImageNotFound | InvalidImage>
  /** Forgets a pulled reference; its blobs stay until `prune`. */
  readonly remove: (reference: string | RegistryReference) => Effect.Effect<void, InvalidReference | ImageNotFound | StoreError>
  /** Deletes blobs that no record (nor `keepDigests`) refers to. Not to be run while pulling into the same store. */
  readonly prune: (keepDigests?: Iterable<string>) => Effect.Effect<PruneResult, StoreError | InvalidImage>
}

export class ContentStore extends Context.Service<ContentStore, ContentStoreShape>()("@boxlite/oci/ContentStore") {}

const toRegistryReference = (reference: string | RegistryReference): Effect.Effect<RegistryReference, InvalidReference> =>
  Effect.suspend(() => {
    if (typeof reference !== "string") return Effect.succeed(reference)
    try {
      const ref = parseReference(reference)
      return ref._tag === "Registry"
        ? Effect.succeed(ref)
        : Effect.fail(new InvalidReference({ reference, message: "an oci: layout reference is read in place, not pulled into the store" }))
    } catch (e) {
      return Effect.fail(e instanceof InvalidReference ? e : new InvalidReference({ reference, message: String(e) }))
    }
  })

const info = ({ reference, manifestDigest, configDigest, platform, pulledAt, size }: ImageRecord): ImageInfo =>
  ({ reference, manifestDigest, configDigest, platform, pulledAt, size })

/** The store in `dir`, as plain functions. */
export const make = (dir: string): ContentStoreShape => {
  const recordOf = (reference: string | RegistryReference) =>
    Effect.flatMap(toRegistryReference(reference), (ref) => Effect.map(readRecord(dir, formatReference(ref)), (record) => ({ ref, record })))
  const notPulled = (ref: RegistryReference) =>
    new ImageNotFound({ reference: ref.raw, message: `${formatReference(ref)} has not been pulled into ${dir}` })

  return {
    dir,
    pull: (reference, options = {}) => Effect.flatMap(toRegistryReference(reference), (ref) => pullImage(dir, ref, options)),

    resolveLocal: (reference, platform) =>
      Effect.flatMap(recordOf(reference), ({ ref, record }) =>
        record === undefined || (platform !== undefined && !platformMatches(record.platform, platform))
          ? Effect.succeed(undefined)
          : loadImage(dir, record, ref.raw)),

    list: Effect.map(listRecords(dir), (records) => records.map(info)),

    inspect: (reference) =>
      Effect.gen(function*() {
        const { ref, record } = yield* recordOf(reference)
        if (record === undefined) return yield* notPulled(ref)
        const image = yield* loadImage(dir, record, ref.raw)
        if (image === undefined) {
          return yield* new ImageNotFound({ reference: ref.raw, message: `${record.reference} is recorded but some of its blobs are missing from ${dir}; pull it again` })
        }
        return { ...info(record), config: image.config, layers: image.layers }
      }),

    remove: (reference) =>
      Effect.gen(function*() {
        const ref = yield* toRegistryReference(reference)
        if (!(yield* deleteRecord(dir, formatReference(ref)))) return yield* notPulled(ref)
      }),

    prune: (keepDigests = []) =>
      Effect.gen(function*() {
        const keep = new Set(keepDigests)
        for (const record of yield* listRecords(dir)) {
          keep.add(record.manifestDigest)
          const manifest = yield* readManifest(dir, record.manifestDigest, (message) => new InvalidImage({ reference: record.reference, message }))
          if (manifest === undefined) continue
          keep.add(manifest.config.digest)
          for (const layer of manifest.layers) keep.add(layer.digest)
        }
        return yield* deleteBlobsExcept(dir, keep)
      })
  }
}

/** Provides `ContentStore` for the store in `options.dir`. */
export const layer = (options: { readonly dir: string }): Layer.Layer<ContentStore> =>
  Layer.succeed(ContentStore, make(options.dir))

/**
 * The images of a home directory: OCI layouts read in place, registry images pulled into the
 * content store (`<home>/images`), and the per-image ext4 bases built from either.
 */
import {
  type ContentStoreShape, type ImageDetails, type ImageInfo, parseReference, type Platform, type PullError, type PullProgress,
  type RegistryConfig, type ResolvedImage, resolveLayout
} from "@boxlite/oci"
import { baseFileName } from "@boxlite/storage"
import { Effect } from "effect"
import * as path from "node:path"
import { ImageError, ImageNotFound, RegistryAuthError, RegistryError, StorageError } from "./Errors.js"
import { readDirIfExists, removeTree, statIfExists } from "./internal/Fs.js"
import { readLayouts } from "./internal/Layouts.js"

export type { ImageDetails, ImageInfo, PullProgress, RegistryConfig }

export interface RegistryOptions {
  /** Per registry host (`docker.io`, `ghcr.io`, `127.0.0.1:5000`): mirrors, TLS CA, insecure HTTP, credentials. */
  readonly registries?: Readonly<Record<string, RegistryConfig>>
  /** Where Docker credentials are read from. Default `~/.docker/config.json`. */
  readonly dockerConfigPath?: string
  /** The platform to pull. Default: the host's (`linux/amd64`, `linux/arm64`). */
  readonly platform?: Platform
}

export type ImagePullError = ImageNotFound | ImageError | RegistryAuthError | RegistryError | StorageError

export interface PruneResult {
  readonly removedBlobs: number
  readonly removedBases: number
  readonly freedBytes: number
}

export interface Images {
  /** Pulls (or refreshes) a registry image; layers already stored are not downloaded again. */
  readonly pull: (reference: string, options?: { readonly onProgress?: (event: PullProgress) => void }) => Effect.Effect<ImageInfo, ImagePullError>
  /** Pulled images, then the OCI layouts boxes were made from while their root filesystems are kept (`pulledAt`: last used). */
  readonly list: Effect.Effect<ReadonlyArray<ImageInfo>, StorageError>
  /** The image's config (env, entrypoint, cmd, workdir, user) and layers. */
  readonly inspect: (reference: string) => Effect.Effect<ImageDetails, ImageNotFound | ImageError>
  /** Forgets a pulled image; what it alone used is freed by `prune`. */
  readonly remove: (reference: string) => Effect.Effect<void, ImageNotFound | ImageError | StorageError>
  /** Deletes blobs and root filesystem bases that no image and no box uses. */
  readonly prune: Effect.Effect<PruneResult, StorageError | ImageError>
}

/** Maps @boxlite/oci's errors for `reference` onto BoxLite's error classes. */
export const fromPullError = (reference: string) => (e: PullError): ImagePullError => {
  switch (e._tag) {
    case "ImageNotFound":
      return new ImageNotFound({ reference, message: `image "${reference}": ${e.message}` })
    case "InvalidReference":
    case "InvalidImage":
      return new ImageError({ reference, message: `image "${reference}": ${e.message}` })
    case "RegistryAuthError":
      return new RegistryAuthError({ registry: e.registry, status: e.status, message: `image "${reference}": ${e.message}` })
    case "RegistryError":
      return new RegistryError({ registry: e.registry, status: e.status, message: `image "${reference}": ${e.message}` })
    case "StoreError":
      return new StorageError({ message: `image "${reference}": ${e.message}` })
  }
}

/** A layout is read in place; a registry image comes from the store, pulled first if missing. */
export const resolveImage = (store: ContentStoreShape, options: RegistryOptions, reference: string): Effect.Effect<ResolvedImage, ImagePullError> =>
  Effect.suspend(() => {
    let ref
    try {
      ref = parseReference(reference)
    } catch (e) {
      return Effect.fail(new ImageError({ reference, message: `invalid image reference "${reference}": ${(e as Error).message}` }))
    }
    const mapError = fromPullError(reference)
    if (ref._tag === "Layout") return Effect.mapError(resolveLayout(ref, options.platform), mapError)
    return store.resolveLocal(ref, options.platform).pipe(
      Effect.flatMap((local) => (local ? Effect.succeed(local) : store.pull(ref, pullOptions(options)))),
      Effect.mapError(mapError)
    )
  })

const pullOptions = (options: RegistryOptions, onProgress?: (event: PullProgress) => void) => ({
  ...(options.registries ? { registries: options.registries } : {}),
  ...(options.dockerConfigPath ? { dockerConfigPath: options.dockerConfigPath } : {}),
  ...(options.platform ? { platform: options.platform } : {}),
  ...(onProgress ? { onProgress } : {})
})

export const makeImages = (
  store: ContentStoreShape,
  options: RegistryOptions,
  rootfsDir: string,
  basesInUse: Effect.Effect<ReadonlyArray<string>>
): Images => ({
  pull: (reference, pull) =>
    store.pull(reference, pullOptions(options, pull?.onProgress)).pipe(
      Effect.flatMap(() => store.inspect(reference)),
      Effect.map(({ config: _config, layers: _layers, ...info }) => info),
      Effect.mapError(fromPullError(reference))
    ),
  list: Effect.gen(function*() {
    const pulled = yield* Effect.mapError(store.list, (e) => new StorageError({ message: e.message }))
    const layouts = yield* readLayouts(rootfsDir)
    const kept = yield* readDirIfExists(rootfsDir)
    return [...pulled, ...Object.values(layouts).filter((l) => kept.includes(baseFileName(l.configDigest)))]
  }),
  inspect: (reference) => Effect.mapError(store.inspect(reference), (e) => fromPullError(reference)(e) as ImageNotFound | ImageError),
  remove: (reference) => Effect.mapError(store.remove(reference), (e) => fromPullError(reference)(e) as ImageNotFound | ImageError | StorageError),
  prune: Effect.gen(function*() {
    const images = yield* Effect.mapError(store.list, (e) => new StorageError({ message: e.message }))
    const keep = new Set([...images.map((i) => baseFileName(i.configDigest)), ...(yield* basesInUse).map((b) => path.basename(b))])
    const bases = yield* readDirIfExists(rootfsDir)
    let removedBases = 0
    let freedBytes = 0
    for (const base of bases) {
      if (!base.endsWith(".ext4") || keep.has(base)) continue
      const file = path.join(rootfsDir, base)
      freedBytes += ((yield* statIfExists(file))?.blocks ?? 0) * 512
      yield* removeTree(file)
      removedBases++
    }
    const blobs = yield* store.prune().pipe(
      Effect.mapError((e) => e._tag === "StoreError" ? new StorageError({ message: e.message }) : new ImageError({ reference: e.reference, message: e.message }))
    )
    return { removedBlobs: blobs.removedBlobs, removedBases, freedBytes: freedBytes + blobs.freedBytes }
  })
})

/**
 * A pull: resolve the manifest (mirrors first), store manifest and config, download the
 * missing layers a few at a time with progress, then record the image under its reference.
 */
import { Effect } from "effect"
import { ImageNotFound, InvalidImage, type ResolvedImage } from "../Image.js"
import { formatReference, type RegistryReference } from "../ImageReference.js"
import { formatPlatform, platformMatches } from "../Platform.js"
import type { LayerProgress, PullOptions, PullProgress } from "../Registry.js"
import { RegistryError, type StoreError } from "./errors.js"
import { ImageConfig, parseJson } from "./json.js"
import { fetchSmallBlob, openBlob, type RegistryFailure, resolveRemoteManifest } from "./registryClient.js"
import { describeLayer, hasBlob, loadImage, readBlob, storeStream, storeVerifiedBytes, writeRecord } from "./store.js"

/** Enough to keep a connection busy while another finishes, without hogging the registry. */
const LAYER_DOWNLOADS_AT_ONCE = 3

export const pullImage = (
  dir: string,
  ref: RegistryReference,
  options: PullOptions
): Effect.Effect<ResolvedImage, RegistryFailure | InvalidImage | StoreError> =>
  Effect.gen(function*() {
    const reference = formatReference(ref)
    const invalid = (message: string) => new InvalidImage({ reference: ref.raw, message })
    const layerStates: Array<LayerProgress> = []
    const report = (phase: PullProgress["phase"]) => {
      if (options.onProgress === undefined) return
      options.onProgress({
        reference,
        phase,
        layers: layerStates.map((l) => ({ ...l })),
        downloadedBytes: layerStates.reduce((n, l) => n + l.downloadedBytes, 0),
        totalBytes: layerStates.reduce((n, l) => n + l.totalBytes, 0)
      })
    }
    report("resolving")

    const record = yield* Effect.scoped(Effect.gen(function*() {
      const remote = yield* resolveRemoteManifest(ref, options)
      const { session, manifest } = remote
      const layers = yield* Effect.forEach(manifest.layers, (l) => describeLayer(l, invalid))

      const configBytes = (yield* readBlob(dir, manifest.config.digest)) ?? (yield* fetchSmallBlob(session, manifest.config.digest))
      const config = yield* parseJson(ImageConfig, configBytes.toString("utf8"), `config ${manifest.config.digest}`, invalid)
      // An index vouches for its platforms; a lone manifest is only as good as its config says.
      const platform = remote.fromIndex
        ? remote.platform
        : { os: config.os ?? remote.platform.os, architecture: config.architecture ?? remote.platform.architecture }
      const wanted = { os: remote.platform.os, architecture: remote.platform.architecture }
      if (!platformMatches(platform, wanted)) {
        return yield* new ImageNotFound({ reference: ref.raw, message: `${reference} is only built for ${formatPlatform(platform)}, not ${formatPlatform(remote.platform)}` })
      }

      for (const layer of layers) {
        const cached = yield* hasBlob(dir, layer.digest, layer.size)
        layerStates.push({ digest: layer.digest, downloadedBytes: cached ? layer.size : 0, totalBytes: layer.size, cached })
      }
      report("downloading")
      yield* Effect.forEach(layerStates, (state, i) => {
        if (state.cached) return Effect.void
        return Effect.flatMap(openBlob(session, state.digest), (response) =>
          storeStream(dir, state.digest, state.totalBytes, response.body, (count) => {
            layerStates[i] = { ...state, downloadedBytes: (layerStates[i]?.downloadedBytes ?? 0) + count }
            report("downloading")
          }, invalid, (cause) => new RegistryError({
            registry: ref.registry,
            status: undefined,
            message: `the download of ${state.digest} from ${session.endpoint.name} broke off: ${(cause as Error).message ?? String(cause)}`
          })))
      }, { concurrency: LAYER_DOWNLOADS_AT_ONCE, discard: true })

      // Manifest and config last: a stored manifest means its image is complete.
      yield* storeVerifiedBytes(dir, manifest.config.digest, configBytes)
      yield* storeVerifiedBytes(dir, remote.manifestDigest, remote.manifestBytes)
      return {
        reference,
        manifestDigest: remote.manifestDigest,
        configDigest: manifest.config.digest,
        platform,
        pulledAt: new Date().toISOString(),
        size: manifest.config.size + layers.reduce((n, l) => n + l.size, 0)
      }
    }))
    yield* writeRecord(dir, record)
    const image = yield* loadImage(dir, record, ref.raw)
    if (image === undefined) return yield* invalid(`${reference} was pulled but its blobs are gone from ${dir} (pruned meanwhile?)`)
    report("done")
    return image
  })

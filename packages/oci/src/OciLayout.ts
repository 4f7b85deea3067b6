/**
 * OCI image layouts (image-spec `image-layout.md`): a directory with `oci-layout`,
 * `index.json` and `blobs/<alg>/<hex>`, as written by skopeo, umoci or buildah.
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { ImageNotFound, InvalidImage, layerCompression, type ResolvedImage } from "./Image.js"
import type { LayoutReference } from "./ImageReference.js"
import { Descriptor, ImageConfig, Index, Manifest, parseJson, runConfig } from "./internal/json.js"
import { formatPlatform, hostPlatform, type Platform, platformMatches } from "./Platform.js"

const REF_NAME = "org.opencontainers.image.ref.name"
const INDEX_TYPES = new Set(["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"])

export const blobPath = (layoutDir: string, digest: string): string => {
  const [algorithm, hex] = digest.split(":")
  return path.join(layoutDir, "blobs", algorithm ?? "", hex ?? "")
}

/** Reads a layout's image by tag (or its only image), choosing `platform` from an index. */
export const resolveLayout = (
  ref: LayoutReference,
  platform: Platform = hostPlatform()
): Effect.Effect<ResolvedImage, ImageNotFound | InvalidImage> =>
  Effect.gen(function*() {
    const dir = path.resolve(ref.path)
    const invalid = (message: string) => new InvalidImage({ reference: ref.raw, message })

    const stat = yield* Effect.promise(() => fs.stat(dir).catch(() => undefined))
    if (!stat?.isDirectory()) {
      return yield* new ImageNotFound({ reference: ref.raw, message: `no OCI image layout directory at ${dir}` })
    }
    const layoutFile = yield* readText(path.join(dir, "oci-layout"))
    if (layoutFile === undefined) return yield* invalid(`${dir} is not an OCI image layout: it has no oci-layout file`)

    const index = yield* parseJson(Index, yield* readText(path.join(dir, "index.json")), "index.json", invalid)
    const descriptor = yield* pickByTag(index.manifests, ref, dir)

    const readBlob = (d: Descriptor, what: string) =>
      Effect.gen(function*() {
        const bytes = yield* Effect.promise(() => fs.readFile(blobPath(dir, d.digest)).catch(() => undefined))
        if (bytes === undefined) return yield* invalid(`${what} blob ${d.digest} is missing from the layout`)
        const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`
        if (d.digest.startsWith("sha256:") && actual !== d.digest) {
          return yield* invalid(`${what} blob ${d.digest} is corrupt (its content hashes to ${actual})`)
        }
        return bytes.toString("utf8")
      })

    let manifestDescriptor = descriptor
    if (descriptor.mediaType !== undefined && INDEX_TYPES.has(descriptor.mediaType)) {
      const nested = yield* parseJson(Index, yield* readBlob(descriptor, "index"), `index ${descriptor.digest}`, invalid)
      const match = nested.manifests.find((m) => platformMatches(m.platform, platform))
      if (!match) {
        const offered = nested.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : "?")).join(", ")
        return yield* new ImageNotFound({ reference: ref.raw, message: `no image for ${formatPlatform(platform)} in the index (it has: ${offered})` })
      }
      manifestDescriptor = match
    }

    const manifest = yield* parseJson(Manifest, yield* readBlob(manifestDescriptor, "manifest"), `manifest ${manifestDescriptor.digest}`, invalid)
    const config = yield* parseJson(ImageConfig, yield* readBlob(manifest.config, "config"), `config ${manifest.config.digest}`, invalid)

    const layers = []
    for (const layer of manifest.layers) {
      const mediaType = layer.mediaType ?? "application/vnd.oci.image.layer.v1.tar+gzip"
      const compression = layerCompression(mediaType)
      if (compression === undefined) return yield* invalid(`layer ${layer.digest} has an unsupported media type ${mediaType}`)
      const file = blobPath(dir, layer.digest)
      const size = yield* Effect.promise(() => fs.stat(file).then((s) => s.size, () => undefined))
      if (size === undefined) return yield* invalid(`layer blob ${layer.digest} is missing from the layout`)
      if (size !== layer.size) return yield* invalid(`layer blob ${layer.digest} has ${size} bytes, the manifest says ${layer.size}`)
      layers.push({ digest: layer.digest, size: layer.size, mediaType, compression, path: file })
    }

    return {
      reference: ref.raw,
      manifestDigest: manifestDescriptor.digest,
      configDigest: manifest.config.digest,
      os: config.os ?? platform.os,
      architecture: config.architecture ?? platform.architecture,
      config: runConfig(config),
      layers
    } satisfies ResolvedImage
  })

const readText = (file: string) => Effect.promise(() => fs.readFile(file, "utf8").catch(() => undefined))

const pickByTag = (manifests: ReadonlyArray<Descriptor>, ref: LayoutReference, dir: string) => {
  const tags = manifests.map((m) => m.annotations?.[REF_NAME]).filter((t): t is string => t !== undefined)
  const wanted = ref.tag
  const found = wanted !== undefined
    ? manifests.find((m) => m.annotations?.[REF_NAME] === wanted)
    : manifests.length === 1 ? manifests[0] : manifests.find((m) => m.annotations?.[REF_NAME] === "latest")
  if (found) return Effect.succeed(found)
  const have = tags.length > 0 ? `it has: ${tags.join(", ")}` : "it has no tagged images"
  const what = wanted !== undefined ? `no image tagged "${wanted}"` : "no tag given and no single or \"latest\" image"
  return Effect.fail(new ImageNotFound({ reference: ref.raw, message: `${what} in the layout at ${dir} (${have})` }))
}

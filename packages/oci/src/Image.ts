/**
 * A resolved image: its config and its layers, ready to be turned into a root filesystem.
 * Whatever the image came from (a local layout now, a registry's content store later), this
 * is what the rest of BoxLite sees.
 */
import { BoxliteError } from "@boxlite/driver"
import { Schema } from "effect"

export const MediaType = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json"
} as const

export type LayerCompression = "gzip" | "zstd" | "none"

export interface Layer {
  readonly digest: string
  readonly size: number
  readonly mediaType: string
  readonly compression: LayerCompression
  /** Where the blob's bytes are on this machine. */
  readonly path: string
}

/** The parts of the image config that decide how commands run (OCI image-spec config.config). */
export interface RunConfig {
  readonly env: ReadonlyArray<readonly [string, string]>
  readonly entrypoint: ReadonlyArray<string>
  readonly cmd: ReadonlyArray<string>
  readonly workingDir: string | undefined
  readonly user: string | undefined
}

export interface ResolvedImage {
  /** The reference as the user wrote it. */
  readonly reference: string
  readonly manifestDigest: string
  /** Identifies the image's content: the key of its root filesystem cache. */
  readonly configDigest: string
  readonly os: string
  readonly architecture: string
  readonly config: RunConfig
  readonly layers: ReadonlyArray<Layer>
}

/** The image does not exist where the reference points. */
export class ImageNotFound extends BoxliteError.extend<ImageNotFound>("ImageNotFound")({
  _tag: Schema.tag("ImageNotFound"),
  reference: Schema.String
}) {}

/** The image exists but its content is not a valid image (bad JSON, missing blob, wrong digest). */
export class InvalidImage extends BoxliteError.extend<InvalidImage>("InvalidImage")({
  _tag: Schema.tag("InvalidImage"),
  reference: Schema.String
}) {}

export const layerCompression = (mediaType: string): LayerCompression | undefined => {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip") || mediaType === "application/vnd.docker.image.rootfs.diff.tar.gzip") return "gzip"
  if (mediaType.endsWith("+zstd")) return "zstd"
  if (mediaType.endsWith(".tar") || mediaType === "application/vnd.oci.image.layer.v1.tar") return "none"
  return undefined
}

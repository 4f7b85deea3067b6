/** Shapes of the OCI/Docker JSON documents, validated with effect/Schema. */
import { Schema } from "effect"

export const Descriptor = Schema.Struct({
  mediaType: Schema.optionalKey(Schema.String),
  digest: Schema.String,
  size: Schema.Number,
  annotations: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  platform: Schema.optionalKey(Schema.Struct({ os: Schema.String, architecture: Schema.String, variant: Schema.optionalKey(Schema.String) }))
})
export type Descriptor = typeof Descriptor.Type

export const Index = Schema.Struct({
  schemaVersion: Schema.Number,
  mediaType: Schema.optionalKey(Schema.String),
  manifests: Schema.Array(Descriptor)
})
export type Index = typeof Index.Type

export const Manifest = Schema.Struct({
  schemaVersion: Schema.Number,
  mediaType: Schema.optionalKey(Schema.String),
  config: Descriptor,
  layers: Schema.Array(Descriptor)
})
export type Manifest = typeof Manifest.Type

const NullableStrings = Schema.optionalKey(Schema.NullOr(Schema.Array(Schema.String)))

export const ImageConfig = Schema.Struct({
  architecture: Schema.optionalKey(Schema.String),
  os: Schema.optionalKey(Schema.String),
  config: Schema.optionalKey(Schema.Struct({
    Env: NullableStrings,
    Entrypoint: NullableStrings,
    Cmd: NullableStrings,
    WorkingDir: Schema.optionalKey(Schema.String),
    User: Schema.optionalKey(Schema.String)
  })),
  rootfs: Schema.optionalKey(Schema.Struct({ type: Schema.String, diff_ids: Schema.Array(Schema.String) }))
})
export type ImageConfig = typeof ImageConfig.Type

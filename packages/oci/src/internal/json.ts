/** Shapes of the OCI/Docker JSON documents, validated with effect/Schema, and their parsing. */
import { Effect, Schema } from "effect"
import type { InvalidImage, RunConfig } from "../Image.js"

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

/** Parses and validates a JSON document; `what` names it in the error ("manifest sha256:..."). */
export const parseJson = <S extends Schema.ConstraintDecoder<unknown>>(
  schema: S,
  text: string | undefined,
  what: string,
  invalid: (message: string) => InvalidImage
): Effect.Effect<S["Type"], InvalidImage> => {
  if (text === undefined) return Effect.fail(invalid(`${what} is missing`))
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    return Effect.fail(invalid(`${what} is not valid JSON: ${(e as Error).message}`))
  }
  return Schema.decodeUnknownEffect(schema)(json).pipe(
    Effect.mapError((e) => invalid(`${what} is not a valid document: ${e.message}`))
  ) as Effect.Effect<S["Type"], InvalidImage>
}

/** The parts of an image config that decide how commands run. */
export const runConfig = (config: ImageConfig): RunConfig => {
  const c = config.config
  const env = (c?.Env ?? []).map((kv) => {
    const eq = kv.indexOf("=")
    return (eq < 0 ? [kv, ""] : [kv.slice(0, eq), kv.slice(eq + 1)]) as readonly [string, string]
  })
  return {
    env,
    entrypoint: c?.Entrypoint ?? [],
    cmd: c?.Cmd ?? [],
    workingDir: c?.WorkingDir || undefined,
    user: c?.User || undefined
  }
}

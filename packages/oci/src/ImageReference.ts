/**
 * Image references: what a user writes in `image:`.
 *
 * - `oci:/path/to/layout[:tag]` names an OCI image layout directory on this machine.
 * - anything else is a registry reference (`python:slim`, `ghcr.io/o/r:tag`, `name@sha256:...`),
 *   normalised the way Docker does it.
 */
import { BoxliteError } from "@boxlite/driver"
import { Schema } from "effect"

/** The reference cannot be parsed. */
export class InvalidReference extends BoxliteError.extend<InvalidReference>("InvalidReference")({
  _tag: Schema.tag("InvalidReference"),
  reference: Schema.String
}) {}

export interface LayoutReference {
  readonly _tag: "Layout"
  readonly raw: string
  readonly path: string
  readonly tag: string | undefined
}

export interface RegistryReference {
  readonly _tag: "Registry"
  readonly raw: string
  /** e.g. `docker.io`, `ghcr.io`, `127.0.0.1:5000` */
  readonly registry: string
  /** e.g. `library/python` */
  readonly repository: string
  readonly tag: string | undefined
  readonly digest: string | undefined
}

export type ImageReference = LayoutReference | RegistryReference

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/
const TAG = /^[\w][\w.-]{0,127}$/
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/

export const DOCKER_HUB = "docker.io"

export const parseReference = (raw: string): ImageReference => {
  const fail = (message: string) => { throw new InvalidReference({ reference: raw, message }) }
  if (raw.length === 0) return fail("the image reference is empty")
  if (raw.startsWith("oci:")) {
    const rest = raw.slice(4)
    // The tag is what follows the last ':' after the last '/', so paths may contain ':'.
    const slash = rest.lastIndexOf("/")
    const colon = rest.lastIndexOf(":")
    const hasTag = colon > slash
    const path = hasTag ? rest.slice(0, colon) : rest
    const tag = hasTag ? rest.slice(colon + 1) : undefined
    if (path.length === 0) return fail("an oci: reference needs a layout directory path")
    if (tag !== undefined && !TAG.test(tag)) return fail(`"${tag}" is not a valid tag`)
    return { _tag: "Layout", raw, path, tag }
  }
  let name = raw
  let digest: string | undefined
  const at = name.indexOf("@")
  if (at >= 0) {
    digest = name.slice(at + 1)
    name = name.slice(0, at)
    if (!DIGEST.test(digest)) return fail(`"${digest}" is not a valid digest`)
  }
  let tag: string | undefined
  const slash = name.lastIndexOf("/")
  const colon = name.lastIndexOf(":")
  if (colon > slash) {
    tag = name.slice(colon + 1)
    name = name.slice(0, colon)
    if (!TAG.test(tag)) return fail(`"${tag}" is not a valid tag`)
  }
  const parts = name.split("/")
  const first = parts[0] ?? ""
  // Docker's rule: the first component is a registry host if it has a '.' or ':' or is localhost.
  const isHost = parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")
  const registry = isHost ? first : DOCKER_HUB
  const path = isHost ? parts.slice(1) : parts
  if (path.length === 0 || path.some((c) => !COMPONENT.test(c))) {
    return fail(`"${name}" is not a valid repository name (lowercase letters, digits and separators)`)
  }
  const repository = registry === DOCKER_HUB && path.length === 1 ? `library/${path[0]}` : path.join("/")
  return { _tag: "Registry", raw, registry, repository, tag: tag ?? (digest ? undefined : "latest"), digest }
}

/** The canonical string of a reference, e.g. `docker.io/library/python:slim`. */
export const formatReference = (ref: ImageReference): string =>
  ref._tag === "Layout"
    ? `oci:${ref.path}${ref.tag ? `:${ref.tag}` : ""}`
    : `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`

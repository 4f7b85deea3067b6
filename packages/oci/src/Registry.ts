/**
 * Pulling from registries (OCI distribution spec / Docker registry HTTP API v2): how each
 * registry is reached (mirrors, plain HTTP, extra CA, credentials), what a pull reports as it
 * goes, and how it fails. The content store (`ContentStore.ts`) does the pulling; this module
 * also resolves a reference to its manifest without downloading layers.
 */
import { Effect } from "effect"
import type { ImageNotFound, InvalidImage } from "./Image.js"
import type { RegistryReference } from "./ImageReference.js"
import type { RegistryAuthError, RegistryError } from "./internal/errors.js"
import { resolveRemoteManifest } from "./internal/registryClient.js"
import type { Platform } from "./Platform.js"

/** Credentials for one registry: a user and password (or access token used as password), or a bearer token. */
export type RegistryAuth =
  | { readonly username: string; readonly password: string }
  | { readonly token: string }

/** How to reach one registry, keyed by its name in references (`docker.io`, `ghcr.io`, `127.0.0.1:5000`). */
export interface RegistryConfig {
  /** Tried in order before the registry itself; each URL carries its scheme (`http://127.0.0.1:5000`). */
  readonly mirrors?: ReadonlyArray<string>
  /** Plain HTTP instead of HTTPS, for this registry only. */
  readonly insecure?: boolean
  /** A PEM CA certificate trusted for this registry, on top of the system's. */
  readonly ca?: string
  /** Overrides credentials from the Docker config file. */
  readonly auth?: RegistryAuth
}

export interface LayerProgress {
  readonly digest: string
  readonly downloadedBytes: number
  readonly totalBytes: number
  /** Already in the content store: nothing to download. */
  readonly cached: boolean
}

export interface PullProgress {
  readonly reference: string
  readonly phase: "resolving" | "downloading" | "done"
  readonly layers: ReadonlyArray<LayerProgress>
  readonly downloadedBytes: number
  readonly totalBytes: number
}

export interface PullOptions {
  /** Per-registry settings, keyed by registry name; mirrors' hosts may have their own entries. */
  readonly registries?: Readonly<Record<string, RegistryConfig>>
  /** Which image of a multi-platform index. Default: the host's (`linux/<arch>`). */
  readonly platform?: Platform
  /** Docker's `config.json` with `auths`. Default: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  readonly dockerConfigPath?: string
  /** Called as the pull advances: after resolving, on every chunk received, and when done. */
  readonly onProgress?: (event: PullProgress) => void
}

export { RegistryAuthError, RegistryError } from "./internal/errors.js"

/** A reference resolved to the manifest of one platform, as a registry (or one of its mirrors) serves it. */
export interface RemoteManifest {
  /** The URL of the registry or mirror that answered. */
  readonly source: string
  readonly manifestDigest: string
  readonly platform: Platform
  readonly configDigest: string
  readonly layers: ReadonlyArray<{ readonly digest: string; readonly size: number; readonly mediaType: string | undefined }>
}

/** Resolves a tag or digest to the manifest for the wanted platform, downloading no layers. */
export const resolveManifest = (
  ref: RegistryReference,
  options: PullOptions = {}
): Effect.Effect<RemoteManifest, ImageNotFound | InvalidImage | RegistryError | RegistryAuthError> =>
  Effect.scoped(
    Effect.map(resolveRemoteManifest(ref, options), ({ session, manifestDigest, platform, manifest }) => ({
      source: session.endpoint.baseUrl,
      manifestDigest,
      platform,
      configDigest: manifest.config.digest,
      layers: manifest.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType }))
    }))
  )

/**
 * The HTTP side of pulls (distribution spec v2) on undici: endpoints (mirrors, then the
 * registry), per-registry TLS and credentials, the 401 challenge dance (Basic and Bearer
 * tokens), retries of 429/5xx, and error mapping to the package's tagged errors.
 */
import { Effect, Result, type Scope } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { Agent, type Dispatcher, interceptors, request } from "undici"
import { ImageNotFound, InvalidImage, MediaType } from "../Image.js"
import { DOCKER_HUB, formatReference, type RegistryReference } from "../ImageReference.js"
import { formatPlatform, hostPlatform, type Platform, platformMatches } from "../Platform.js"
import type { PullOptions, RegistryAuth } from "../Registry.js"
import { RegistryAuthError, RegistryError } from "./errors.js"
import { digestAlgorithm, digestOf, isDigest } from "./digest.js"
import { Index, Manifest, parseJson } from "./json.js"

const DOCKER_HUB_API = "registry-1.docker.io"
const ACCEPT_MANIFESTS = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(", ")
const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.ociIndex, MediaType.dockerManifestList])
const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.ociManifest, MediaType.dockerManifest])
/** Manifests are small; a registry sending more is broken or hostile (containerd uses the same bound). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024
/** Waits before each retry of a 429/5xx: at most ~2 s in all unless the registry asks for longer. */
const RETRY_DELAYS_MS = [250, 500, 1000]
/** The most a `Retry-After` header may stretch one wait. */
const MAX_RETRY_AFTER_MS = 5000

/** One place an image can come from: a mirror, or the registry itself. */
export interface Endpoint {
  /** The registry named in the reference (`docker.io`). */
  readonly registry: string
  /** `https://registry-1.docker.io`, or a mirror's URL; no trailing slash. */
  readonly baseUrl: string
  /** How messages name it. */
  readonly name: string
  /** The key of `PullOptions.registries` its settings come from: the registry's name, or the mirror's host. */
  readonly configKey: string
  readonly dispatcher: Dispatcher
  readonly credentials: Credentials | undefined
}

interface Credentials {
  readonly auth: RegistryAuth
  /** Where they came from, for error messages. */
  readonly source: string
}

/** The endpoints to try in order, each with its own connection pool (closed with the scope). */
const makeEndpoints = (registry: string, options: PullOptions): Effect.Effect<ReadonlyArray<Endpoint>, RegistryError, Scope.Scope> =>
  Effect.gen(function*() {
    const configs = options.registries ?? {}
    const dockerConfig = yield* readDockerAuths(options.dockerConfigPath)
    const endpoint = (baseUrl: string, name: string, configKey: string) => {
      const config = configs[configKey]
      const fromOptions = config?.auth
      const fromDockerConfig = dockerConfig.auths.get(canonicalHost(configKey))
      const credentials = fromOptions !== undefined
        ? { auth: fromOptions, source: `options.registries["${configKey}"].auth` }
        : fromDockerConfig !== undefined ? { auth: fromDockerConfig, source: dockerConfig.path } : undefined
      return Effect.acquireRelease(
        Effect.sync(() => {
          // `ca` replaces Node's trust store, so the system roots go along with the extra CA.
          const agent = new Agent({ connect: { timeout: 10_000, ...(config?.ca !== undefined ? { ca: [...tls.rootCertificates, config.ca] } : {}) }, headersTimeout: 60_000, bodyTimeout: 60_000 })
          return { agent, endpoint: { registry, baseUrl, name, configKey, dispatcher: agent.compose(interceptors.redirect({ maxRedirections: 5 })), credentials } satisfies Endpoint }
        }),
        ({ agent }) => Effect.promise(() => agent.close())
      ).pipe(Effect.map(({ endpoint }) => endpoint))
    }
    const endpoints: Array<Endpoint> = []
    for (const mirror of configs[registry]?.mirrors ?? []) {
      const url = mirror.includes("://") ? mirror : `https://${mirror}`
      if (!URL.canParse(url)) return yield* new RegistryError({ registry, status: undefined, message: `mirror "${mirror}" of ${registry} is not a valid URL` })
      endpoints.push(yield* endpoint(url.replace(/\/+$/, ""), `mirror ${url} of ${registry}`, new URL(url).host))
    }
    const host = registry === DOCKER_HUB ? DOCKER_HUB_API : registry
    const scheme = configs[registry]?.insecure ? "http" : "https"
    endpoints.push(yield* endpoint(`${scheme}://${host}`, `registry ${registry}`, registry))
    return endpoints
  })

/** Docker Hub goes by several names in config files. */
const canonicalHost = (host: string): string =>
  host === "index.docker.io" || host === DOCKER_HUB_API ? DOCKER_HUB : host

/** `auths` of Docker's config.json, by canonical host. A missing or unreadable file gives none. */
const readDockerAuths = (configPath: string | undefined) =>
  Effect.promise(async () => {
    const file = configPath ?? path.join(process.env["DOCKER_CONFIG"] ?? path.join(os.homedir(), ".docker"), "config.json")
    const auths = new Map<string, RegistryAuth>()
    let json: { auths?: Record<string, { auth?: string; username?: string; password?: string; registrytoken?: string }> }
    try {
      json = JSON.parse(await fs.readFile(file, "utf8"))
    } catch {
      return { path: file, auths }
    }
    for (const [key, entry] of Object.entries(json.auths ?? {})) {
      // Keys are hosts or URLs (`https://index.docker.io/v1/`).
      const host = canonicalHost(key.replace(/^[a-z]+:\/\//, "").split("/")[0] ?? key)
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, "base64").toString("utf8")
        const colon = decoded.indexOf(":")
        if (colon > 0) auths.set(host, { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) })
      } else if (entry.username !== undefined && entry.password !== undefined) {
        auths.set(host, { username: entry.username, password: entry.password })
      } else if (entry.registrytoken) {
        auths.set(host, { token: entry.registrytoken })
      }
    }
    return { path: file, auths }
  })

type ResponseData = Dispatcher.ResponseData

export type RegistryFailure = RegistryError | RegistryAuthError | ImageNotFound

/** Requests to one repository on one endpoint, keeping the authorization it earned. */
export class RegistrySession {
  private authorization: string | undefined
  /** A bearer token from the options is sent as is: there is nothing to renew it with. */
  private readonly hasFixedToken: boolean

  constructor(readonly endpoint: Endpoint, readonly ref: RegistryReference) {
    const auth = endpoint.credentials?.auth
    this.hasFixedToken = auth !== undefined && "token" in auth
    this.authorization = auth !== undefined && "token" in auth ? `Bearer ${auth.token}` : undefined
  }

  /** GET `/v2/<repository>/<path>`; a 2xx response whose body the caller must consume. */
  get(resource: string, accept: string | undefined): Effect.Effect<ResponseData, RegistryFailure> {
    const url = `${this.endpoint.baseUrl}/v2/${this.ref.repository}/${resource}`
    const session = this
    return Effect.gen(function*() {
      let authenticated = false
      while (true) {
        const response = yield* session.sendWithRetries(url, accept)
        // Once per request: a 401 after answering the challenge means the answer was refused.
        if (response.statusCode === 401 && !authenticated && !session.hasFixedToken) {
          const challenge = headerValue(response.headers["www-authenticate"])
          yield* Effect.promise(() => response.body.dump())
          session.authorization = yield* session.authenticate(challenge, response.statusCode)
          authenticated = true
          continue
        }
        return yield* session.check(response, resource)
      }
    })
  }

  private send(url: string, headers: Record<string, string>): Effect.Effect<ResponseData, RegistryError> {
    return Effect.tryPromise({
      try: (signal) => request(url, { dispatcher: this.endpoint.dispatcher, headers, signal }),
      catch: (e) => new RegistryError({ registry: this.endpoint.registry, status: undefined, message: `${this.endpoint.name} is unreachable at ${new URL(url).origin}: ${describeNetworkError(e)}` })
    })
  }

  /** Sends, retrying 429 and 5xx with exponential backoff; the last response is returned either way. */
  private sendWithRetries(url: string, accept: string | undefined): Effect.Effect<ResponseData, RegistryError> {
    const session = this
    return Effect.gen(function*() {
      for (let attempt = 0; ; attempt++) {
        const headers: Record<string, string> = { "user-agent": "boxlite" }
        if (accept !== undefined) headers["accept"] = accept
        if (session.authorization !== undefined) headers["authorization"] = session.authorization
        const response = yield* session.send(url, headers)
        const delay = RETRY_DELAYS_MS[attempt]
        if (!isRetryable(response.statusCode) || delay === undefined) return response
        const retryAfterSeconds = Number(headerValue(response.headers["retry-after"]))
        yield* Effect.promise(() => response.body.dump())
        yield* Effect.sleep(Number.isFinite(retryAfterSeconds) ? Math.max(delay, Math.min(retryAfterSeconds * 1000, MAX_RETRY_AFTER_MS)) : delay)
      }
    })
  }

  /** Answers a 401 challenge: the Authorization header to retry with. */
  private authenticate(challengeHeader: string | undefined, status: number): Effect.Effect<string, RegistryError | RegistryAuthError> {
    const { endpoint, ref } = this
    const refused = (message: string) => new RegistryAuthError({ registry: endpoint.registry, status, message: `${endpoint.name} refused access to ${ref.repository}: ${message}` })
    const challenge = challengeHeader !== undefined ? parseChallenge(challengeHeader) : undefined
    const auth = endpoint.credentials?.auth
    const basic = auth !== undefined && "username" in auth ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}` : undefined
    if (challenge?.scheme === "basic") {
      return basic !== undefined ? Effect.succeed(basic) : Effect.fail(refused(`it requires credentials ${this.credentialsHint()}`))
    }
    if (challenge?.scheme !== "bearer" || challenge.params["realm"] === undefined) {
      return Effect.fail(refused(`it answered 401 with no usable challenge (${challengeHeader ?? "no WWW-Authenticate header"})`))
    }
    const tokenUrl = new URL(challenge.params["realm"])
    if (challenge.params["service"] !== undefined) tokenUrl.searchParams.set("service", challenge.params["service"])
    tokenUrl.searchParams.set("scope", challenge.params["scope"] ?? `repository:${ref.repository}:pull`)
    const session = this
    return Effect.gen(function*() {
      const response = yield* session.send(tokenUrl.href, basic !== undefined ? { authorization: basic } : {})
      const body = yield* Effect.promise(() => response.body.text().catch(() => ""))
      if (response.statusCode === 401 || response.statusCode === 403) {
        return yield* new RegistryAuthError({ registry: endpoint.registry, status: response.statusCode, message: `the token service of ${endpoint.name} (${tokenUrl.origin}) refused ${basic !== undefined ? `the credentials from ${endpoint.credentials?.source}` : "an anonymous token"}: ${registryMessage(body)}` })
      }
      let token: unknown
      try {
        const json = JSON.parse(body) as { token?: unknown; access_token?: unknown }
        token = json.token ?? json.access_token
      } catch { /* reported below */ }
      if (response.statusCode >= 300 || typeof token !== "string") {
        return yield* new RegistryError({ registry: endpoint.registry, status: response.statusCode, message: `the token service of ${endpoint.name} (${tokenUrl.origin}) answered ${response.statusCode} without a token: ${registryMessage(body)}` })
      }
      return `Bearer ${token}`
    })
  }

  private check(response: ResponseData, resource: string): Effect.Effect<ResponseData, RegistryFailure> {
    const { endpoint, ref } = this
    const status = response.statusCode
    if (status >= 200 && status < 300) return Effect.succeed(response)
    const session = this
    return Effect.gen(function*() {
      const body = yield* Effect.promise(() => response.body.text().catch(() => ""))
      const message = registryMessage(body)
      if (status === 404 || /"code"\s*:\s*"(MANIFEST_UNKNOWN|NAME_UNKNOWN|BLOB_UNKNOWN)"/.test(body)) {
        return yield* new ImageNotFound({ reference: ref.raw, message: `${formatReference(ref)} was not found on ${endpoint.name} (${resource}: ${message})` })
      }
      if (status === 401 || status === 403) {
        return yield* new RegistryAuthError({ registry: endpoint.registry, status, message: `${endpoint.name} refused access to ${ref.repository} (${status}): ${message} ${session.credentialsHint()}` })
      }
      const retried = isRetryable(status) ? ` after ${RETRY_DELAYS_MS.length + 1} attempts` : ""
      return yield* new RegistryError({ registry: endpoint.registry, status, message: `${endpoint.name} answered ${status}${retried} for ${resource}: ${message}` })
    })
  }

  private credentialsHint(): string {
    const source = this.endpoint.credentials?.source
    return source !== undefined
      ? `(using the credentials from ${source})`
      : `(none were given: set registries["${this.endpoint.configKey}"].auth, or log in with docker)`
  }
}

const isRetryable = (status: number) => status === 429 || status >= 500

const headerValue = (value: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof value === "string" ? value : value?.[0]

/** `Bearer realm="https://auth",service="registry",scope="repository:x:pull"` */
const parseChallenge = (header: string) => {
  const space = header.indexOf(" ")
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase()
  const params: Record<string, string> = {}
  for (const [, key, quoted, bare] of header.slice(space + 1).matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) {
    if (key !== undefined) params[key.toLowerCase()] = quoted ?? bare ?? ""
  }
  return { scheme, params }
}

/** The registry's own words: `errors[].message` of distribution's JSON errors, else the body. */
const registryMessage = (body: string): string => {
  try {
    const json = JSON.parse(body) as { errors?: Array<{ code?: string; message?: string }>; details?: string }
    const messages = (json.errors ?? []).map((e) => e.message ?? e.code).filter((m): m is string => typeof m === "string")
    if (messages.length > 0) return messages.join("; ")
    if (typeof json.details === "string") return json.details
  } catch { /* not JSON */ }
  const text = body.trim().slice(0, 200)
  return text.length > 0 ? text : "no details"
}

const TLS_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT", "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID", "ERR_TLS_CERT_ALTNAME_INVALID", "CERT_UNTRUSTED"
])

/** Why a connection failed, in words, with the error code (found on the error or its causes). */
const describeNetworkError = (error: unknown): string => {
  const chain: Array<{ code?: unknown; message?: unknown }> = []
  const visit = (e: unknown) => {
    if (typeof e !== "object" || e === null || chain.length > 10) return
    chain.push(e as { code?: unknown })
    if (e instanceof AggregateError) e.errors.forEach(visit)
    visit((e as { cause?: unknown }).cause)
  }
  visit(error)
  const coded = chain.find((e) => typeof e.code === "string" && !String(e.code).startsWith("UND_ERR_SOCKET")) ?? chain[0]
  const code = typeof coded?.code === "string" ? coded.code : undefined
  // OpenSSL appends lines of internals; the first says what went wrong.
  const detail = `${code ?? "error"}: ${String(coded?.message ?? error).split("\n")[0]}`
  if (code !== undefined && TLS_CODES.has(code)) return `TLS certificate not accepted (${detail}); give the registry's CA as \`ca\`, or \`insecure\` for plain HTTP`
  if (code === "ECONNREFUSED") return `connection refused (${detail})`
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `host name not resolved (${detail})`
  if (code === "UND_ERR_CONNECT_TIMEOUT" || code === "ETIMEDOUT") return `connection timed out (${detail})`
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "EPROTO") return `TLS handshake failed (${detail}); is it plain HTTP (\`insecure\`)?`
  return detail
}

/** Reads a 2xx body whole, refusing more than `limit` bytes. */
const readBounded = (response: ResponseData, limit: number, what: () => InvalidImage): Effect.Effect<Buffer, InvalidImage> =>
  Effect.tryPromise({
    try: async () => {
      const chunks: Array<Buffer> = []
      let total = 0
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        total += chunk.length
        if (total > limit) throw what()
        chunks.push(chunk)
      }
      return Buffer.concat(chunks)
    },
    catch: (e) => (e instanceof InvalidImage ? e : what())
  }).pipe(Effect.onError(() => Effect.sync(() => response.body.destroy())))

interface FetchedManifest {
  readonly digest: string
  readonly mediaType: string
  readonly bytes: Buffer
}

/** A manifest or index by tag or digest; by digest its bytes are checked against it. */
const fetchManifest = (session: RegistrySession, tagOrDigest: string): Effect.Effect<FetchedManifest, RegistryFailure | InvalidImage> =>
  Effect.gen(function*() {
    const { ref } = session
    const response = yield* session.get(`manifests/${tagOrDigest}`, ACCEPT_MANIFESTS)
    const bytes = yield* readBounded(response, MAX_MANIFEST_BYTES, () =>
      new InvalidImage({ reference: ref.raw, message: `manifest ${tagOrDigest} from ${session.endpoint.name} is larger than ${MAX_MANIFEST_BYTES} bytes or was cut off` }))
    const requestedDigest = isDigest(tagOrDigest) ? tagOrDigest : undefined
    const digest = digestOf(bytes, requestedDigest !== undefined ? digestAlgorithm(requestedDigest) : "sha256")
    if (requestedDigest !== undefined && digest !== requestedDigest) {
      return yield* new InvalidImage({ reference: ref.raw, message: `manifest ${requestedDigest} from ${session.endpoint.name} is corrupt (its content hashes to ${digest})` })
    }
    const headerType = headerValue(response.headers["content-type"])?.split(";")[0]?.trim()
    let bodyType: unknown
    try {
      bodyType = (JSON.parse(bytes.toString("utf8")) as { mediaType?: unknown }).mediaType
    } catch { /* parsed properly below */ }
    // Registries label manifests by the document's own mediaType when it has one.
    const mediaType = typeof bodyType === "string" ? bodyType : headerType ?? ""
    return { digest, mediaType, bytes }
  })

export interface ResolvedRemote {
  readonly session: RegistrySession
  readonly manifestDigest: string
  /** The manifest's own bytes, to be stored as a blob. */
  readonly manifestBytes: Buffer
  readonly manifest: Manifest
  readonly platform: Platform
  /** The platform was chosen from an index (so the index, not the config, vouches for it). */
  readonly fromIndex: boolean
}

/** Finds the reference's manifest for the wanted platform, trying mirrors first. */
export const resolveRemoteManifest = (
  ref: RegistryReference,
  options: PullOptions
): Effect.Effect<ResolvedRemote, RegistryFailure | InvalidImage, Scope.Scope> =>
  Effect.gen(function*() {
    const endpoints = yield* makeEndpoints(ref.registry, options)
    const mirrorFailures: Array<string> = []
    for (const endpoint of endpoints) {
      const result = yield* Effect.result(resolveFrom(new RegistrySession(endpoint, ref), options.platform ?? hostPlatform()))
      if (Result.isSuccess(result)) return result.success
      const error = result.failure
      if (endpoint === endpoints[endpoints.length - 1]) {
        if (mirrorFailures.length === 0) return yield* Effect.fail(error)
        return yield* Effect.fail(withMessage(error, `${error.message} (mirrors failed first: ${mirrorFailures.join("; ")})`))
      }
      // A mirror that fails, whatever the reason, falls through to the next one, as Docker does.
      mirrorFailures.push(`${endpoint.baseUrl}: ${error.message}`)
    }
    return yield* Effect.die(new Error("there is always at least the registry itself to try"))
  })

const withMessage = <E extends RegistryFailure | InvalidImage>(error: E, message: string): E => {
  switch (error._tag) {
    case "RegistryError": return new RegistryError({ registry: error.registry, status: error.status, message }) as E
    case "RegistryAuthError": return new RegistryAuthError({ registry: error.registry, status: error.status, message }) as E
    case "ImageNotFound": return new ImageNotFound({ reference: error.reference, message }) as E
    case "InvalidImage": return new InvalidImage({ reference: error.reference, message }) as E
  }
}

const resolveFrom = (session: RegistrySession, wanted: Platform): Effect.Effect<ResolvedRemote, RegistryFailure | InvalidImage> =>
  Effect.gen(function*() {
    const { ref } = session
    const invalid = (message: string) => new InvalidImage({ reference: ref.raw, message })
    if (ref.digest !== undefined && !isDigest(ref.digest)) return yield* invalid(`digest ${ref.digest} is not supported (sha256 and sha512 are)`)
    const top = yield* fetchManifest(session, ref.digest ?? ref.tag ?? "latest")
    let fetched = top
    let platform = wanted
    const fromIndex = INDEX_TYPES.has(top.mediaType)
    if (fromIndex) {
      const index = yield* parseJson(Index, top.bytes.toString("utf8"), `index ${top.digest}`, invalid)
      const match = index.manifests.find((m) => platformMatches(m.platform, wanted))
      if (match === undefined || match.platform === undefined) {
        const offered = index.manifests.flatMap((m) => (m.platform && m.platform.os !== "unknown" ? [formatPlatform(m.platform)] : [])).join(", ")
        return yield* new ImageNotFound({ reference: ref.raw, message: `${formatReference(ref)} has no image for ${formatPlatform(wanted)} (it has: ${offered || "no platforms"})` })
      }
      if (!isDigest(match.digest)) return yield* invalid(`index ${top.digest} names a manifest by an invalid digest "${match.digest}"`)
      platform = match.platform
      fetched = yield* fetchManifest(session, match.digest)
    }
    if (!MANIFEST_TYPES.has(fetched.mediaType)) {
      return yield* invalid(`${formatReference(ref)} is a ${fetched.mediaType || "document of unknown type"}, not an image manifest or index`)
    }
    const manifest = yield* parseJson(Manifest, fetched.bytes.toString("utf8"), `manifest ${fetched.digest}`, invalid)
    for (const descriptor of [manifest.config, ...manifest.layers]) {
      if (!isDigest(descriptor.digest)) return yield* invalid(`manifest ${fetched.digest} has an invalid digest "${descriptor.digest}"`)
    }
    return { session, manifestDigest: fetched.digest, manifestBytes: fetched.bytes, manifest, platform, fromIndex }
  })

/** Opens a blob for streaming; the caller consumes or destroys the body. */
export const openBlob = (session: RegistrySession, digest: string): Effect.Effect<ResponseData, RegistryFailure> =>
  session.get(`blobs/${digest}`, undefined)

/** Reads a small blob (an image config) whole and checks it against its digest. */
export const fetchSmallBlob = (session: RegistrySession, digest: string): Effect.Effect<Buffer, RegistryFailure | InvalidImage> =>
  Effect.gen(function*() {
    const invalid = (message: string) => new InvalidImage({ reference: session.ref.raw, message })
    const response = yield* openBlob(session, digest)
    const bytes = yield* readBounded(response, MAX_MANIFEST_BYTES, () => invalid(`blob ${digest} from ${session.endpoint.name} is larger than ${MAX_MANIFEST_BYTES} bytes or was cut off`))
    const actual = digestOf(bytes, digestAlgorithm(digest))
    if (actual !== digest) return yield* invalid(`blob ${digest} from ${session.endpoint.name} is corrupt (its content hashes to ${actual})`)
    return bytes
  })

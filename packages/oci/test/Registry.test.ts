import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { hostPlatform, make, parseReference, type Platform, type RegistryReference, resolveManifest } from "../src/index.js"
import {
  busyboxManifest, busyboxManifestDigest, freePort, type RegistryFixture, removeTempDirs, sha256, startHttpServer, startProxy, startRegistry,
  startTokenServer, tempDir
} from "./registry-fixture.js"

const fixtures: Array<{ stop?: () => Promise<void>; close?: () => Promise<void> }> = []
const started = <T extends { stop?: () => Promise<void>; close?: () => Promise<void> }>(fixture: T): T => {
  fixtures.push(fixture)
  return fixture
}
afterAll(async () => {
  await Promise.all(fixtures.map((f) => (f.stop ?? f.close)?.()))
  removeTempDirs()
})

const pull = (reference: string, options: Parameters<ReturnType<typeof make>["pull"]>[1] = {}) =>
  make(tempDir("store-")).pull(reference, options)
const pullError = async (reference: string, options: Parameters<ReturnType<typeof make>["pull"]>[1] = {}) =>
  Effect.runPromise(Effect.flip(pull(reference, options)))

describe("anonymous registry over plain HTTP", () => {
  let registry: RegistryFixture
  beforeAll(async () => {
    registry = started(await startRegistry())
    await registry.pushBusybox("busybox:latest")
  }, 30_000)
  const insecure = () => ({ registries: { [registry.host]: { insecure: true } } })

  it("names a missing tag or repository", async () => {
    expect(String(await pullError(`${registry.host}/busybox:nope`, insecure()))).toMatch(/ImageNotFound.*busybox:nope was not found on registry 127\.0\.0\.1.*manifest unknown/s)
    expect(String(await pullError(`${registry.host}/nothing/here:1`, insecure()))).toMatch(/ImageNotFound.*nothing\/here:1/s)
  })

  it("refuses a tampered layer and stores nothing under its digest", async () => {
    const own = started(await startRegistry())
    await own.pushBusybox("busybox:latest")
    const layerDigest = busyboxManifest().layers[0]!.digest
    const data = fs.readFileSync(own.blobDataPath(layerDigest))
    data[data.length >> 1] ^= 0xff
    fs.writeFileSync(own.blobDataPath(layerDigest), data)
    const dir = tempDir("store-")
    const error = await Effect.runPromise(Effect.flip(make(dir).pull(`${own.host}/busybox:latest`, { registries: { [own.host]: { insecure: true } } })))
    expect(error._tag).toBe("InvalidImage")
    expect(error.message).toContain(`blob ${layerDigest} is corrupt`)
    expect(fs.readdirSync(path.join(dir, "blobs/sha256"))).toEqual([])
    expect(fs.existsSync(path.join(dir, "refs"))).toBe(false)
  })

  it("fails fast with RegistryError when nothing listens", async () => {
    const port = await freePort()
    const begin = Date.now()
    const error = await pullError(`127.0.0.1:${port}/busybox:latest`, { registries: { [`127.0.0.1:${port}`]: { insecure: true } } })
    expect(Date.now() - begin).toBeLessThan(2000)
    expect(error._tag).toBe("RegistryError")
    expect(error.message).toMatch(/registry 127\.0\.0\.1:\d+ is unreachable at http:\/\/127\.0\.0\.1:\d+: connection refused/)
  })

  it("retries 503 and 429 with backoff, then gives up with the status", async () => {
    let failuresLeft = 2
    const flaky = started(await startProxy(registry.url, (req, res) => {
      if (!req.url?.includes("/manifests/") || failuresLeft === 0) return false
      failuresLeft--
      res.writeHead(failuresLeft === 1 ? 503 : 429, { "content-type": "application/json" })
      res.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "try later" }] }))
      return true
    }))
    const image = await Effect.runPromise(pull(`${flaky.host}/busybox:latest`, { registries: { [flaky.host]: { insecure: true } } }))
    expect(image.manifestDigest).toBe(busyboxManifestDigest())
    expect(failuresLeft).toBe(0)

    let attempts = 0
    const down = started(await startHttpServer((_req, res) => {
      attempts++
      res.writeHead(503).end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "maintenance" }] }))
    }))
    const begin = Date.now()
    const error = await pullError(`${down.host}/busybox:latest`, { registries: { [down.host]: { insecure: true } } })
    expect(Date.now() - begin).toBeLessThan(5000)
    expect(attempts).toBe(4)
    expect(error).toMatchObject({ _tag: "RegistryError", status: 503 })
    expect(error.message).toMatch(/answered 503 after 4 attempts.*maintenance/)
  })

  it("follows blob redirects to another origin, as registries backed by object storage send", async () => {
    const redirecting = started(await startProxy(registry.url, (req, res) => {
      if (!req.url?.includes("/blobs/")) return false
      res.writeHead(307, { location: `${registry.url}${req.url}` }).end()
      return true
    }))
    const image = await Effect.runPromise(pull(`${redirecting.host}/busybox:latest`, { registries: { [redirecting.host]: { insecure: true } } }))
    expect(image.configDigest).toBe(busyboxManifest().config.digest)
  })

  it("reports a layer download that breaks off as a RegistryError, storing nothing", async () => {
    const layer = busyboxManifest().layers[0]!
    const cutting = started(await startProxy(registry.url, (req, res) => {
      if (!req.url?.endsWith(layer.digest)) return false
      res.writeHead(200, { "content-length": String(layer.size), "content-type": "application/octet-stream" })
      res.write(Buffer.alloc(1000))
      setTimeout(() => res.destroy(), 20)
      return true
    }))
    const dir = tempDir("store-")
    const error = await Effect.runPromise(Effect.flip(make(dir).pull(`${cutting.host}/busybox:latest`, { registries: { [cutting.host]: { insecure: true } } })))
    expect(error._tag).toBe("RegistryError")
    expect(error.message).toContain(`the download of ${layer.digest} from registry ${cutting.host} broke off`)
    expect(fs.readdirSync(path.join(dir, "blobs/sha256"))).toEqual([])
  })

  it("resolves a manifest without downloading layers", async () => {
    const remote = await Effect.runPromise(resolveManifest(parseReference(`${registry.host}/busybox:latest`) as RegistryReference, insecure()))
    expect(remote).toMatchObject({ source: registry.url, manifestDigest: busyboxManifestDigest(), configDigest: busyboxManifest().config.digest })
  })
})

describe("multi-platform index", () => {
  let registry: RegistryFixture
  const other: Platform = { os: "linux", architecture: hostPlatform().architecture === "arm64" ? "amd64" : "arm64" }
  let otherDigest: string

  beforeAll(async () => {
    registry = started(await startRegistry())
    await registry.pushBusybox("multi:single")
    const put = async (reference: string, mediaType: string, body: string) => {
      const response = await fetch(`${registry.url}/v2/multi/manifests/${reference}`, { method: "PUT", headers: { "content-type": mediaType }, body })
      expect(response.status).toBe(201)
    }
    // Another manifest over the same blobs: a stand-in for the other platform's image.
    const otherManifest = JSON.stringify({ ...busyboxManifest(), schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", annotations: { "test.platform": "other" } })
    otherDigest = sha256(otherManifest)
    await put(otherDigest, "application/vnd.oci.image.manifest.v1+json", otherManifest)
    const manifestSize = (digest: string) => digest === otherDigest ? Buffer.byteLength(otherManifest) : 349
    await put("latest", "application/vnd.oci.image.index.v1+json", JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: busyboxManifestDigest(), size: manifestSize(busyboxManifestDigest()), platform: hostPlatform() },
        { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: otherDigest, size: manifestSize(otherDigest), platform: other }
      ]
    }))
  }, 30_000)
  const insecure = () => ({ registries: { [registry.host]: { insecure: true } } })

  it("selects the host platform, or the one asked for", async () => {
    expect((await Effect.runPromise(pull(`${registry.host}/multi:latest`, insecure()))).manifestDigest).toBe(busyboxManifestDigest())
    const image = await Effect.runPromise(pull(`${registry.host}/multi:latest`, { ...insecure(), platform: other }))
    expect(image).toMatchObject({ manifestDigest: otherDigest, architecture: other.architecture })
  })

  it("names the platforms there are when the wanted one is absent", async () => {
    const error = await pullError(`${registry.host}/multi:latest`, { ...insecure(), platform: { os: "linux", architecture: "s390x" } })
    expect(error._tag).toBe("ImageNotFound")
    expect(error.message).toContain(`has no image for linux/s390x (it has: linux/${hostPlatform().architecture}, linux/${other.architecture})`)
  })

  it("refuses a single-platform image built for another platform", async () => {
    const error = await pullError(`${registry.host}/multi:single`, { ...insecure(), platform: { os: "linux", architecture: "s390x" } })
    expect(error.message).toMatch(/only built for linux\/\w+, not linux\/s390x/)
  })
})

describe("credentials", () => {
  let registry: RegistryFixture
  beforeAll(async () => {
    registry = started(await startRegistry({ htpasswd: { username: "alice", password: "s3cret" } }))
    await registry.pushBusybox("private/busybox:1")
  }, 30_000)
  const ref = () => `${registry.host}/private/busybox:1`
  const config = (auth?: { username: string; password: string }) =>
    ({ registries: { [registry.host]: { insecure: true, ...(auth ? { auth } : {}) } }, dockerConfigPath: "/nonexistent/config.json" })

  it("pulls with a good password", async () => {
    expect((await Effect.runPromise(pull(ref(), config({ username: "alice", password: "s3cret" })))).manifestDigest).toBe(busyboxManifestDigest())
  })

  it("fails with RegistryAuthError naming the registry and its message", async () => {
    const bad = await pullError(ref(), config({ username: "alice", password: "wrong" }))
    expect(bad._tag).toBe("RegistryAuthError")
    expect(bad.message).toContain(`registry ${registry.host} refused access to private/busybox (401): authentication required`)
    expect(bad.message).toContain(`options.registries["${registry.host}"].auth`)
    const none = await pullError(ref(), config())
    expect(none).toMatchObject({ _tag: "RegistryAuthError", registry: registry.host })
    expect(none.message).toMatch(/requires credentials \(none were given: set registries\["127\.0\.0\.1:\d+"\]\.auth/)
  })

  it("reads credentials from a Docker config.json", async () => {
    const dockerConfigPath = path.join(tempDir("docker-"), "config.json")
    fs.writeFileSync(dockerConfigPath, JSON.stringify({ auths: { [`https://${registry.host}/v1/`]: { auth: Buffer.from("alice:s3cret").toString("base64") } } }))
    const image = await Effect.runPromise(pull(ref(), { ...config(), dockerConfigPath }))
    expect(image.manifestDigest).toBe(busyboxManifestDigest())
  })
})

describe("anonymous bearer tokens (docker-registry with token auth)", () => {
  let registry: RegistryFixture
  let tokens: Awaited<ReturnType<typeof startTokenServer>>
  beforeAll(async () => {
    tokens = started(await startTokenServer(tempDir("token-")))
    registry = started(await startRegistry({ token: tokens.signer }))
    await registry.pushBusybox("library/busybox:latest")
  }, 30_000)

  it("gets a pull token from the realm and retries with it", async () => {
    tokens.requests.length = 0
    const image = await Effect.runPromise(pull(`${registry.host}/library/busybox:latest`, { registries: { [registry.host]: { insecure: true } }, dockerConfigPath: "/nonexistent" }))
    expect(image.manifestDigest).toBe(busyboxManifestDigest())
    // One token for the whole pull: the session keeps it for the blobs.
    expect(tokens.requests).toEqual([{ scope: "repository:library/busybox:pull", service: "test-registry", authorization: undefined }])
  })

  it("sends Basic credentials to the token service when it has them", async () => {
    tokens.requests.length = 0
    await Effect.runPromise(pull(`${registry.host}/library/busybox:latest`, { registries: { [registry.host]: { insecure: true, auth: { username: "bob", password: "pw" } } } }))
    expect(tokens.requests[0]?.authorization).toBe(`Basic ${Buffer.from("bob:pw").toString("base64")}`)
  })

  it("uses a given bearer token as is", async () => {
    const error = await pullError(`${registry.host}/library/busybox:latest`, { registries: { [registry.host]: { insecure: true, auth: { token: "not-a-jwt" } } } })
    expect(error._tag).toBe("RegistryAuthError")
    expect(error.message).toMatch(/refused access to library\/busybox \(401\)/)
  })
})

describe("TLS with a private CA", () => {
  let registry: RegistryFixture
  beforeAll(async () => {
    registry = started(await startRegistry({ tls: true }))
    await registry.pushBusybox("busybox:latest")
  }, 30_000)

  it("works with the CA given for that registry", async () => {
    const image = await Effect.runPromise(pull(`${registry.host}/busybox:latest`, { registries: { [registry.host]: { ca: registry.caPem! } } }))
    expect(image.manifestDigest).toBe(busyboxManifestDigest())
  })

  it("fails with a clear TLS error without it", async () => {
    const error = await pullError(`${registry.host}/busybox:latest`)
    expect(error._tag).toBe("RegistryError")
    expect(error.message).toMatch(/unreachable at https:\/\/127\.0\.0\.1:\d+: TLS certificate not accepted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)/)
    expect(error.message).toContain("`ca`")
  })
})

describe("mirrors", () => {
  let registry: RegistryFixture
  beforeAll(async () => {
    registry = started(await startRegistry())
    await registry.pushBusybox("library/busybox:latest")
  }, 30_000)

  it("pulls docker.io images through a mirror, past a dead one and one without the image", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    const empty = started(await startHttpServer((_req, res) => { res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "NAME_UNKNOWN", message: "repository name not known to registry" }] })) }))
    const store = make(tempDir("store-"))
    const image = await Effect.runPromise(store.pull("busybox:latest", { registries: { "docker.io": { mirrors: [dead, empty.url, registry.url] } } }))
    expect(image).toMatchObject({ reference: "busybox:latest", manifestDigest: busyboxManifestDigest() })
    expect((await Effect.runPromise(store.list)).map((i) => i.reference)).toEqual(["docker.io/library/busybox:latest"])
  })

  it("reports what the mirrors said when the registry fails too", async () => {
    const port = await freePort()
    const dead = `http://127.0.0.1:${await freePort()}`
    const error = await pullError(`127.0.0.1:${port}/busybox:latest`, { registries: { [`127.0.0.1:${port}`]: { insecure: true, mirrors: [dead] } } })
    expect(error._tag).toBe("RegistryError")
    expect(error.message).toMatch(/registry 127\.0\.0\.1:\d+ is unreachable.*\(mirrors failed first: http:\/\/127\.0\.0\.1:\d+: mirror http:\/\/127\.0\.0\.1:\d+ of 127\.0\.0\.1:\d+ is unreachable/)
  })
})

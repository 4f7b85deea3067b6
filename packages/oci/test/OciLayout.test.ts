import { describe, expect, it } from "vitest"
import { Effect, Exit } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseReference, resolveLayout, type LayoutReference } from "../src/index.js"

const sha = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`

/** Writes a small but complete layout: one gzip "layer" (content irrelevant here), a config, a manifest. */
const makeLayout = (opts: { tag?: string; index?: boolean } = {}) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "layout-"))
  fs.mkdirSync(path.join(dir, "blobs/sha256"), { recursive: true })
  const put = (b: Buffer | string) => {
    const d = sha(b)
    fs.writeFileSync(path.join(dir, "blobs/sha256", d.slice(7)), b)
    return { digest: d, size: Buffer.byteLength(b) }
  }
  const layer = put(Buffer.from("not really gzip"))
  const config = put(JSON.stringify({ architecture: "amd64", os: "linux", config: { Env: ["PATH=/bin", "A=b=c"], Cmd: ["sh"], WorkingDir: "/root" } }))
  const manifest = put(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }]
  }))
  let top = { mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest }
  if (opts.index) {
    const idx = put(JSON.stringify({ schemaVersion: 2, manifests: [
      { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha("x"), size: 1, platform: { os: "linux", architecture: "s390x" } },
      { ...top, platform: { os: "linux", architecture: "amd64" } }
    ] }))
    top = { mediaType: "application/vnd.oci.image.index.v1+json", ...idx }
  }
  fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }))
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...top, annotations: { "org.opencontainers.image.ref.name": opts.tag ?? "latest" } }] }))
  return { dir, manifest, config, layer }
}

const resolve = (raw: string) => Effect.runPromiseExit(resolveLayout(parseReference(raw) as LayoutReference, { os: "linux", architecture: "amd64" }))

describe("resolveLayout", () => {
  it("reads config and layers by tag", async () => {
    const { dir, config, layer } = makeLayout({ tag: "slim" })
    const exit = await resolve(`oci:${dir}:slim`)
    expect(Exit.isSuccess(exit)).toBe(true)
    if (!Exit.isSuccess(exit)) return
    expect(exit.value.configDigest).toBe(config.digest)
    expect(exit.value.config).toEqual({ env: [["PATH", "/bin"], ["A", "b=c"]], entrypoint: [], cmd: ["sh"], workingDir: "/root", user: undefined })
    expect(exit.value.layers).toEqual([expect.objectContaining({ digest: layer.digest, compression: "gzip" })])
  })

  it("picks the host platform from an index", async () => {
    const { dir, manifest } = makeLayout({ index: true })
    const exit = await resolve(`oci:${dir}`)
    expect(Exit.isSuccess(exit) && exit.value.manifestDigest).toBe(manifest.digest)
  })

  it("names the missing directory, the missing tag and the corrupt blob", async () => {
    const missing = await resolve("oci:/nonexistent/layout")
    expect(String(missing)).toMatch(/ImageNotFound.*no OCI image layout directory at \/nonexistent\/layout/s)

    const { dir, manifest } = makeLayout({ tag: "latest" })
    expect(String(await resolve(`oci:${dir}:nope`))).toMatch(/no image tagged "nope".*it has: latest/s)

    fs.writeFileSync(path.join(dir, "blobs/sha256", manifest.digest.slice(7)), "{}")
    expect(String(await resolve(`oci:${dir}`))).toMatch(/InvalidImage.*manifest blob .* is corrupt/s)

    const notLayout = fs.mkdtempSync(path.join(os.tmpdir(), "plain-"))
    expect(String(await resolve(`oci:${notLayout}`))).toMatch(/InvalidImage.*no oci-layout file/s)
  })
})

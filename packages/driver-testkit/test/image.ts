/**
 * A tiny OCI image layout made by the test: one layer holding /etc/hello. The fake runs nothing
 * from it, but the runtime builds its ext4 base and the box's disk as for any image.
 */
import { hostPlatform } from "@boxlite/oci"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as tar from "tar"
import { gunzipSync } from "node:zlib"

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** Writes the layout under `dir` and returns its reference (`oci:<dir>/layout:latest`). */
export const tinyImage = async (dir: string): Promise<string> => {
  const rootfs = path.join(dir, "rootfs")
  fs.mkdirSync(path.join(rootfs, "etc"), { recursive: true })
  fs.writeFileSync(path.join(rootfs, "etc", "hello"), "from the tiny image\n")
  const layout = path.join(dir, "layout")
  const blobs = path.join(layout, "blobs", "sha256")
  fs.mkdirSync(blobs, { recursive: true })
  const put = (bytes: Uint8Array) => {
    const hex = sha256(bytes)
    fs.writeFileSync(path.join(blobs, hex), bytes)
    return { digest: `sha256:${hex}`, size: bytes.length }
  }
  const layerFile = path.join(dir, "layer.tar.gz")
  await tar.create({ gzip: true, cwd: rootfs, file: layerFile, portable: true }, ["etc"])
  const gzipped = fs.readFileSync(layerFile)
  const layer = put(gzipped)
  const platform = hostPlatform()
  const config = put(Buffer.from(JSON.stringify({
    architecture: platform.architecture,
    os: platform.os,
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=1"], WorkingDir: "/" },
    rootfs: { type: "layers", diff_ids: [`sha256:${sha256(gunzipSync(gzipped))}`] }
  })))
  const manifest = put(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }]
  })))
  fs.writeFileSync(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }))
  fs.writeFileSync(path.join(layout, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": "latest" } }]
  }))
  return `oci:${layout}:latest`
}

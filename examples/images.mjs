// Images from a registry: a local docker-registry serves as Docker Hub's mirror, so
// `python:slim` resolves offline. Pull with progress, run, list, remove, prune.
//   node examples/images.mjs      (needs Debian's docker-registry and skopeo: scripts/install.sh)
import { Boxlite, SimpleBox } from "boxlite"
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const layout = fileURLToPath(new URL("../images/out/python", import.meta.url))
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "registry-"))
fs.writeFileSync(`${dir}/config.yml`, `version: 0.1\nlog: { level: error, accesslog: { disabled: true } }\nstorage: { filesystem: { rootdirectory: ${dir}/storage } }\nhttp: { addr: 127.0.0.1:5077 }\n`)
const registry = spawn("docker-registry", ["serve", `${dir}/config.yml`], { stdio: "ignore" })
await new Promise((r) => setTimeout(r, 1000))
execFileSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${layout}:slim`, "docker://127.0.0.1:5077/library/python:slim"])

const runtime = new Boxlite({ homeDir: path.join(dir, "home"), registries: { "docker.io": { mirrors: ["http://127.0.0.1:5077"] } } })
try {
  const image = await runtime.images.pull("python:slim", {
    onProgress: (p) => p.phase === "done" && console.log(`pulled ${(p.totalBytes / 1e6).toFixed(1)} MB in ${p.layers.length} layers`)
  })
  console.log("image:", image.reference, image.manifestDigest)
  console.log("config:", (await runtime.images.inspect("python:slim")).config)

  const box = new SimpleBox({ image: "python:slim", runtime })
  try {
    console.log((await box.exec("python", "-c", "import sys; print('python', sys.version.split()[0], 'from docker.io (mirrored)')")).stdout.trim())
  } finally {
    await box.stop()
  }
  await runtime.images.remove("python:slim")
  console.log("pruned:", await runtime.images.prune())
} finally {
  await runtime.close()
  registry.kill()
  fs.rmSync(dir, { recursive: true, force: true })
}

// Image benchmarks beside their floors, measured in the same run (see bench/README.md).
//   pull + prepare: runtime.create() of the Python test image from a local registry into an
//   empty home (download, verify, unpack, ext4 base, box disk), vs the standard tools doing
//   the same work: skopeo copy to an OCI layout, umoci unpack, mke2fs -d.
//   create from cache: runtime.create() when the image and its base are already there.
import { Boxlite } from "boxlite"
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { report, TARGETS } from "./targets.js"

const layout = fileURLToPath(new URL("../images/out/python", import.meta.url))
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const createRounds = Number(process.env.BENCH_CREATE_ROUNDS ?? 30)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const time = async (f) => {
  const start = performance.now()
  await f()
  return performance.now() - start
}

const freePort = () => new Promise((resolve) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address()
    server.close(() => resolve(port))
  })
})

const startRegistry = async (dir) => {
  const port = await freePort()
  fs.writeFileSync(path.join(dir, "config.yml"), `version: 0.1\nlog: { level: error, accesslog: { disabled: true } }\nstorage: { filesystem: { rootdirectory: ${dir}/storage } }\nhttp: { addr: 127.0.0.1:${port} }\n`)
  const child = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], { stdio: "ignore" })
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => net.connect(port, "127.0.0.1").on("connect", function () { this.destroy(); resolve(true) }).on("error", () => resolve(false)))
    if (up) return { host: `127.0.0.1:${port}`, stop: () => child.kill() }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error("docker-registry did not start")
}

const main = async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-img-"))
  const registry = await startRegistry(work)
  const ref = `${registry.host}/library/python:slim`
  execFileSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${layout}:slim`, `docker://${ref}`])
  const registries = { [registry.host]: { insecure: true } }

  const ours = []
  const tools = []
  for (let i = 0; i < rounds; i++) {
    const home = fs.mkdtempSync(path.join(work, "home-"))
    const runtime = new Boxlite({ homeDir: home, registries })
    ours.push(await time(async () => { await runtime.create({ image: ref }) }))
    await runtime.close()

    const dir = fs.mkdtempSync(path.join(work, "tools-"))
    tools.push(await time(async () => {
      execFileSync("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${dir}/layout:slim`])
      execFileSync("umoci", ["unpack", "--image", `${dir}/layout:slim`, `${dir}/bundle`], { stdio: "ignore" })
      const used = Number(execFileSync("du", ["-sb", `${dir}/bundle/rootfs`]).toString().split("\t")[0])
      execFileSync("mke2fs", ["-q", "-F", "-t", "ext4", "-d", `${dir}/bundle/rootfs`, `${dir}/rootfs.ext4`, `${Math.ceil(used * 1.15 / 2 ** 20) + 1024 + 64}M`])
    }))
    fs.rmSync(dir, { recursive: true, force: true })
    fs.rmSync(home, { recursive: true, force: true })
  }

  const home = fs.mkdtempSync(path.join(work, "cached-"))
  const runtime = new Boxlite({ homeDir: home, registries })
  await (await runtime.create({ image: ref })).remove()
  const creates = []
  for (let i = 0; i < createRounds; i++) {
    let box
    creates.push(await time(async () => { box = await runtime.create({ image: ref }) }))
    await box.remove()
  }
  await runtime.close()
  registry.stop()
  fs.rmSync(work, { recursive: true, force: true })

  console.log(`${rounds} pulls, ${createRounds} cached creates`)
  report([
    { name: "pull + prepare (python image, local registry), median", value: median(ours), unit: "ms", floor: median(tools), floorName: "skopeo copy + umoci unpack + mke2fs -d", target: TARGETS.pullPrepare },
    { name: "create from cached image p50", value: median(creates), unit: "ms", target: TARGETS.createCached }
  ])
}

await main()

// The REST API's overhead (see bench/README.md): an exec round trip through `boxlite serve`
// over HTTP on its unix socket (POST /executions, then GET .../output read to its exit line),
// against the same round trip through the in-process API (`exec("true")` + `wait()`), on the
// same running box, rounds interleaved. The server is a process of its own, as users run it;
// the client is node:http with a keep-alive agent (what any HTTP client does).
import { Boxlite } from "boxlite"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { report, TARGETS } from "./targets.js"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`
const bin = fileURLToPath(new URL("../packages/boxlite/dist/bin.js", import.meta.url))
const rounds = Number(process.env.BENCH_EXEC_ROUNDS ?? 100)

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const median = (xs) => quantile(xs, 0.5)

/** `boxlite serve --home HOME` until it says where it serves. */
const startServer = (home) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "serve", "--home", home], { env: { ...process.env, BOXLITE_LOG: "" }, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d) => {
      stderr += d
      if (/serving /.test(stderr)) resolve(child)
    })
    child.once("exit", (code) => reject(new Error(`boxlite serve exited ${code}: ${stderr}`)))
  })

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-serve-"))
  const server = await startServer(home)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  const socketPath = path.join(home, "boxlite.sock")
  const call = (method, url, body) =>
    new Promise((resolve, reject) => {
      const req = http.request({ socketPath, agent, method, path: url, headers: body ? { "content-type": "application/json" } : {} }, (res) => {
        const chunks = []
        res.on("data", (c) => chunks.push(c))
        res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }))
        res.on("error", reject)
      })
      req.on("error", reject)
      req.end(body ? JSON.stringify(body) : undefined)
    })
  const runtime = new Boxlite({ homeDir: home })
  try {
    const info = await runtime.info()
    console.log(`host: ${os.cpus().length} CPUs, accelerator ${info.hypervisor.accelerator}`)
    const created = await call("POST", "/v1/boxes", { options: { image } })
    if (created.status !== 201) throw new Error(`create: ${created.text}`)
    const id = JSON.parse(created.text).id
    const box = await runtime.get(id)
    await box.start()

    const overHttp = async () => {
      const start = performance.now()
      const exec = await call("POST", `/v1/boxes/${id}/executions`, { command: "true" })
      const out = await call("GET", `/v1/boxes/${id}/executions/${JSON.parse(exec.text).id}/output`)
      const elapsed = performance.now() - start
      if (!out.text.trimEnd().endsWith(`{"exit":{"exitCode":0}}`)) throw new Error(`true over HTTP: ${out.text}`)
      return elapsed
    }
    const inProcess = async () => {
      const start = performance.now()
      const result = await (await box.exec("true")).wait()
      const elapsed = performance.now() - start
      if (result.exitCode !== 0) throw new Error("true failed")
      return elapsed
    }
    // Warm both paths (the server's first requests load its modules), then alternate.
    for (let i = 0; i < 5; i++) await overHttp(), await inProcess()
    const http_ = []
    const local = []
    for (let i = 0; i < rounds; i++) {
      http_.push(await overHttp())
      local.push(await inProcess())
    }
    await call("DELETE", `/v1/boxes/${id}?force=true`)
    console.log(`\n${rounds} round trips each; HTTP p90 ${quantile(http_, 0.9).toFixed(1)} ms, in-process p90 ${quantile(local, 0.9).toFixed(1)} ms`)
    report([
      { name: "exec round trip via `boxlite serve` (HTTP, unix socket) p50", value: median(http_), unit: "ms", floor: median(local), floorName: "in-process exec p50", target: TARGETS.serveExec }
    ])
  } finally {
    agent.destroy()
    await runtime.close()
    await new Promise((resolve) => {
      server.once("exit", resolve)
      server.kill("SIGTERM")
    })
    fs.rmSync(home, { recursive: true, force: true })
  }
}

await main()

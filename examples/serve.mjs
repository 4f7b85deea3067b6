// The REST API: `boxlite serve` on the home's unix socket, used with plain HTTP (what a Python
// program, an agent framework or curl does): a box, a command with live output and stdin,
// its exit code, a typed error, and the box seen by the library too.
//   node examples/serve.mjs
import { Boxlite } from "boxlite"
import { spawn } from "node:child_process"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`
const home = process.env.BOXLITE_HOME || path.join(os.homedir(), ".boxlite")
const socketPath = path.join(home, "boxlite.sock")

// `npx boxlite serve` in a terminal does the same; here it is a child of this script.
const server = spawn(process.execPath, [fileURLToPath(new URL("../packages/boxlite/dist/bin.js", import.meta.url)), "serve", "--home", home], { stdio: ["ignore", "ignore", "pipe"] })
await new Promise((resolve, reject) => {
  let said = ""
  server.stderr.on("data", (d) => (said += d) && /serving/.test(said) && resolve())
  server.once("exit", () => reject(new Error(said)))
})

/** One request over the socket: the response as it streams (a Node IncomingMessage). */
const send = (method, url, body) =>
  new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: url, headers: { "content-type": "application/json" } }, resolve)
    req.on("error", reject)
    req.end(body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body))
  })
const json = async (method, url, body) => {
  const res = await send(method, url, body)
  let text = ""
  for await (const chunk of res) text += chunk
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined }
}

try {
  // A run that was interrupted may have left the box.
  await json("DELETE", "/v1/boxes/serve-demo?force=true")
  const box = (await json("POST", "/v1/boxes", { options: { image, name: "serve-demo" } })).body
  console.log(`created ${box.name}: ${box.status}, ${box.cpus} CPU, ${box.memoryMib} MiB`)

  const code = "import sys\nprint('ready', flush=True)\nname = sys.stdin.readline().strip()\nprint(f'hello {name}', flush=True)\nprint('to stderr', file=sys.stderr)\nsys.exit(3)"
  const { id } = (await json("POST", "/v1/boxes/serve-demo/executions", { command: "python3", args: ["-c", code] })).body
  const output = await send("GET", `/v1/boxes/serve-demo/executions/${id}/output`)
  let pending = ""
  for await (const chunk of output) {
    pending += chunk
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const event = JSON.parse(pending.slice(0, nl))
      pending = pending.slice(nl + 1)
      if (event.stream) {
        const text = Buffer.from(event.data, "base64").toString().trimEnd()
        console.log(`${event.stream}: ${text}`)
        // Live: the program waits for its input until it has said it is ready.
        if (text === "ready") {
          await json("POST", `/v1/boxes/serve-demo/executions/${id}/stdin`, "BoxLite\n")
          await json("POST", `/v1/boxes/serve-demo/executions/${id}/stdin/close`)
        }
      } else console.log("exit:", JSON.stringify(event.exit ?? event.error))
    }
  }

  const missing = await json("GET", "/v1/boxes/no-such-box")
  console.log(`${missing.status}: ${missing.body.error._tag} (${missing.body.error.message})`)

  // An ordinary box of the home: the library sees it.
  const runtime = new Boxlite({ homeDir: home })
  console.log("the library lists:", (await runtime.list()).map((b) => `${b.name} ${b.status}`).join(", "))
  await runtime.close()

  console.log("removed:", (await json("DELETE", "/v1/boxes/serve-demo?force=true")).status)
} finally {
  server.kill("SIGTERM")
}

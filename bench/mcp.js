// What MCP costs on top of the API (medians, same run, same box):
//   `run_command true` through `boxlite mcp` (the official SDK's client over stdio: JSON-RPC,
//   argument decoding, output collected) vs `exec("true")` + `wait()` in this process, on a
//   box the server created and this process reattached to (both are clients of its supervisor).
import { Boxlite } from "boxlite"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { report } from "./targets.js"

const repo = fileURLToPath(new URL("..", import.meta.url))
const image = `oci:${path.join(repo, "images/out/busybox")}:latest`
const rounds = Number(process.env.BENCH_EXEC_ROUNDS ?? 100)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-mcp-"))
  const transport = new StdioClientTransport({ command: process.execPath, args: [path.join(repo, "packages/boxlite/dist/bin.js"), "mcp", "--home", home], env: { ...process.env }, stderr: "inherit" })
  const client = new Client({ name: "bench", version: "1" })
  await client.connect(transport)
  const runtime = new Boxlite({ homeDir: home })
  try {
    const created = await client.callTool({ name: "create_box", arguments: { image } }, undefined, { timeout: 300_000 })
    if (created.isError) throw new Error(created.content[0].text)
    const box = await runtime.get(created.structuredContent.id)
    const mcp = [], api = []
    for (let i = 0; i < rounds; i++) {
      let start = performance.now()
      const result = await client.callTool({ name: "run_command", arguments: { box: box.id, command: "true" } })
      mcp.push(performance.now() - start)
      if (result.isError || result.structuredContent.exitCode !== 0) throw new Error(`run_command failed: ${JSON.stringify(result.content)}`)
      start = performance.now()
      await (await box.exec("true")).wait()
      api.push(performance.now() - start)
    }
    console.log(`${rounds} round trips each`)
    report([
      { name: "MCP run_command `true` over stdio, p50", value: median(mcp), unit: "ms", floor: median(api), floorName: "exec round trip p50 in process" }
    ])
  } finally {
    await client.close()
    await runtime.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

await main()

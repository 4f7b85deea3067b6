// BoxLite as an agent sees it: the MCP server `boxlite mcp`, driven by the official MCP client
// over stdio, as Claude Desktop, Cursor or any MCP client drives it.
//   node examples/mcp.mjs
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { fileURLToPath } from "node:url"

// Built offline by images/build.sh; with a registry (or a mirror in config.json) this would be "python:slim".
const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`

// What an MCP client's configuration says: { "command": "npx", "args": ["boxlite", "mcp"] }.
// The server gets this process's environment (BOXLITE_HOME, BOXLITE_LOG, ...).
const transport = new StdioClientTransport({ command: "npx", args: ["boxlite", "mcp"], env: process.env, stderr: "inherit" })
const client = new Client({ name: "boxlite-example", version: "1.0.0" })
await client.connect(transport)

/** A tool's structured result; a tool error (its text is "<Tag>: <message>") is thrown. */
const call = async (name, args) => {
  const result = await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })
  if (result.isError) throw new Error(result.content[0].text)
  return result.structuredContent
}

try {
  const { tools } = await client.listTools()
  console.log(`tools: ${tools.map((t) => t.name).join(", ")}`)

  const box = await call("create_box", { kind: "code", image, name: "mcp-example" })
  console.log(`create_box: ${box.name} is ${box.status} (${box.kind} box ${box.id})`)

  const ran = await call("run_command", { box: "mcp-example", command: "sh", args: ["-c", "python3 --version; echo to stderr >&2; exit 3"] })
  console.log(`run_command: exit code ${ran.exitCode}, stdout ${JSON.stringify(ran.stdout)}, stderr ${JSON.stringify(ran.stderr)}`)

  await call("write_file", { box: "mcp-example", path: "/root/data.csv", content: "x,y\n1,2\n3,40\n" })
  await call("run_code", { box: "mcp-example", code: "import csv\nrows = list(csv.DictReader(open('/root/data.csv')))" })
  const sum = await call("run_code", { box: "mcp-example", code: "total = sum(int(r['y']) for r in rows)  # rows is still there\ntotal" })
  console.log(`run_code: ${sum.text}`)
  await call("run_code", { box: "mcp-example", code: "open('/root/report.txt', 'w').write(f'{len(rows)} rows, total {total}')" })
  console.log(`read_file: ${(await call("read_file", { box: "mcp-example", path: "/root/report.txt" })).content}`)

  const failed = await client.callTool({ name: "create_box", arguments: { image, memoryMib: 64 } })
  console.log(`a tool error: ${failed.content[0].text}`)

  await call("remove_box", { box: "mcp-example" })
  console.log(`after remove_box: ${(await call("list_boxes", {})).boxes.length} boxes`)
} finally {
  await client.close() // the server ends and removes what its session created
}

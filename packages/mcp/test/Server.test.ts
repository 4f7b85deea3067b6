// The MCP server without a VM: the SDK's Client over an in-memory transport, a runtime on a
// temporary home whose hypervisor is not there. Tool schemas, argument errors, and failures of
// the runtime as tool errors naming the BoxliteError tag, with nothing left behind.
import { GuestArtifacts, Hypervisor, HypervisorUnavailable } from "@boxlite/core"
import { Boxlite } from "@boxlite/core/promise"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { SupervisorEntry } from "@boxlite/core"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { makeServer, toolError } from "../src/index.js"

const platform = Layer.mergeAll(
  Layer.succeed(Hypervisor, Hypervisor.of({
    name: "none",
    capabilities: { diskFormats: ["qcow2"], network: false, portForwards: false, egressPolicy: false, volumes: false, snapshots: false, agentTransport: "vsock" },
    guestNetwork: { address: "10.0.2.15", prefixLength: 24, gateway: "10.0.2.2", dns: "10.0.2.3", mtu: 1500 },
    info: Effect.fail(new HypervisorUnavailable("no VMs in this test")),
    start: () => Effect.fail(new HypervisorUnavailable("no VMs in this test"))
  })),
  Layer.succeed(GuestArtifacts, GuestArtifacts.of({ files: Effect.fail(new HypervisorUnavailable("no guest in this test")) })),
  Layer.succeed(SupervisorEntry, SupervisorEntry.of({ module: "/nonexistent/supervisor.js" }))
)

let home: string
let runtime: Boxlite
let client: Client
let close: () => Promise<void>

beforeEach(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-mcp-"))
  runtime = new Boxlite({ homeDir: home }, platform)
  const served = makeServer(runtime)
  close = served.close
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await served.server.connect(serverSide)
  client = new Client({ name: "test", version: "1" })
  await client.connect(clientSide)
})

afterEach(async () => {
  await client.close()
  await close()
  await runtime.close()
  fs.rmSync(home, { recursive: true, force: true })
})

const call = async (name: string, args: Record<string, unknown>) => (await client.callTool({ name, arguments: args })) as CallToolResult
const errorOf = async (name: string, args: Record<string, unknown>) => {
  const result = await call(name, args)
  expect(result.isError).toBe(true)
  return (result.structuredContent as { error: Record<string, unknown> }).error
}

describe("the MCP server's tools", () => {
  it("each has a JSON Schema of its arguments from effect/Schema: types, ranges, enums, required, nothing else", async () => {
    const { tools } = await client.listTools()
    const schema = (name: string) => tools.find((t) => t.name === name)!.inputSchema as Record<string, any>
    expect(schema("create_box").properties.kind).toMatchObject({ type: "string", enum: ["box", "code", "computer", "browser"] })
    expect(schema("create_box").properties.memoryMib).toMatchObject({ type: "integer", minimum: 128, maximum: 65536 })
    expect(schema("create_box").required).toBeUndefined()
    expect(schema("create_box").additionalProperties).toBe(false)
    expect(schema("run_command").properties.args).toMatchObject({ type: "array", items: { type: "string" } })
    expect(schema("mouse_click").properties.clicks).toMatchObject({ type: "integer", minimum: 1, maximum: 3 })
    expect(schema("scroll").required).toEqual(["box", "x", "y", "direction"])
    expect(schema("list_boxes")).toEqual({ type: "object", properties: {}, additionalProperties: false })
  })

  it.each([
    ["create_box", { cpus: 1.5 }, "cpus"],
    ["create_box", { env: { A: 1 } }, "env"],
    ["create_box", { kind: "desktop" }, "kind"],
    ["create_box", { volumes: [["/etc", "/host"]] }, "volumes"],
    ["run_command", { box: "b" }, "command"],
    ["run_command", { box: "b", command: "ls", args: "-l" }, "args"],
    ["read_file", { box: "b", path: "/x", encoding: "hex" }, "encoding"],
    ["write_file", { box: "b", path: "/x", content: "", mode: 0o7777 }, "mode"],
    ["scroll", { box: "b", x: 1, y: 1, direction: "sideways" }, "direction"],
    ["mouse_move", { box: "b", x: -1, y: 0 }, "x"]
  ])("%s %j is InvalidOptions naming %s", async (tool, args, field) => {
    expect(await errorOf(tool, args)).toMatchObject({ _tag: "InvalidOptions", field })
  })

  it("the runtime's failures are tool errors with their tag and fields, and leave nothing behind", async () => {
    expect(await errorOf("run_command", { box: "nope", command: "true" })).toEqual({ _tag: "BoxNotFound", message: `no box with id or name "nope"`, idOrName: "nope" })
    expect(await errorOf("create_box", { image: "oci:/nonexistent/layout:latest", network: "none" })).toMatchObject({ _tag: "ImageNotFound", reference: "oci:/nonexistent/layout:latest" })
    expect(await errorOf("remove_box", { box: "nope" })).toMatchObject({ _tag: "BoxNotFound" })
    const listed = await call("list_boxes", {})
    expect(listed.structuredContent).toEqual({ boxes: [] })
    expect(fs.existsSync(path.join(home, "boxes")) ? fs.readdirSync(path.join(home, "boxes")) : []).toEqual([])
  })

  it("a failure that is not a BoxliteError is an UnexpectedError", () => {
    expect(toolError(new TypeError("boom"))).toMatchObject({ isError: true, content: [{ type: "text", text: "UnexpectedError: unexpected: boom" }] })
  })
})

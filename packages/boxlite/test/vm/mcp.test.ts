// `boxlite mcp` as an MCP client runs it: the official SDK's Client over StdioClientTransport,
// spawning `node packages/boxlite/dist/bin.js mcp --home <tmp>`, driving real boxes through the
// tools: commands with their output, files, Python in a CodeBox, a desktop (ComputerBox) and a
// browser (BrowserBox) when their offline images are built. When the client goes, the boxes of
// the session go with it.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { boxDirs, BUSYBOX, PYTHON, qemuProcessesUnder, tempHome } from "./helpers.js"

const repo = fileURLToPath(new URL("../../../../", import.meta.url))
const built = (image: string) => fs.existsSync(path.join(repo, "images/out", image, "index.json"))

const home = tempHome()
// A box default from the home's config.json: the server's runtime reads it like any other.
fs.writeFileSync(path.join(home, "config.json"), JSON.stringify({ defaults: { env: { FROM_CONFIG: "config.json" } } }))
let client: Client
let stderr = ""

const call = async (name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> =>
  (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as CallToolResult

/** A tool's structured result; fails the test on a tool error, showing it. */
const ok = async (name: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> => {
  const result = await call(name, args)
  expect(result.isError, JSON.stringify(result.content)).toBeFalsy()
  return (result.structuredContent ?? {}) as Record<string, unknown>
}

/** A tool's error: its tag (also the text's first word) and fields. */
const failed = async (name: string, args: Record<string, unknown>) => {
  const result = await call(name, args)
  expect(result.isError).toBe(true)
  const error = (result.structuredContent as { error: { _tag: string; message: string; field?: string } }).error
  expect((result.content[0] as { text: string }).text).toBe(`${error._tag}: ${error.message}`)
  return error
}

const textOf = (result: CallToolResult) => result.content.filter((c) => c.type === "text").map((c) => (c as { text: string }).text).join("\n")

beforeAll(async () => {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [path.join(repo, "packages/boxlite/dist/bin.js"), "mcp", "--home", home],
    env: { ...process.env, BOXLITE_LOG: "" } as Record<string, string>,
    stderr: "pipe"
  })
  transport.stderr?.on("data", (d: Buffer) => (stderr += d.toString()))
  client = new Client({ name: "boxlite-vm-test", version: "1" })
  await client.connect(transport)
})

afterAll(async () => {
  await client.close()
  // The server removed its session's boxes as the client went (their supervisors would have otherwise).
  for (let i = 0; i < 100 && (qemuProcessesUnder(home).length > 0 || boxDirs(home).length > 0); i++) await new Promise((r) => setTimeout(r, 200))
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
  expect(stderr).toBe("")
  fs.rmSync(home, { recursive: true, force: true })
}, 60_000)

describe("boxlite mcp", () => {
  it("lists its tools, each with an object input schema naming its required arguments", async () => {
    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name)).toEqual([
      "create_box", "list_boxes", "remove_box", "run_command", "run_code", "read_file", "write_file",
      "screenshot", "mouse_move", "mouse_click", "mouse_drag", "type_text", "press_key", "scroll", "browser_endpoint"
    ])
    for (const tool of tools) {
      expect(tool.inputSchema.type).toBe("object")
      expect(tool.description?.length).toBeGreaterThan(20)
    }
    const runCommand = tools.find((t) => t.name === "run_command")!
    expect(runCommand.inputSchema.required).toEqual(["box", "command"])
    expect(Object.keys(runCommand.inputSchema.properties!)).toContain("timeoutMs")
  })

  it("bad arguments are tool errors naming the BoxliteError tag and the field; nothing is created", async () => {
    expect(await failed("create_box", { cpus: 0 })).toMatchObject({ _tag: "InvalidOptions", field: "cpus" })
    expect(await failed("create_box", { kind: "vm" })).toMatchObject({ _tag: "InvalidOptions", field: "kind" })
    expect(await failed("create_box", { memory_mib: 256 })).toMatchObject({ _tag: "InvalidOptions", field: "memory_mib", message: expect.stringContaining(`did you mean "memoryMib"?`) })
    expect(await failed("create_box", { image: BUSYBOX, width: 800 })).toMatchObject({ _tag: "InvalidOptions", field: "width" })
    // Checked by the runtime, past the tool's schema.
    expect(await failed("create_box", { image: BUSYBOX, workingDir: "relative" })).toMatchObject({ _tag: "InvalidOptions", field: "workingDir" })
    expect(await failed("create_box", { image: "oci:/nonexistent/layout:latest" })).toMatchObject({ _tag: "ImageNotFound" })
    expect(await failed("run_command", { box: "nope" })).toMatchObject({ _tag: "InvalidOptions", field: "command" })
    expect(await failed("run_command", { box: "nope", command: "true" })).toMatchObject({ _tag: "BoxNotFound" })
    expect(await failed("mouse_click", { box: "nope", x: 1 })).toMatchObject({ _tag: "InvalidOptions", field: "y" })
    expect((await ok("list_boxes")).boxes).toEqual([])
    expect(boxDirs(home)).toEqual([])
    // An unknown tool is a protocol error, not a tool's.
    await expect(client.callTool({ name: "nope", arguments: {} })).rejects.toThrow(/unknown tool "nope"/)
  }, 60_000)

  it("a box: run a command and see its output, write and read files, time out, remove it", async () => {
    const created = await ok("create_box", { image: BUSYBOX, name: "mcp-box" })
    expect(created).toMatchObject({ name: "mcp-box", status: "running", kind: "box", image: BUSYBOX })
    expect(((await ok("list_boxes")).boxes as Array<{ id: string; kind: string }>).map((b) => [b.id, b.kind])).toEqual([[created.id, "box"]])

    const run = await ok("run_command", { box: "mcp-box", command: "sh", args: ["-c", "echo out $FROM_CONFIG $A; echo err >&2; cat; exit 3"], stdin: "from stdin", env: { A: "a" } })
    expect(run).toEqual({ exitCode: 3, stdout: "out config.json a\nfrom stdin", stderr: "err\n" })
    const pwd = await ok("run_command", { box: created.id, command: "pwd", workingDir: "/tmp" })
    expect(pwd).toMatchObject({ exitCode: 0, stdout: "/tmp\n" })
    expect(await failed("run_command", { box: "mcp-box", command: "no-such-program" })).toMatchObject({ _tag: "ExecError" })
    expect(await failed("run_command", { box: "mcp-box", command: "sleep", args: ["30"], timeoutMs: 500 })).toMatchObject({ _tag: "TimeoutError" })

    expect(textOf(await call("write_file", { box: "mcp-box", path: "/tmp/notes.txt", content: "héllo ✓\n" }))).toBe("wrote 11 bytes to /tmp/notes.txt")
    expect(await ok("read_file", { box: "mcp-box", path: "/tmp/notes.txt" })).toEqual({ path: "/tmp/notes.txt", encoding: "utf8", size: 11, content: "héllo ✓\n" })
    const binary = Buffer.from([0, 255, 1, 254, 0x80])
    await ok("write_file", { box: "mcp-box", path: "/tmp/bin", content: binary.toString("base64"), encoding: "base64", mode: 0o700 })
    expect(await ok("read_file", { box: "mcp-box", path: "/tmp/bin" })).toEqual({ path: "/tmp/bin", encoding: "base64", size: 5, content: binary.toString("base64") })
    expect((await ok("run_command", { box: "mcp-box", command: "stat", args: ["-c", "%a", "/tmp/bin"] })).stdout).toBe("700\n")
    expect(await failed("read_file", { box: "mcp-box", path: "/tmp/missing" })).toMatchObject({ _tag: "PathNotFound" })
    expect(await failed("read_file", { box: "mcp-box", path: "/tmp/notes.txt", maxBytes: 4 })).toMatchObject({ _tag: "CopyError" })
    // The CodeBox and desktop tools want a box of their kind.
    expect(await failed("run_code", { box: "mcp-box", code: "1" })).toMatchObject({ _tag: "InvalidOptions", field: "box" })
    expect(await failed("screenshot", { box: "mcp-box" })).toMatchObject({ _tag: "InvalidOptions", field: "box" })

    // A call the client cancels (notifications/cancelled) kills its command in the box.
    const controller = new AbortController()
    const cancelled = client.callTool({ name: "run_command", arguments: { box: "mcp-box", command: "sleep", args: ["300"] } }, undefined, { signal: controller.signal })
    const sleeping = async () => (await ok("run_command", { box: "mcp-box", command: "sh", args: ["-c", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done | grep -c '^sleep 300'"] })).stdout
    for (let i = 0; i < 100 && (await sleeping()) !== "1\n"; i++) await new Promise((r) => setTimeout(r, 100))
    expect(await sleeping()).toBe("1\n")
    controller.abort()
    await expect(cancelled).rejects.toThrow(/abort/i)
    for (let i = 0; i < 100 && (await sleeping()) !== "0\n"; i++) await new Promise((r) => setTimeout(r, 100))
    expect(await sleeping()).toBe("0\n")

    expect(textOf(await call("remove_box", { box: "mcp-box" }))).toBe(`removed ${created.id}`)
    expect((await ok("list_boxes")).boxes).toEqual([])
    expect(qemuProcessesUnder(home)).toEqual([])
    expect(boxDirs(home)).toEqual([])
    expect(await failed("run_command", { box: "mcp-box", command: "true" })).toMatchObject({ _tag: "BoxNotFound" })
  }, 180_000)

  it("a code box: run_code keeps its interpreter's state, returns the last value, and reports an exception in the result", async () => {
    const { id } = await ok("create_box", { kind: "code", image: PYTHON })
    expect(await ok("run_code", { box: id, code: "import math\nx = 6 * 7\nprint('side effect')" })).toMatchObject({ stdout: "side effect\n", stderr: "" })
    expect(await ok("run_code", { box: id, code: "math.sqrt(x * x)" })).toMatchObject({ text: "42.0" })
    const raised = await ok("run_code", { box: id, code: "1 / 0" })
    expect(raised.error).toMatchObject({ name: "ZeroDivisionError" })
    // A timeout interrupts the cell; the interpreter keeps its state.
    expect((await ok("run_code", { box: id, code: "import time; time.sleep(30)", timeoutMs: 1000 })).error).toMatchObject({ name: "TimeoutError" })
    expect(await ok("run_code", { box: id, code: "x" })).toMatchObject({ text: "42" })
    await ok("remove_box", { box: id })
  }, 240_000)

  it.skipIf(!built("desktop"))("a computer box: a screenshot (PNG), the pointer moved and clicked, keys typed", async () => {
    const { id } = await ok("create_box", { kind: "computer", width: 800, height: 600 })
    const first = await call("screenshot", { box: id })
    expect(first.isError).toBeFalsy()
    const image = first.content.find((c) => c.type === "image") as { data: string; mimeType: string }
    expect(image.mimeType).toBe("image/png")
    const png = Buffer.from(image.data, "base64")
    expect(png.subarray(1, 4).toString()).toBe("PNG")
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([800, 600])
    expect(first.structuredContent).toMatchObject({ width: 800, height: 600 })

    await ok("mouse_move", { box: id, x: 321, y: 123 })
    expect((await call("screenshot", { box: id })).structuredContent).toMatchObject({ cursor: { x: 321, y: 123 } })
    await ok("mouse_click", { box: id, x: 400, y: 300, button: "left", clicks: 2 })
    await ok("mouse_drag", { box: id, startX: 10, startY: 10, endX: 50, endY: 60 })
    expect((await call("screenshot", { box: id })).structuredContent).toMatchObject({ cursor: { x: 50, y: 60 } })
    await ok("type_text", { box: id, text: "hello" })
    await ok("press_key", { box: id, keys: "ctrl+a BackSpace" })
    await ok("scroll", { box: id, x: 400, y: 300, direction: "down", amount: 2 })
    expect((await call("screenshot", { box: id })).structuredContent).toMatchObject({ cursor: { x: 400, y: 300 } })
    expect(await failed("mouse_click", { box: id, button: "right", clicks: 2 })).toMatchObject({ _tag: "InvalidOptions", field: "clicks" })
    await ok("remove_box", { box: id })
  }, 300_000)

  it.skipIf(!built("browser"))("a browser box: its endpoint answers from this host", async () => {
    const { id } = await ok("create_box", { kind: "browser", browser: "chromium" })
    const { browser, endpoint } = await ok("browser_endpoint", { box: id }) as { browser: string; endpoint: string }
    expect(browser).toBe("chromium")
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const version = await (await fetch(`${endpoint}/json/version`)).json() as { Browser: string }
    expect(version.Browser).toMatch(/Chrome/)
    await ok("remove_box", { box: id })
  }, 300_000)
})

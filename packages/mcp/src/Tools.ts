/**
 * The tools an agent gets: boxes (create, list, remove), commands with their output, Python in
 * a CodeBox, guest files, a desktop (screenshot, mouse, keyboard) in a ComputerBox and a
 * browser's endpoint in a BrowserBox. A box is named by id or name; only guest files are
 * reachable (no host path is taken: no volumes, no copyIn/copyOut), so an agent cannot use a
 * box to reach the host's files.
 */
import { type BoxInfo, type BoxOptions, InvalidOptions } from "@boxlite/core"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js"
import { Schema } from "effect"
import { BOX_KINDS } from "./Session.js"
import { tool, type Tool } from "./Tool.js"

const text = (description: string) => Schema.String.annotate({ description })
const int = (minimum: number, maximum: number, description: string) => Schema.Int.check(Schema.isBetween({ minimum, maximum })).annotate({ description })
const optional = <S extends Schema.Top>(schema: S) => Schema.optionalKey(schema)

const box = text("The box's id or name (create_box returns it; list_boxes lists them)")
const coordinate = (axis: string) => int(0, 65535, `${axis} in pixels from the screen's top-left corner`)

/** A result the agent reads as JSON text, and a client may read as structured content. */
const json = (value: Record<string, unknown>): CallToolResult => ({
  content: [{ type: "text", text: JSON.stringify(value, null, 2) }],
  structuredContent: value
})

const done = (what: string): CallToolResult => ({ content: [{ type: "text", text: what }] })

/** BoxInfo as JSON (dates as ISO strings), with this session's kind of the box. */
const infoJson = (info: BoxInfo, kind: string | undefined) => ({ ...info, createdAt: info.createdAt.toISOString(), kind: kind ?? "box" })

/** Each output stream is kept up to this size; the rest is drained and dropped (`truncated`). */
const MAX_OUTPUT_BYTES = 1024 * 1024

const collect = async (stream: AsyncIterable<Uint8Array>): Promise<{ readonly text: string; readonly truncated: boolean }> => {
  const chunks: Array<Uint8Array> = []
  let size = 0
  let total = 0
  for await (const chunk of stream) {
    total += chunk.length
    if (size < MAX_OUTPUT_BYTES) {
      const kept = chunk.subarray(0, MAX_OUTPUT_BYTES - size)
      chunks.push(kept)
      size += kept.length
    }
  }
  return { text: Buffer.concat(chunks).toString("utf8"), truncated: total > size }
}

const boxOptionFields = {
  image: optional(text("OCI image: a registry reference (python:slim, alpine:3) or an OCI layout (oci:/abs/path:tag). Default: the kind's image, else the home's config.json default, else python:slim")),
  name: optional(text("A unique name for the box (letters, digits, '.', '_', '-')")),
  cpus: optional(int(1, 1024, "vCPUs")),
  memoryMib: optional(int(128, 65536, "Guest memory in MiB")),
  env: optional(Schema.Record(Schema.String, Schema.String).annotate({ description: "Environment variables of every command" })),
  workingDir: optional(text("Working directory of commands (absolute)")),
  user: optional(text("User of commands: name, uid, name:group or uid:gid")),
  network: optional(Schema.Literals(["nat", "none"]).annotate({ description: "nat (default): outbound network, the host unreachable; none: no network" })),
  diskSizeGb: optional(int(1, 16384, "A persistent disk of this size instead of an ephemeral one")),
  readyTimeoutMs: optional(int(1, 3_600_000, "How long the box may take to boot"))
}

const createBox = tool({
  name: "create_box",
  description:
    "Create and boot a sandbox VM. kind: box (commands and files), code (Python: run_code), computer (a desktop: screenshot and mouse/keyboard tools), " +
    "browser (Chromium, Firefox or WebKit: browser_endpoint). Returns its id. Boxes this session creates are removed when the session ends.",
  fields: {
    kind: optional(Schema.Literals(BOX_KINDS).annotate({ description: "Default box" })),
    ...boxOptionFields,
    browser: optional(Schema.Literals(["chromium", "firefox", "webkit"]).annotate({ description: "kind browser: which browser (default chromium)" })),
    width: optional(int(320, 4096, "kind computer: screen width (default 1024)")),
    height: optional(int(320, 4096, "kind computer: screen height (default 768)"))
  },
  run: async ({ kind = "box", browser, width, height, ...options }, session) => {
    const own = { ...(browser !== undefined ? { browser } : {}), ...(width !== undefined ? { width } : {}), ...(height !== undefined ? { height } : {}) }
    const created = await session.create(kind, options as BoxOptions, own)
    return json(infoJson(await (await session.box(created.id)).info(), kind))
  }
})

const listBoxes = tool({
  name: "list_boxes",
  description: "List every box of this BoxLite home, running or not, with its status, image and resources.",
  fields: {},
  run: async (_, session) => {
    const boxes = await session.runtime.list()
    return json({ boxes: boxes.map((info) => infoJson(info, session.kindOf(info.id))) })
  }
})

const removeBox = tool({
  name: "remove_box",
  description: "Stop and remove a box and its disk (a running one too).",
  fields: { box },
  run: async (args, session) => done(`removed ${await session.remove(args.box)}`)
})

const runCommand = tool({
  name: "run_command",
  description:
    "Run a program in a box and wait for it: its stdout, stderr and exit code (a nonzero exit is a result, not an error). " +
    "For a shell line: command \"sh\", args [\"-c\", \"...\"]. Each stream keeps its first MiB.",
  fields: {
    box,
    command: text("The program (looked up in PATH)"),
    args: optional(Schema.Array(Schema.String).annotate({ description: "Its arguments" })),
    stdin: optional(text("Given to the program's standard input (default: none, it reads end-of-file)")),
    env: optional(Schema.Record(Schema.String, Schema.String).annotate({ description: "Environment variables added for this command" })),
    workingDir: optional(text("Working directory (absolute)")),
    user: optional(text("User: name, uid, name:group or uid:gid")),
    timeoutMs: optional(int(1, 86_400_000, "Kill the program after this many ms (a TimeoutError)"))
  },
  run: async ({ box: idOrName, command, args = [], stdin, env, workingDir, user, timeoutMs }, session, signal) => {
    const target = await session.box(idOrName)
    const execution = await target.exec(command, args, {
      ...(env !== undefined ? { env } : {}),
      ...(workingDir !== undefined ? { workingDir } : {}),
      ...(user !== undefined ? { user } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {})
    })
    const kill = () => void execution.kill().catch(() => undefined)
    signal.addEventListener("abort", kill, { once: true })
    if (signal.aborted) kill()
    const input = execution.stdin()
    const fed = stdin !== undefined ? input.write(stdin).then(() => input.close()) : input.close()
    const [stdout, stderr] = await Promise.all([collect(execution.stdout().bytes()), collect(execution.stderr().bytes()), fed.catch(() => undefined)])
    const result = await execution.wait().finally(() => signal.removeEventListener("abort", kill))
    return json({
      exitCode: result.exitCode,
      ...(result.signal !== undefined ? { signal: result.signal } : {}),
      stdout: stdout.text,
      stderr: stderr.text,
      ...(stdout.truncated || stderr.truncated ? { truncated: true } : {})
    })
  }
})

const runCode = tool({
  name: "run_code",
  description:
    "Run Python in a code box's interpreter, like a notebook cell: variables, imports and functions persist between calls; " +
    "the value of the last expression is returned as text, images as image content. An exception is in the result (error), not a tool error.",
  fields: {
    box: text("A box created with kind code"),
    code: text("Python source"),
    timeoutMs: optional(int(1, 86_400_000, "Interrupt the cell after this many ms (error TimeoutError in the result; the variables stay)"))
  },
  run: async ({ box: idOrName, code, timeoutMs }, session, signal) => {
    const codebox = await session.ofKind(idOrName, "code")
    const execution = await codebox.runCode(code, { signal, ...(timeoutMs !== undefined ? { timeoutMs } : {}) })
    const images = execution.results.flatMap((r) => [
      ...(r.png !== undefined ? [{ type: "image" as const, data: r.png, mimeType: "image/png" }] : []),
      ...(r.jpeg !== undefined ? [{ type: "image" as const, data: r.jpeg, mimeType: "image/jpeg" }] : [])
    ])
    const value = {
      stdout: execution.stdout,
      stderr: execution.stderr,
      ...(execution.text !== undefined ? { text: execution.text } : {}),
      results: execution.results.map(({ png: _png, jpeg: _jpeg, ...rest }) => rest),
      ...(execution.error !== undefined ? { error: execution.error } : {})
    }
    const result = json(value)
    return { ...result, content: [...result.content, ...images] }
  }
})

const readFile = tool({
  name: "read_file",
  description: "Read a file in a box (up to maxBytes, default 10 MiB): UTF-8 text, or base64 when it is not text or when asked.",
  fields: {
    box,
    path: text("Absolute path in the box"),
    encoding: optional(Schema.Literals(["utf8", "base64"]).annotate({ description: "Default: utf8 if the file is valid UTF-8, else base64" })),
    maxBytes: optional(int(1, 64 * 1024 * 1024, "Refuse a larger file (a CopyError)"))
  },
  run: async ({ box: idOrName, path, encoding, maxBytes = 10 * 1024 * 1024 }, session) => {
    const bytes = Buffer.from(await (await session.box(idOrName)).readFile(path, { maxBytes }))
    let content: string | undefined
    if (encoding !== "base64") {
      try {
        content = new TextDecoder("utf-8", { fatal: true }).decode(bytes)
      } catch {
        if (encoding === "utf8") content = bytes.toString("utf8")
      }
    }
    return json(content !== undefined ? { path, encoding: "utf8", size: bytes.length, content } : { path, encoding: "base64", size: bytes.length, content: bytes.toString("base64") })
  }
})

const writeFile = tool({
  name: "write_file",
  description: "Create or replace a file in a box (its directory must exist).",
  fields: {
    box,
    path: text("Absolute path in the box"),
    content: text("The file's content"),
    encoding: optional(Schema.Literals(["utf8", "base64"]).annotate({ description: "How content is given (default utf8)" })),
    mode: optional(int(0, 0o777, "Permission bits, e.g. 493 for 0755 (default 420, 0644)"))
  },
  run: async ({ box: idOrName, path, content, encoding, mode }, session) => {
    const data = encoding === "base64" ? Buffer.from(content, "base64") : Buffer.from(content, "utf8")
    await (await session.box(idOrName)).writeFile(path, data, mode !== undefined ? { mode } : undefined)
    return done(`wrote ${data.length} bytes to ${path}`)
  }
})

const desktop = text("A box created with kind computer")

const screenshot = tool({
  name: "screenshot",
  description: "A PNG of a computer box's screen (waits for the desktop the first time), with the screen size and the mouse position.",
  fields: { box: desktop },
  run: async ({ box: idOrName }, session) => {
    const computer = await session.ofKind(idOrName, "computer")
    await computer.waitUntilReady(180_000)
    const shot = await computer.screenshot()
    const [x, y] = await computer.cursorPosition()
    return {
      content: [
        { type: "image", data: shot.data, mimeType: "image/png" },
        { type: "text", text: JSON.stringify({ width: shot.width, height: shot.height, cursor: { x, y } }) }
      ],
      structuredContent: { width: shot.width, height: shot.height, cursor: { x, y } }
    }
  }
})

const mouseMove = tool({
  name: "mouse_move",
  description: "Move the mouse pointer of a computer box.",
  fields: { box: desktop, x: coordinate("x"), y: coordinate("y") },
  run: async ({ box: idOrName, x, y }, session) => {
    await (await session.ofKind(idOrName, "computer")).mouseMove(x, y)
    return done(`moved to ${x},${y}`)
  }
})

const mouseClick = tool({
  name: "mouse_click",
  description: "Click in a computer box: at (x, y) if given, else where the pointer is. clicks 2 or 3 (left button): a double or triple click.",
  fields: {
    box: desktop,
    x: optional(coordinate("x")),
    y: optional(coordinate("y")),
    button: optional(Schema.Literals(["left", "right", "middle"]).annotate({ description: "Default left" })),
    clicks: optional(int(1, 3, "Default 1"))
  },
  run: async ({ box: idOrName, x, y, button = "left", clicks = 1 }, session) => {
    if ((x === undefined) !== (y === undefined)) throw new InvalidOptions(x === undefined ? "x" : "y", "give both x and y, or neither")
    if (clicks > 1 && button !== "left") throw new InvalidOptions("clicks", "double and triple clicks are with the left button")
    const computer = await session.ofKind(idOrName, "computer")
    if (x !== undefined && y !== undefined) await computer.mouseMove(x, y)
    if (button === "right") await computer.rightClick()
    else if (button === "middle") await computer.middleClick()
    else if (clicks === 3) await computer.tripleClick()
    else if (clicks === 2) await computer.doubleClick()
    else await computer.leftClick()
    return done(`${button} click${clicks > 1 ? ` x${clicks}` : ""}`)
  }
})

const mouseDrag = tool({
  name: "mouse_drag",
  description: "Press the left button at the start, move to the end and release it there (a computer box).",
  fields: { box: desktop, startX: coordinate("start x"), startY: coordinate("start y"), endX: coordinate("end x"), endY: coordinate("end y") },
  run: async ({ box: idOrName, startX, startY, endX, endY }, session) => {
    await (await session.ofKind(idOrName, "computer")).leftClickDrag(startX, startY, endX, endY)
    return done(`dragged from ${startX},${startY} to ${endX},${endY}`)
  }
})

const typeText = tool({
  name: "type_text",
  description: "Type text as keystrokes in a computer box (any Unicode; a newline presses Return).",
  fields: { box: desktop, text: text("What to type") },
  run: async ({ box: idOrName, text: typed }, session) => {
    await (await session.ofKind(idOrName, "computer")).type(typed)
    return done(`typed ${typed.length} characters`)
  }
})

const pressKey = tool({
  name: "press_key",
  description: "Press keys in a computer box, in xdotool syntax: Return, ctrl+a, ctrl+shift+t, alt+F4; several separated by spaces.",
  fields: { box: desktop, keys: text("The key or chord") },
  run: async ({ box: idOrName, keys }, session) => {
    await (await session.ofKind(idOrName, "computer")).key(keys)
    return done(`pressed ${keys}`)
  }
})

const scroll = tool({
  name: "scroll",
  description: "Scroll at (x, y) in a computer box by wheel clicks.",
  fields: {
    box: desktop,
    x: coordinate("x"),
    y: coordinate("y"),
    direction: Schema.Literals(["up", "down", "left", "right"]),
    amount: optional(int(1, 100, "Wheel clicks (default 3)"))
  },
  run: async ({ box: idOrName, x, y, direction, amount }, session) => {
    await (await session.ofKind(idOrName, "computer")).scroll(x, y, direction, amount)
    return done(`scrolled ${direction}`)
  }
})

const browserEndpoint = tool({
  name: "browser_endpoint",
  description:
    "The endpoint of a browser box's browser on this host's 127.0.0.1: Chromium's DevTools URL (Playwright connectOverCDP, Puppeteer browserURL), " +
    "Firefox's WebDriver BiDi WebSocket URL, WebKit's WebDriver URL.",
  fields: { box: text("A box created with kind browser") },
  run: async ({ box: idOrName }, session) => {
    const browser = await session.ofKind(idOrName, "browser")
    return json({ browser: browser.browser, endpoint: browser.endpoint() })
  }
})

export const tools: ReadonlyArray<Tool> = [
  createBox, listBoxes, removeBox, runCommand, runCode, readFile, writeFile,
  screenshot, mouseMove, mouseClick, mouseDrag, typeText, pressKey, scroll, browserEndpoint
]

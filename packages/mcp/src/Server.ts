/**
 * The MCP server: BoxLite's tools (Tools.ts) on the official SDK's low-level `Server`, so each
 * tool's input schema comes from effect/Schema (the SDK's `McpServer` takes zod schemas only).
 * A failed tool call is a tool error (`isError`) that names the BoxliteError's tag, as
 * `{ error: { _tag, message, ...fields } }`: the shape the REST API gives errors.
 */
import { asBoxliteError, type Boxlite } from "@boxlite/core/promise"
import { Server as SdkServer } from "@modelcontextprotocol/sdk/server/index.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import { CallToolRequestSchema, type CallToolResult, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js"
import { Session } from "./Session.js"
import { decodeArguments, describe } from "./Tool.js"
import { tools } from "./Tools.js"

export interface ServerOptions {
  /** Reported to the client as the server's version. */
  readonly version?: string
}

/** A BoxliteError's own fields (InvalidOptions' `field`, ExecError's `exitCode`...) as JSON. */
const errorFields = (error: object): Record<string, unknown> =>
  Object.fromEntries(
    Object.entries(error).filter(([key, value]) =>
      !["_tag", "message", "stack", "cause"].includes(key) && (["string", "number", "boolean"].includes(typeof value) || Array.isArray(value))
    )
  )

/** The tool error for anything a tool threw: `<Tag>: <message>`, and the error as structured content. */
export const toolError = (e: unknown): CallToolResult => {
  const error = asBoxliteError(e)
  return {
    isError: true,
    content: [{ type: "text", text: `${error._tag}: ${error.message}` }],
    structuredContent: { error: { _tag: error._tag, message: error.message, ...errorFields(error) } }
  }
}

/**
 * An MCP server whose tools act on `runtime`'s home, and the session of boxes it creates;
 * `close()` ends the connection and removes those boxes (the runtime stays open: its owner closes it).
 */
export const makeServer = (runtime: Boxlite, options: ServerOptions = {}): { readonly server: SdkServer; readonly close: () => Promise<void> } => {
  const session = new Session(runtime)
  const server = new SdkServer({ name: "boxlite", version: options.version ?? "0.1.0" }, {
    capabilities: { tools: {} },
    instructions: "BoxLite runs sandbox micro-VMs on this machine. create_box boots one (kind box, code, computer or browser) and returns its id; " +
      "the other tools take that id (or the box's name). Boxes created in this session are removed when it ends."
  })
  const byName = new Map(tools.map((t) => [t.name, t]))
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools.map(describe) }))
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const tool = byName.get(request.params.name)
    // An unknown tool is a protocol error (the SDK answers it as such), not a tool's failure.
    if (tool === undefined) throw new Error(`unknown tool "${request.params.name}" (tools: ${[...byName.keys()].join(", ")})`)
    try {
      // The client's cancellation (notifications/cancelled) aborts `extra.signal`: commands and cells in flight are stopped.
      return await tool.run(decodeArguments(tool, request.params.arguments) as never, session, extra.signal)
    } catch (e) {
      return toolError(e)
    }
  })
  return {
    server,
    close: async () => {
      await session.close()
      await server.close()
    }
  }
}

/**
 * Serves MCP on `transport` (default: this process's stdin and stdout) until the client goes
 * (its end of stdin, or the transport closing) or `signal` aborts; then removes the session's boxes.
 */
export const serve = async (runtime: Boxlite, options: ServerOptions & { readonly transport?: Transport; readonly signal?: AbortSignal } = {}): Promise<void> => {
  const { server, close } = makeServer(runtime, options)
  const transport = options.transport ?? new StdioServerTransport()
  const ended = new Promise<void>((resolve) => {
    server.onclose = resolve
    options.signal?.addEventListener("abort", () => resolve(), { once: true })
    if (options.signal?.aborted) resolve()
    if (options.transport === undefined) {
      process.stdin.once("end", () => resolve())
      process.stdin.once("close", () => resolve())
    }
  })
  await server.connect(transport)
  await ended
  await close()
}

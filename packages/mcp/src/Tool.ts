/**
 * A tool: its name, what it does for the agent, its arguments as effect/Schema fields (the JSON
 * Schema the client sees is derived from them) and what it does. Arguments are checked field by
 * field, so a bad one is an InvalidOptions naming it, as every other BoxLite entry point does.
 */
import { InvalidOptions, unknownOption } from "@boxlite/core"
import type { CallToolResult, Tool as ToolDescription } from "@modelcontextprotocol/sdk/types.js"
import { Exit, Schema } from "effect"
import type { Session } from "./Session.js"

export interface Tool<F extends Schema.Struct.Fields = Schema.Struct.Fields> {
  readonly name: string
  readonly description: string
  readonly fields: F
  /** `signal` aborts when the client cancels the call. */
  readonly run: (args: Schema.Struct.Type<F>, session: Session, signal: AbortSignal) => Promise<CallToolResult>
}

/** Checks the types: a tool's `run` gets its arguments as its fields decode them. */
export const tool = <F extends Schema.Struct.Fields>(spec: Tool<F>): Tool => spec as unknown as Tool

/** What `tools/list` says of a tool: its input schema from its fields (unknown properties refused). */
export const describe = (tool: Tool): ToolDescription => ({
  name: tool.name,
  description: tool.description,
  // Effect describes a struct of no fields as "not null"; MCP wants an object.
  inputSchema: Object.keys(tool.fields).length === 0
    ? { type: "object", properties: {}, additionalProperties: false }
    : Schema.toJsonSchemaDocument(Schema.Struct(tool.fields), { onExcessProperty: "error" }).schema as ToolDescription["inputSchema"]
})

const isOptional = (schema: Schema.Constraint): boolean => schema.ast.context?.isOptional === true

/** The arguments, each field decoded by its schema; InvalidOptions naming the first bad, missing or unknown one. */
export const decodeArguments = (tool: Tool, args: unknown): Record<string, unknown> => {
  const input = args ?? {}
  if (typeof input !== "object" || Array.isArray(input)) throw new InvalidOptions("arguments", `must be an object (got ${JSON.stringify(args)})`)
  const unknown = unknownOption(input, Object.keys(tool.fields))
  if (unknown) throw unknown
  const decoded: Record<string, unknown> = {}
  for (const [key, schema] of Object.entries(tool.fields)) {
    const value = (input as Record<string, unknown>)[key]
    if (value === undefined) {
      if (!isOptional(schema)) throw new InvalidOptions(key, "is required")
      continue
    }
    const result = Schema.decodeUnknownExit(schema as Schema.Codec<unknown>)(value)
    if (Exit.isFailure(result)) {
      const reason = result.cause.reasons[0]
      const detail = reason && "error" in reason ? String((reason.error as { message?: string }).message) : "invalid value"
      throw new InvalidOptions(key, `${detail.replace(/\n\s*at /, " at ")} (got ${JSON.stringify(value)})`)
    }
    decoded[key] = result.value
  }
  return decoded
}

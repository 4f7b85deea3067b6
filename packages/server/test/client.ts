/**
 * The tests' HTTP client: undici over the unix socket or TCP, and every JSON answer (and every
 * NDJSON line) checked against the committed OpenAPI document's schema for that operation and
 * status. The checker covers the JSON Schema keywords the document uses (it fails on others).
 */
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
import { Agent, request } from "undici"
import { expect } from "vitest"

export const OPENAPI_FILE = fileURLToPath(new URL("../../../openapi/boxlite.v1.json", import.meta.url))
export const document = JSON.parse(fs.readFileSync(OPENAPI_FILE, "utf8")) as any

type Schema = Record<string, any>

const KNOWN = new Set(["type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "enum", "anyOf", "allOf", "$ref", "description", "title", "format", "contentEncoding", "contentMediaType"])

/** Problems of `value` against `schema` (empty: valid). */
export const validate = (schema: Schema, value: unknown, at = "$"): Array<string> => {
  for (const key of Object.keys(schema)) if (!KNOWN.has(key)) return [`${at}: the checker does not know the keyword ${key}`]
  if (schema["$ref"]) {
    const name = String(schema["$ref"]).replace("#/components/schemas/", "")
    const target = document.components.schemas[name]
    return target ? validate(target, value, at) : [`${at}: no schema ${name}`]
  }
  const problems: Array<string> = []
  if (schema["anyOf"] && !(schema["anyOf"] as Array<Schema>).some((s) => validate(s, value, at).length === 0)) problems.push(`${at}: matches none of anyOf (${JSON.stringify(value)?.slice(0, 200)})`)
  for (const s of (schema["allOf"] ?? []) as Array<Schema>) problems.push(...validate(s, value, at))
  if (schema["enum"] && !(schema["enum"] as Array<unknown>).includes(value)) problems.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema["enum"])}`)
  const type = schema["type"]
  if (type !== undefined) {
    const ok = type === "integer" ? Number.isInteger(value)
      : type === "array" ? Array.isArray(value)
      : type === "null" ? value === null
      : type === "object" ? typeof value === "object" && value !== null && !Array.isArray(value)
      : typeof value === type
    if (!ok) return [...problems, `${at}: not ${type} (${JSON.stringify(value)?.slice(0, 200)})`]
  }
  if (type === "object") {
    const object = value as Record<string, unknown>
    const properties = (schema["properties"] ?? {}) as Record<string, Schema>
    for (const key of (schema["required"] ?? []) as Array<string>) if (!(key in object)) problems.push(`${at}.${key}: missing`)
    for (const [key, v] of Object.entries(object)) {
      if (properties[key]) problems.push(...validate(properties[key]!, v, `${at}.${key}`))
      else if (schema["additionalProperties"] === false) problems.push(`${at}.${key}: not in the schema`)
      else if (typeof schema["additionalProperties"] === "object") problems.push(...validate(schema["additionalProperties"], v, `${at}.${key}`))
    }
  }
  if (type === "array") {
    const array = value as Array<unknown>
    const prefix = (schema["prefixItems"] ?? []) as Array<Schema>
    if (schema["minItems"] !== undefined && array.length < schema["minItems"]) problems.push(`${at}: fewer than ${schema["minItems"]} items`)
    if (schema["maxItems"] !== undefined && array.length > schema["maxItems"]) problems.push(`${at}: more than ${schema["maxItems"]} items`)
    array.forEach((item, i) => {
      const s = prefix[i] ?? schema["items"]
      if (s) problems.push(...validate(s, item, `${at}[${i}]`))
    })
  }
  return problems
}

/** The operation of the document that `method path` hits (path templates matched segment by segment). */
export const operationOf = (method: string, url: string): { template: string; operation: any } | undefined => {
  const segments = new URL(url, "http://x").pathname.split("/")
  for (const [template, item] of Object.entries(document.paths as Record<string, any>)) {
    const parts = template.split("/")
    if (parts.length !== segments.length || !item[method.toLowerCase()]) continue
    if (parts.every((p, i) => p.startsWith("{") || p === segments[i])) return { template, operation: item[method.toLowerCase()] }
  }
  return undefined
}

/** Every operation the tests answered, `METHOD template`: the coverage check reads it. */
export const answered = new Set<string>()

/** Checks an answer against the document: its status is documented for the operation, and its JSON (or each NDJSON line) fits. */
const conform = (method: string, path: string, status: number, contentType: string, body: string) => {
  const found = operationOf(method, path)
  expect(found, `${method} ${path} is not in the OpenAPI document`).toBeDefined()
  answered.add(`${method.toUpperCase()} ${found!.template}`)
  const response = found!.operation.responses[String(status)]
  expect(response, `${method} ${path}: status ${status} is not documented`).toBeDefined()
  const content = response.content as Record<string, { schema: Schema }> | undefined
  if (content === undefined) return expect(body).toBe("")
  const media = content[contentType.split(";")[0]!.trim()]
  expect(media, `${method} ${path} ${status}: content type ${contentType} is not documented (${Object.keys(content).join(", ")})`).toBeDefined()
  if (contentType.includes("json") && !contentType.includes("ndjson")) {
    expect(validate(media!.schema, JSON.parse(body))).toEqual([])
  } else if (contentType.includes("ndjson")) {
    for (const line of body.split("\n").filter((l) => l.length > 0)) expect(validate(media!.schema, JSON.parse(line))).toEqual([])
  }
}

export interface Answer {
  readonly status: number
  readonly contentType: string
  readonly body: Buffer
  /** The body as JSON (undefined when empty). */
  readonly json: any
  /** NDJSON lines. */
  readonly lines: Array<any>
}

/** A client of one server: `unix:///path.sock` or `http://127.0.0.1:PORT` (+ token). */
export const client = (url: string, token?: string) => {
  const unix = url.startsWith("unix://") ? url.slice("unix://".length) : undefined
  const dispatcher = new Agent(unix ? { connect: { socketPath: unix } } : {})
  const origin = unix ? "http://localhost" : url
  const send = async (method: string, path: string, options: { json?: unknown; body?: string | Buffer; headers?: Record<string, string>; check?: boolean } = {}): Promise<Answer> => {
    const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers }
    let body: string | Buffer | undefined = options.body
    if (options.json !== undefined) {
      body = JSON.stringify(options.json)
      headers["content-type"] = "application/json"
    }
    const res = await request(`${origin}${path}`, { method: method as "GET", headers, body: body ?? null, dispatcher })
    const bytes = Buffer.from(await res.body.arrayBuffer())
    const contentType = String(res.headers["content-type"] ?? "")
    const text = bytes.toString("utf8")
    if (options.check !== false) conform(method, path, res.statusCode, contentType, contentType.includes("json") ? text : "")
    return {
      status: res.statusCode,
      contentType,
      body: bytes,
      json: contentType.includes("application/json") && text.length > 0 ? JSON.parse(text) : undefined,
      lines: contentType.includes("ndjson") ? text.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l)) : []
    }
  }
  return {
    send,
    get: (path: string) => send("GET", path),
    post: (path: string, json?: unknown) => send("POST", path, json === undefined ? {} : { json }),
    delete: (path: string) => send("DELETE", path),
    /** Runs a command to its end through the API: stdout, stderr, exit. */
    run: async (box: string, command: string, args: Array<string> = [], extra: Record<string, unknown> = {}) => {
      const created = await send("POST", `/v1/boxes/${box}/executions`, { json: { command, args, ...extra } })
      expect(created.status, JSON.stringify(created.json)).toBe(201)
      const out = await send("GET", `/v1/boxes/${box}/executions/${created.json.id}/output`)
      const text = (stream: string) => Buffer.concat(out.lines.filter((l) => l.stream === stream).map((l) => Buffer.from(l.data, "base64"))).toString()
      return { id: created.json.id as string, stdout: text("stdout"), stderr: text("stderr"), last: out.lines.at(-1) }
    },
    dispatcher,
    origin,
    close: () => dispatcher.close()
  }
}

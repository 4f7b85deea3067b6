/**
 * `<home>/config.json`: the settings of a home that every entry point shares (`new Boxlite()`,
 * `boxlite/effect`'s layer, the CLI, `boxlite serve` and the clients behind it, `boxlite mcp`),
 * so a registry mirror or a box default is written once. Read when a runtime opens its home;
 * what code passes wins (mergeRegistries, resolveBoxOptions).
 *
 * ```json
 * {
 *   "registries": { "docker.io": { "mirrors": ["http://127.0.0.1:5000"] }, "ghcr.io": { "auth": { "token": "..." } } },
 *   "defaults": { "memoryMib": 1024, "env": { "PIP_INDEX_URL": "http://10.0.2.2:3141/simple" } }
 * }
 * ```
 */
import type { RegistryConfig } from "@boxlite/oci"
import { Effect, Exit, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { InvalidOptions } from "./Errors.js"
import { type BoxDefaults, unknownOption, validateBoxDefaults } from "./Options.js"

/** The file's name in the home directory. */
export const CONFIG_FILE = "config.json"

export interface HomeConfig {
  /** Per registry host, as the runtime's `registries` option. */
  readonly registries?: Readonly<Record<string, RegistryConfig>>
  /** Options of every new box that create() does not give (BOX_DEFAULT_KEYS). */
  readonly defaults?: BoxDefaults
}

const CONFIG_KEYS = ["registries", "defaults"] satisfies ReadonlyArray<keyof HomeConfig>

const check = <T>(predicate: (value: T) => boolean, message: string) =>
  Schema.makeFilter<T>((value) => (predicate(value) ? undefined : message))

/** As the registry client reads it: a URL, `https://` when it names no scheme. */
const isMirrorUrl = (s: string) => {
  const url = s.includes("://") ? s : `https://${s}`
  return URL.canParse(url) && ["http:", "https:"].includes(new URL(url).protocol)
}

const registryFields = {
  mirrors: Schema.Array(Schema.String.check(check(isMirrorUrl, "mirrors are http:// or https:// URLs (a bare host means https)"))),
  insecure: Schema.Boolean,
  ca: Schema.String.check(check((s: string) => s.includes("-----BEGIN CERTIFICATE-----"), "must be a PEM certificate (the text, not a file name)")),
  // Checked as a record, so that a token given beside a user and password is refused, not dropped.
  auth: Schema.Record(Schema.String, Schema.String).check(check(
    (a: Readonly<Record<string, string>>) => {
      const keys = Object.keys(a).sort().join()
      return (keys === "password,username" && a["username"] !== "") || (keys === "token" && a["token"] !== "")
    },
    "must be { username, password } or { token }"
  ))
} satisfies Record<keyof RegistryConfig, Schema.Top>

/** The first problem with `value` against `schema`, as a message with what was given. */
const problemOf = (schema: Schema.Top, value: unknown): string | undefined => {
  const result = Schema.decodeUnknownExit(schema as Schema.Codec<unknown>)(value)
  if (Exit.isSuccess(result)) return undefined
  const reason = result.cause.reasons[0]
  const detail = reason && "error" in reason ? String((reason.error as { message?: string }).message).replace(/\n[\s\S]*$/, "") : "invalid value"
  return `${detail} (got ${JSON.stringify(value)})`
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Validates a `registries` value (the runtime option, or config.json's): an object of hosts,
 * each with known fields of the right shape. InvalidOptions names `<field>["host"].mirrors`.
 */
export const validateRegistries = (input: unknown, field = "registries"): Effect.Effect<Readonly<Record<string, RegistryConfig>>, InvalidOptions> =>
  Effect.suspend(() => {
    if (input === undefined) return Effect.succeed({})
    if (!isRecord(input)) return Effect.fail(new InvalidOptions(field, `must be an object of registry hosts (got ${JSON.stringify(input)})`))
    for (const [host, config] of Object.entries(input)) {
      const at = `${field}[${JSON.stringify(host)}]`
      if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(host)) return Effect.fail(new InvalidOptions(at, "must be a registry host (docker.io, ghcr.io, 127.0.0.1:5000), without a scheme or path"))
      if (!isRecord(config)) return Effect.fail(new InvalidOptions(at, `must be an object (got ${JSON.stringify(config)})`))
      const unknown = unknownOption(config, Object.keys(registryFields), `${at}.`)
      if (unknown) return Effect.fail(unknown)
      for (const [key, value] of Object.entries(config)) {
        if (value === undefined) continue
        const problem = problemOf(registryFields[key as keyof RegistryConfig], value)
        if (problem !== undefined) return Effect.fail(new InvalidOptions(`${at}.${key}`, problem))
      }
    }
    return Effect.succeed(input as Readonly<Record<string, RegistryConfig>>)
  })

/** The problem of an InvalidOptions, without its `invalid option "field": ` prefix. */
const problemText = (e: InvalidOptions) => e.message.replace(/^invalid option "(?:[^"\\]|\\.)*": /, "")

/**
 * config.json's content, validated: InvalidOptions whose field is `config.json:<field>` (e.g.
 * `config.json:defaults.memoryMib`) and whose message names the file.
 */
export const decodeConfig = (json: unknown, file: string): Effect.Effect<HomeConfig, InvalidOptions> =>
  Effect.gen(function*() {
    if (!isRecord(json)) return yield* new InvalidOptions(CONFIG_FILE, `${file} must hold a JSON object (got ${JSON.stringify(json)})`)
    const unknown = unknownOption(json, CONFIG_KEYS)
    if (unknown) return yield* unknown
    const registries = yield* validateRegistries(json["registries"])
    const defaults = yield* validateBoxDefaults(json["defaults"], "defaults")
    return {
      ...(json["registries"] !== undefined ? { registries } : {}),
      ...(json["defaults"] !== undefined ? { defaults } : {})
    }
  }).pipe(Effect.mapError((e) => (e.field === CONFIG_FILE ? e : new InvalidOptions(`${CONFIG_FILE}:${e.field}`, `${problemText(e)} (in ${file})`))))

/** `<homeDir>/config.json`, validated; none is an empty config. An unreadable or malformed file is InvalidOptions("config.json"). */
export const readConfig = (homeDir: string): Effect.Effect<HomeConfig, InvalidOptions> =>
  Effect.gen(function*() {
    const file = path.join(homeDir, CONFIG_FILE)
    const text = yield* Effect.tryPromise({
      try: () => fs.readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : Promise.reject(e))),
      catch: (e) => new InvalidOptions(CONFIG_FILE, `cannot read ${file}: ${(e as Error).message}`)
    })
    if (text === undefined) return {}
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => new InvalidOptions(CONFIG_FILE, `${file} is not valid JSON: ${(e as Error).message}`)
    })
    return yield* decodeConfig(json, file)
  })

/**
 * The registries a runtime uses: config.json's, with those passed in code on top. A host in
 * both gets each field from code if code gives it, else from the file (so `--insecure-registry
 * docker.io` on the command line keeps the file's docker.io mirrors).
 */
export const mergeRegistries = (
  fromConfig: Readonly<Record<string, RegistryConfig>> = {},
  fromCode: Readonly<Record<string, RegistryConfig>> = {}
): Readonly<Record<string, RegistryConfig>> => {
  const merged: Record<string, RegistryConfig> = { ...fromConfig }
  for (const [host, config] of Object.entries(fromCode)) {
    const defined = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined))
    merged[host] = { ...fromConfig[host], ...defined }
  }
  return merged
}

#!/usr/bin/env node
/**
 * `boxlite run [options] IMAGE [--] COMMAND [ARGS...]`: runs a command in a fresh box,
 * streaming its output, and exits with its exit code. `boxlite info`: what this host runs.
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { Boxlite, BoxliteError } from "./index.js"

const USAGE = `usage:
  boxlite run [REGISTRY OPTIONS] [--cpus N] [--memory MIB] [-e KEY=VALUE]... [-w DIR] [--timeout MS] IMAGE [--] COMMAND [ARGS...]
  boxlite pull [REGISTRY OPTIONS] IMAGE
  boxlite images
  boxlite info
IMAGE: a registry image (python:slim, ghcr.io/o/r:tag, host:port/repo@sha256:...) or an OCI
layout (oci:/path/to/layout[:tag]). Home: $BOXLITE_HOME or ~/.boxlite.
REGISTRY OPTIONS: --mirror REGISTRY=URL (repeatable, e.g. docker.io=http://127.0.0.1:5000),
  --insecure-registry HOST (plain HTTP), --ca REGISTRY=FILE (extra CA, PEM).`

const registryOptions = {
  mirror: { type: "string", multiple: true },
  "insecure-registry": { type: "string", multiple: true },
  ca: { type: "string", multiple: true }
} as const

type Registries = Record<string, { mirrors?: Array<string>; insecure?: boolean; ca?: string }>

/** --mirror/--insecure-registry/--ca into the runtime's `registries` option. */
const registriesFrom = (values: { mirror?: Array<string>; "insecure-registry"?: Array<string>; ca?: Array<string> }): Registries => {
  const registries: Registries = {}
  const entry = (host: string) => (registries[host] ??= {})
  const split = (flag: string, value: string) => {
    const eq = value.indexOf("=")
    if (eq <= 0) throw new Error(`--${flag} takes REGISTRY=VALUE (got "${value}")`)
    return [value.slice(0, eq), value.slice(eq + 1)] as const
  }
  for (const m of values.mirror ?? []) {
    const [host, url] = split("mirror", m)
    ;(entry(host).mirrors ??= []).push(url)
  }
  for (const host of values["insecure-registry"] ?? []) entry(host).insecure = true
  for (const c of values.ca ?? []) {
    const [host, file] = split("ca", c)
    entry(host).ca = readFileSync(file, "utf8")
  }
  return registries
}

/** Runs `f` with a runtime that is closed afterwards, whatever happens. */
const withRuntime = async <A>(options: ConstructorParameters<typeof Boxlite>[0], f: (runtime: Boxlite) => Promise<A>): Promise<A> => {
  const runtime = new Boxlite(options)
  try {
    return await f(runtime)
  } finally {
    await runtime.close()
  }
}

const run = async (argv: Array<string>): Promise<number> => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...registryOptions,
      cpus: { type: "string" },
      memory: { type: "string" },
      env: { type: "string", short: "e", multiple: true },
      workdir: { type: "string", short: "w" },
      timeout: { type: "string" }
    }
  })
  const [image, command, ...args] = positionals
  if (!image || !command) {
    process.stderr.write(`${USAGE}\n`)
    return 2
  }
  const env = (values.env ?? []).map((kv) => {
    const eq = kv.indexOf("=")
    return (eq < 0 ? [kv, process.env[kv] ?? ""] : [kv.slice(0, eq), kv.slice(eq + 1)]) as [string, string]
  })
  return withRuntime({ registries: registriesFrom(values) }, async (runtime) => {
    await using box = await runtime.create({
      image,
      env,
      ...(values.cpus !== undefined ? { cpus: Number(values.cpus) } : {}),
      ...(values.memory !== undefined ? { memoryMib: Number(values.memory) } : {}),
      ...(values.workdir !== undefined ? { workingDir: values.workdir } : {})
    })
    const execution = await box.exec(command, args, values.timeout !== undefined ? { timeoutMs: Number(values.timeout) } : undefined)
    const pipe = async (source: AsyncIterable<Uint8Array>, sink: NodeJS.WriteStream) => {
      for await (const chunk of source) if (!sink.write(chunk)) await new Promise((r) => sink.once("drain", r))
    }
    await Promise.all([pipe(execution.stdout().bytes(), process.stdout), pipe(execution.stderr().bytes(), process.stderr)])
    const result = await execution.wait()
    return result.exitCode
  })
}

const pull = async (argv: Array<string>): Promise<number> => {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: registryOptions })
  const [image] = positionals
  if (!image) {
    process.stderr.write(`${USAGE}\n`)
    return 2
  }
  const mb = (n: number) => (n / 1e6).toFixed(1)
  return withRuntime({ registries: registriesFrom(values) }, async (runtime) => {
    const pulled = await runtime.images.pull(image, {
      onProgress: (p) => {
        if (!process.stderr.isTTY && p.phase !== "done") return
        const layers = p.layers.filter((l) => l.downloadedBytes === l.totalBytes).length
        process.stderr.write(`\r${p.phase}: ${mb(p.downloadedBytes)}/${mb(p.totalBytes)} MB, ${layers}/${p.layers.length} layers${p.phase === "done" ? "\n" : ""}`)
      }
    })
    process.stdout.write(`${pulled.reference} ${pulled.manifestDigest}\n`)
    return 0
  })
}

const images = (): Promise<number> =>
  withRuntime({}, async (runtime) => {
    for (const image of await runtime.images.list()) {
      process.stdout.write(`${image.reference}\t${image.manifestDigest.slice(0, 19)}\t${(image.size / 1e6).toFixed(1)} MB\t${image.pulledAt}\n`)
    }
    return 0
  })

const info = (): Promise<number> =>
  withRuntime({}, async (runtime) => {
    process.stdout.write(`${JSON.stringify(await runtime.info(), null, 2)}\n`)
    return 0
  })

const main = async () => {
  const [subcommand, ...rest] = process.argv.slice(2)
  try {
    if (subcommand === "run") return await run(rest)
    if (subcommand === "pull") return await pull(rest)
    if (subcommand === "images") return await images()
    if (subcommand === "info") return await info()
    process.stderr.write(`${USAGE}\n`)
    return 2
  } catch (e) {
    process.stderr.write(`boxlite: ${e instanceof BoxliteError ? `${e._tag}: ${e.message}` : e instanceof Error ? e.message : String(e)}\n`)
    return 125
  }
}

process.exitCode = await main()

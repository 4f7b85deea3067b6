#!/usr/bin/env node
/**
 * `boxlite run [options] IMAGE [--] COMMAND [ARGS...]`: runs a command in a fresh box,
 * streaming its output, and exits with its exit code. `create` makes a detached box that
 * later commands (`exec`, `ls`, `metrics`, `stop`, `rm`) reach by id or name from any process.
 * `boxlite info`: what this host runs.
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { attachTerminal } from "@boxlite/boxes"
import { type Box, Boxlite, BoxliteError, InvalidOptions } from "./index.js"

const USAGE = `usage:
  boxlite run [REGISTRY OPTIONS] [--cpus N] [--memory MIB] [-e KEY=VALUE]... [-w DIR] [--timeout MS] IMAGE [--] COMMAND [ARGS...]
  boxlite create [REGISTRY OPTIONS] [--name NAME] [--keep] [--cpus N] [--memory MIB] IMAGE   (prints the box id)
  boxlite exec [-t] [-e KEY=VALUE]... [-w DIR] [--timeout MS] BOX [--] COMMAND [ARGS...]   (-t: on a terminal)
  boxlite ls
  boxlite metrics BOX
  boxlite start BOX   (boots a stopped box; restarts a failed one)
  boxlite stop BOX
  boxlite rm [-f] BOX
  boxlite pull [REGISTRY OPTIONS] IMAGE
  boxlite images
  boxlite info
BOX: a box id or name. A created box is detached: it runs until \`stop\` (then it is removed,
unless --keep).
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
    if (eq <= 0) throw new InvalidOptions("registries", `--${flag} takes REGISTRY=VALUE (got "${value}")`)
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

const boxOptions = {
  cpus: { type: "string" },
  memory: { type: "string" }
} as const

const execOptions = {
  env: { type: "string", short: "e", multiple: true },
  workdir: { type: "string", short: "w" },
  timeout: { type: "string" }
} as const

const usage = (): number => {
  process.stderr.write(`${USAGE}\n`)
  return 2
}

const resources = (values: { cpus?: string; memory?: string }) => ({
  ...(values.cpus !== undefined ? { cpus: Number(values.cpus) } : {}),
  ...(values.memory !== undefined ? { memoryMib: Number(values.memory) } : {})
})

type ExecValues = { env?: Array<string>; workdir?: string; timeout?: string }

/** -e, -w and --timeout as ExecOptions (`-e KEY` passes this process's value). */
const execOptionsOf = (values: ExecValues) => ({
  env: (values.env ?? []).map((kv) => {
    const eq = kv.indexOf("=")
    return (eq < 0 ? [kv, process.env[kv] ?? ""] : [kv.slice(0, eq), kv.slice(eq + 1)]) as [string, string]
  }),
  ...(values.workdir !== undefined ? { workingDir: values.workdir } : {}),
  ...(values.timeout !== undefined ? { timeoutMs: Number(values.timeout) } : {})
})

/** Runs the command in `box`, streaming its output to ours; resolves with its exit code. */
const execIn = async (box: Box, command: string, args: Array<string>, values: ExecValues): Promise<number> => {
  const execution = await box.exec(command, args, execOptionsOf(values))
  const pipe = async (source: AsyncIterable<Uint8Array>, sink: NodeJS.WriteStream) => {
    for await (const chunk of source) if (!sink.write(chunk)) await new Promise((r) => sink.once("drain", r))
  }
  await Promise.all([pipe(execution.stdout().bytes(), process.stdout), pipe(execution.stderr().bytes(), process.stderr)])
  return (await execution.wait()).exitCode
}

const run = async (argv: Array<string>): Promise<number> => {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...registryOptions, ...boxOptions, ...execOptions } })
  const [image, command, ...args] = positionals
  if (!image || !command) return usage()
  return withRuntime({ registries: registriesFrom(values) }, async (runtime) => {
    await using box = await runtime.create({ image, ...resources(values) })
    // Awaited here: returning the promise would leave this block, and dispose of (stop) the box,
    // while the command still runs.
    return await execIn(box, command, args, values)
  })
}

const create = async (argv: Array<string>): Promise<number> => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...registryOptions, ...boxOptions, name: { type: "string" }, keep: { type: "boolean" } }
  })
  const [image] = positionals
  if (!image) return usage()
  return withRuntime({ registries: registriesFrom(values) }, async (runtime) => {
    const box = await runtime.create({
      image,
      detach: true,
      autoRemove: !values.keep,
      ...(values.name !== undefined ? { name: values.name } : {}),
      ...resources(values)
    })
    await box.start()
    process.stdout.write(`${box.id}\n`)
    return 0
  })
}

const exec = async (argv: Array<string>): Promise<number> => {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...execOptions, tty: { type: "boolean", short: "t" } } })
  const [id, command, ...args] = positionals
  if (!id || !command) return usage()
  return withRuntime({}, async (runtime) => {
    const box = await runtime.get(id)
    return values.tty ? attachTerminal(box, { command: [command, ...args], exec: execOptionsOf(values) }) : execIn(box, command, args, values)
  })
}

const ls = (): Promise<number> =>
  withRuntime({}, async (runtime) => {
    process.stdout.write("ID\tNAME\tSTATUS\tIMAGE\tCPUS\tMEMORY\tPID\tCREATED\tREASON\n")
    for (const b of await runtime.list()) {
      process.stdout.write(`${b.id}\t${b.name ?? "-"}\t${b.status}\t${b.image}\t${b.cpus}\t${b.memoryMib} MiB\t${b.pid ?? "-"}\t${b.createdAt.toISOString()}\t${b.reason ?? "-"}\n`)
    }
    return 0
  })

/** `start`, `stop`, `rm` and `metrics`: one box by id or name. */
const onBox = async (argv: Array<string>, f: (runtime: Boxlite, id: string, force: boolean) => Promise<void>): Promise<number> => {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { force: { type: "boolean", short: "f" } } })
  const [id] = positionals
  if (!id) return usage()
  return withRuntime({}, async (runtime) => {
    await f(runtime, id, values.force ?? false)
    return 0
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
    if (subcommand === "create") return await create(rest)
    if (subcommand === "exec") return await exec(rest)
    if (subcommand === "ls") return await ls()
    if (subcommand === "start") return await onBox(rest, async (runtime, id) => (await runtime.get(id)).start())
    if (subcommand === "stop") return await onBox(rest, async (runtime, id) => (await runtime.get(id)).stop())
    if (subcommand === "rm") return await onBox(rest, (runtime, id, force) => runtime.remove(id, { force }))
    if (subcommand === "metrics") {
      return await onBox(rest, async (runtime, id) => void process.stdout.write(`${JSON.stringify(await (await runtime.get(id)).metrics(), null, 2)}\n`))
    }
    if (subcommand === "pull") return await pull(rest)
    if (subcommand === "images") return await images()
    if (subcommand === "info") return await info()
    return usage()
  } catch (e) {
    process.stderr.write(`boxlite: ${e instanceof BoxliteError ? `${e._tag}: ${e.message}` : e instanceof Error ? e.message : String(e)}\n`)
    return 125
  }
}

process.exitCode = await main()

#!/usr/bin/env node
/**
 * `boxlite run [options] IMAGE [--] COMMAND [ARGS...]`: runs a command in a fresh box,
 * streaming its output, and exits with its exit code. `boxlite info`: what this host runs.
 */
import { parseArgs } from "node:util"
import { Boxlite, BoxliteError } from "./index.js"

const USAGE = `usage:
  boxlite run [--cpus N] [--memory MIB] [-e KEY=VALUE]... [-w DIR] [--timeout MS] IMAGE [--] COMMAND [ARGS...]
  boxlite info
IMAGE: an OCI layout (oci:/path/to/layout[:tag]). Home: $BOXLITE_HOME or ~/.boxlite.`

const run = async (argv: Array<string>): Promise<number> => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
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
  const runtime = new Boxlite()
  try {
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
  } finally {
    await runtime.close()
  }
}

const info = async (): Promise<number> => {
  const runtime = new Boxlite()
  try {
    process.stdout.write(`${JSON.stringify(await runtime.info(), null, 2)}\n`)
    return 0
  } finally {
    await runtime.close()
  }
}

const main = async () => {
  const [subcommand, ...rest] = process.argv.slice(2)
  try {
    if (subcommand === "run") return await run(rest)
    if (subcommand === "info") return await info()
    process.stderr.write(`${USAGE}\n`)
    return 2
  } catch (e) {
    process.stderr.write(`boxlite: ${e instanceof BoxliteError ? `${e._tag}: ${e.message}` : e instanceof Error ? e.message : String(e)}\n`)
    return 125
  }
}

process.exitCode = await main()

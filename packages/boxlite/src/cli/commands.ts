/**
 * The `boxlite` commands, on Effect's CLI library (flags, arguments, generated help and
 * completions). Each handler opens the runtime of `$BOXLITE_HOME` (default `~/.boxlite`),
 * does its work through the Promise face and closes it: every command is its own process,
 * and boxes are reached through their supervisors.
 */
import { attachTerminal } from "@boxlite/boxes"
import { defaultHomeDir } from "@boxlite/core"
import { Data, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { createInterface } from "node:readline"
import { PassThrough } from "node:stream"
import { type Box, Boxlite, BoxNotFound, BoxStateError, InvalidOptions, type RegistryConfig, version as packageVersion } from "../index.js"
import { boxTable, imageTable, progressBar, progressLines, size, snapshotTable } from "./format.js"
import { printLogs } from "./logs.js"

/** A command that ran and ended with this exit code (not 0): the process exits with it. */
export class Exited extends Data.TaggedError("Exited")<{ readonly code: number }> {}

export const VERSION: string = packageVersion

/** A handler from an async function returning the exit code (void: 0). */
const act = <I>(f: (input: I) => Promise<number | void>) => (input: I) =>
  Effect.flatMap(Effect.tryPromise({ try: () => f(input), catch: (e) => e }), (code) => (code ? Effect.fail(new Exited({ code })) : Effect.void))

/** Runs `f` with the runtime of the home directory, closed afterwards whatever happens. */
const withRuntime = async <A>(options: ConstructorParameters<typeof Boxlite>[0], f: (runtime: Boxlite) => Promise<A>): Promise<A> => {
  const runtime = new Boxlite(options)
  try {
    return await f(runtime)
  } finally {
    await runtime.close()
  }
}

const out = (text: string) => void process.stdout.write(text)
const json = (value: unknown) => out(`${JSON.stringify(value, null, 2)}\n`)
const undefinedIfNone = <A>(o: Option.Option<A>) => Option.getOrUndefined(o)

// ---- Flags shared by several commands ----

const registryFlags = {
  mirror: Flag.String("mirror").pipe(Flag.withMetavar("REGISTRY=URL"), Flag.atLeast(0), Flag.withDescription("Pull REGISTRY's images from URL first (repeatable), e.g. docker.io=http://127.0.0.1:5000")),
  insecureRegistry: Flag.String("insecure-registry").pipe(Flag.withMetavar("HOST"), Flag.atLeast(0), Flag.withDescription("Talk plain HTTP to this registry (repeatable)")),
  ca: Flag.String("ca").pipe(Flag.withMetavar("REGISTRY=FILE"), Flag.atLeast(0), Flag.withDescription("Trust the CA certificate (PEM) in FILE for REGISTRY (repeatable)"))
}

const boxFlags = {
  name: Flag.String("name").pipe(Flag.optional, Flag.withDescription("Name the box (unique in the home directory)")),
  cpus: Flag.Int("cpus").pipe(Flag.optional, Flag.withDescription("vCPUs (default 1)")),
  memory: Flag.Int("memory").pipe(Flag.withAlias("m"), Flag.withMetavar("MIB"), Flag.optional, Flag.withDescription("Guest memory in MiB (default 512)")),
  warm: Flag.Boolean("warm").pipe(Flag.withDefault(false), Flag.withDescription("Start from a saved template of this image and shape (made by the first --warm box)"))
}

const execFlags = {
  env: Flag.String("env").pipe(Flag.withAlias("e"), Flag.withMetavar("KEY=VALUE"), Flag.atLeast(0), Flag.withDescription("Set an environment variable (repeatable; KEY alone passes this shell's value)")),
  workdir: Flag.String("workdir").pipe(Flag.withAlias("w"), Flag.withMetavar("DIR"), Flag.optional, Flag.withDescription("Working directory of the command")),
  timeout: Flag.Int("timeout").pipe(Flag.withMetavar("MS"), Flag.optional, Flag.withDescription("Kill the command after MS milliseconds")),
  interactive: Flag.Boolean("interactive").pipe(Flag.withDefault(false), Flag.withAlias("i"), Flag.withDescription("Keep STDIN open: pass this process's input to the command")),
  tty: Flag.Boolean("tty").pipe(Flag.withDefault(false), Flag.withAlias("t"), Flag.withDescription("Run the command on a terminal (-it: an interactive one)"))
}

const boxArgument = Argument.String("box").pipe(Argument.withDescription("A box id or name"))
const boxesArgument = boxArgument.pipe(Argument.atLeast(1))
const commandArgument = Argument.String("command").pipe(Argument.atLeast(1), Argument.withDescription("The command and its arguments (after IMAGE or BOX, or after --)"))

type Registries = Record<string, { mirrors?: Array<string>; insecure?: boolean; ca?: string }>

/** --mirror/--insecure-registry/--ca into the runtime's `registries` option. */
const registriesFrom = (flags: { mirror: ReadonlyArray<string>; insecureRegistry: ReadonlyArray<string>; ca: ReadonlyArray<string> }): Readonly<Record<string, RegistryConfig>> => {
  const registries: Registries = {}
  const entry = (host: string) => (registries[host] ??= {})
  const split = (flag: string, value: string) => {
    const eq = value.indexOf("=")
    if (eq <= 0) throw new InvalidOptions(`--${flag}`, `takes REGISTRY=VALUE (got "${value}")`)
    return [value.slice(0, eq), value.slice(eq + 1)] as const
  }
  for (const m of flags.mirror) {
    const [host, url] = split("mirror", m)
    ;(entry(host).mirrors ??= []).push(url)
  }
  for (const host of flags.insecureRegistry) entry(host).insecure = true
  for (const c of flags.ca) {
    const [host, file] = split("ca", c)
    entry(host).ca = readFileSync(file, "utf8")
  }
  return registries
}

const boxOptionsOf = (flags: { name: Option.Option<string>; cpus: Option.Option<number>; memory: Option.Option<number>; warm: boolean }) => {
  const name = undefinedIfNone(flags.name)
  const cpus = undefinedIfNone(flags.cpus)
  const memoryMib = undefinedIfNone(flags.memory)
  return {
    ...(name !== undefined ? { name } : {}),
    ...(cpus !== undefined ? { cpus } : {}),
    ...(memoryMib !== undefined ? { memoryMib } : {}),
    ...(flags.warm ? { warm: true } : {})
  }
}

type ExecFlags = {
  readonly env: ReadonlyArray<string>
  readonly workdir: Option.Option<string>
  readonly timeout: Option.Option<number>
  readonly interactive: boolean
  readonly tty: boolean
}

/** -e, -w and --timeout as ExecOptions (`-e KEY` passes this process's value, as Docker does). */
const execOptionsOf = (flags: ExecFlags) => {
  const workingDir = undefinedIfNone(flags.workdir)
  const timeoutMs = undefinedIfNone(flags.timeout)
  return {
    env: flags.env.map((kv) => {
      const eq = kv.indexOf("=")
      return (eq < 0 ? [kv, process.env[kv] ?? ""] : [kv.slice(0, eq), kv.slice(eq + 1)]) as [string, string]
    }),
    ...(workingDir !== undefined ? { workingDir } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {})
  }
}

/**
 * Runs the command in `box` as Docker would: -t on a terminal (our input only with -i), else
 * its stdout and stderr to ours and our stdin to it with -i (else it reads end-of-file at once).
 * Resolves with its exit code.
 */
const execIn = async (box: Box, [command, ...args]: ReadonlyArray<string>, flags: ExecFlags): Promise<number> => {
  const options = execOptionsOf(flags)
  if (flags.tty) return attachTerminal(box, { command: [command!, ...args], exec: options, input: flags.interactive ? process.stdin : new PassThrough() })
  const execution = await box.exec(command!, args, options)
  const stdin = execution.stdin()
  const stopFeeding = flags.interactive ? feed(process.stdin, stdin) : (await stdin.close(), () => undefined)
  const pipe = async (source: AsyncIterable<Uint8Array>, sink: NodeJS.WriteStream) => {
    for await (const chunk of source) if (!sink.write(chunk)) await new Promise((r) => sink.once("drain", r))
  }
  try {
    await Promise.all([pipe(execution.stdout().bytes(), process.stdout), pipe(execution.stderr().bytes(), process.stderr)])
    return (await execution.wait()).exitCode
  } finally {
    // A command that ends before its input does not wait for it.
    stopFeeding()
  }
}

/**
 * Copies `input` to the command's stdin in order, one chunk at a time (the guest's flow
 * control), and closes it when `input` ends. Returns how to stop early.
 */
const feed = (input: NodeJS.ReadStream, stdin: { write(data: Uint8Array): Promise<void>; close(): Promise<void> }): (() => void) => {
  let writing = Promise.resolve()
  let stopped = false
  const stop = () => {
    stopped = true
    input.off("data", onData)
    input.off("end", onEnd)
    input.pause()
  }
  const onData = (data: Buffer) => {
    input.pause()
    writing = writing.then(() => stdin.write(data)).then(() => void (stopped || input.resume()), stop)
  }
  const onEnd = () => {
    writing = writing.then(() => stdin.close()).catch(() => undefined)
  }
  input.on("data", onData)
  input.once("end", onEnd)
  input.resume()
  return stop
}

// ---- Commands ----

const run = Command.make("run", {
  ...registryFlags,
  ...boxFlags,
  ...execFlags,
  rm: Flag.Boolean("rm").pipe(Flag.withDefault(false), Flag.withDescription("Remove the box when the command exits (always so: use create + exec to keep one)")),
  image: Argument.String("image").pipe(Argument.withDescription("A registry image (python:slim, ghcr.io/o/r:tag) or an OCI layout (oci:/path[:tag])")),
  command: commandArgument
}, act((flags) =>
  withRuntime({ registries: registriesFrom(flags) }, async (runtime) => {
    await using box = await runtime.create({ image: flags.image, ...boxOptionsOf(flags) })
    // Awaited here: returning the promise would leave this block, and dispose of (stop) the
    // box, while the command still runs.
    return await execIn(box, flags.command, flags)
  }))).pipe(
    Command.withDescription("Run a command in a new box, print its output and exit with its code; the box is removed afterwards"),
    Command.withExamples([
      { command: "boxlite run python:slim python -c 'print(1 + 1)'", description: "Output and exit code of one command" },
      { command: "boxlite run -it python:slim sh", description: "An interactive shell" }
    ])
  )

const create = Command.make("create", {
  ...registryFlags,
  ...boxFlags,
  keep: Flag.Boolean("keep").pipe(Flag.withDefault(false), Flag.withDescription("Keep the box when it stops (default: stop removes it)")),
  image: Argument.String("image").pipe(Argument.withDescription("The image, as for run"))
}, act((flags) =>
  withRuntime({ registries: registriesFrom(flags) }, async (runtime) => {
    const box = await runtime.create({ image: flags.image, detach: true, autoRemove: !flags.keep, ...boxOptionsOf(flags) })
    await box.start()
    out(`${box.id}\n`)
  }))).pipe(Command.withDescription("Create and start a detached box that runs until `stop`; prints its id"))

/** Docker's rule: `NAME:PATH` is in a box; a host path with a colon starts with / or . */
const boxPath = (arg: string) => {
  const m = /^([^/.:][^/:]*):(.*)$/.exec(arg)
  return m ? { box: m[1]!, path: m[2]! } : undefined
}

const cp = Command.make("cp", {
  source: Argument.String("source").pipe(Argument.withDescription("A host path or BOX:PATH")),
  destination: Argument.String("destination").pipe(Argument.withDescription("A host path or BOX:PATH"))
}, act(({ source, destination }) => withRuntime({}, async (runtime) => {
  const from = boxPath(source)
  const to = boxPath(destination)
  if (from && !to) return (await runtime.get(from.box)).copyOut(from.path, destination)
  if (to && !from) return (await runtime.get(to.box)).copyIn(source, to.path)
  throw new InvalidOptions("cp", "give one BOX:PATH and one host path")
}))).pipe(Command.withDescription("Copy files or directory trees between the host and a box (modes and symlinks kept, as docker cp)"))

const exec = Command.make("exec", { ...execFlags, box: boxArgument, command: commandArgument }, act((flags) =>
  withRuntime({}, async (runtime) => execIn(await runtime.get(flags.box), flags.command, flags)))).pipe(
    Command.withDescription("Run a command in a running box; exits with its code")
  )

const ls = Command.make("ls", {
  quiet: Flag.Boolean("quiet").pipe(Flag.withDefault(false), Flag.withAlias("q"), Flag.withDescription("Only the box ids"))
}, act(({ quiet }) =>
  withRuntime({}, async (runtime) => {
    const boxes = await runtime.list()
    out(quiet ? boxes.map((b) => `${b.id}\n`).join("") : boxTable(boxes))
  }))).pipe(Command.withAlias("ps"), Command.withDescription("List every box, running or not (docker ps -a); a failed box with why"))

/** A command on one or more boxes by id or name: prints each as given once done, as Docker does. */
const onBoxes = (name: string, description: string, f: (runtime: Boxlite, box: string) => Promise<void>) =>
  Command.make(name, { boxes: boxesArgument }, act(({ boxes }) =>
    withRuntime({}, async (runtime) => {
      for (const box of boxes) {
        await f(runtime, box)
        out(`${box}\n`)
      }
    }))).pipe(Command.withDescription(description))

const start = onBoxes("start", "Boot stopped boxes; restart failed ones", async (runtime, box) => (await runtime.get(box)).start())
const stop = onBoxes("stop", "Stop boxes (each is removed too, unless it was created with --keep)", async (runtime, box) => (await runtime.get(box)).stop())
const restart = onBoxes("restart", "Stop and start boxes (created with --keep: stopping removes the others)", async (runtime, id) => {
  const box = await runtime.get(id)
  const info = await box.info()
  if (info.autoRemove) throw new BoxStateError(`box ${id} is removed when it stops, so it cannot be restarted: create it with --keep`)
  await box.stop()
  await box.start()
})

const pause = onBoxes("pause", "Stop the vCPUs of running boxes: memory and processes stay, execs wait for resume", async (runtime, box) => (await runtime.get(box)).pause())
const resume = onBoxes("resume", "Run paused boxes again; start suspended ones where they were saved", async (runtime, box) => (await runtime.get(box)).resume()).pipe(
  Command.withAlias("unpause")
)
const suspend = onBoxes("suspend", "Save running boxes to disk and end their VMs (no memory held); the next start, exec or resume goes on", async (runtime, box) =>
  (await runtime.get(box)).suspend())

const snapshotArgument = Argument.String("snapshot").pipe(Argument.withDescription("A snapshot id or name"))

const snapshotCreate = Command.make("create", {
  name: Flag.String("name").pipe(Flag.optional, Flag.withDescription("Name the snapshot (unique in the home directory)")),
  box: boxArgument
}, act(({ box, name }) =>
  withRuntime({}, async (runtime) => {
    const snapshot = await (await runtime.get(box)).snapshot({ ...(Option.isSome(name) ? { name: name.value } : {}) })
    out(`${snapshot.id}
`)
  }))).pipe(Command.withDescription("Save a running box's memory, devices and disk; the box runs on. Prints the snapshot id"))

const snapshotLs = Command.make("ls", {}, act(() => withRuntime({}, async (runtime) => out(snapshotTable(await runtime.snapshots.list()))))).pipe(
  Command.withDescription("List snapshots with their size")
)

const snapshotRm = Command.make("rm", { snapshots: snapshotArgument.pipe(Argument.atLeast(1)) }, act(({ snapshots }) =>
  withRuntime({}, async (runtime) => {
    for (const snapshot of snapshots) {
      await runtime.snapshots.remove(snapshot)
      out(`${snapshot}
`)
    }
  }))).pipe(Command.withDescription("Remove snapshots and their files (not while boxes made from them exist)"))

const snapshotPrune = Command.make("prune", {}, act(() =>
  withRuntime({}, async (runtime) => {
    const pruned = await runtime.snapshots.prune()
    for (const id of pruned.removed) out(`Deleted snapshot ${id}\n`)
    out(`Total reclaimed space: ${size(pruned.reclaimedBytes)}\n`)
  }))).pipe(Command.withDescription("Remove every snapshot no box or snapshot was made from"))

const snapshotClone = Command.make("clone", {
  name: boxFlags.name,
  keep: Flag.Boolean("keep").pipe(Flag.withDefault(false), Flag.withDescription("Keep the box when it stops (default: stop removes it)")),
  snapshot: snapshotArgument
}, act((flags) =>
  withRuntime({}, async (runtime) => {
    const box = await runtime.create({ fromSnapshot: flags.snapshot, detach: true, autoRemove: !flags.keep, ...(Option.isSome(flags.name) ? { name: flags.name.value } : {}) })
    await box.start()
    out(`${box.id}\n`)
  }))).pipe(Command.withDescription("Start a detached box from a snapshot, where its box was (memory, processes, disk); prints its id"))

const snapshot = Command.make("snapshot").pipe(
  Command.withDescription("Save running boxes and start new ones from them"),
  Command.withSubcommands([snapshotCreate, snapshotLs, snapshotRm, snapshotPrune, snapshotClone])
)

const rm = Command.make("rm", {
  force: Flag.Boolean("force").pipe(Flag.withDefault(false), Flag.withAlias("f"), Flag.withDescription("Stop running boxes first")),
  boxes: boxesArgument
}, act(({ boxes, force }) =>
  withRuntime({}, async (runtime) => {
    for (const id of boxes) {
      await runtime.remove(id, { force }).catch(async (e: unknown) => {
        if (!(e instanceof BoxStateError) || force) throw e
        const info = await (await runtime.get(id)).info()
        throw new BoxStateError(`box ${id} is ${info.status}: stop it first, or remove it with rm -f`)
      })
      out(`${id}\n`)
    }
  }))).pipe(Command.withDescription("Remove boxes and their disks"))

const metrics = Command.make("metrics", { box: boxArgument }, act(({ box }) =>
  withRuntime({}, async (runtime) => json(await (await runtime.get(box)).metrics())))).pipe(
    Command.withDescription("CPU time, memory and network use of a running box (JSON)")
  )

const inspect = Command.make("inspect", { boxes: boxesArgument }, act(({ boxes }) =>
  withRuntime({}, async (runtime) => {
    const infos = []
    for (const box of boxes) infos.push(await (await runtime.get(box)).info())
    json(infos)
  }))).pipe(Command.withDescription("Details of boxes: status, image, resources, ports, why it failed (a JSON array)"))

const logs = Command.make("logs", {
  follow: Flag.Boolean("follow").pipe(Flag.withDefault(false), Flag.withAlias("f"), Flag.withDescription("Keep printing until the box stops")),
  box: boxArgument
}, act(({ box, follow }) =>
  withRuntime({}, async (runtime) => {
    const handle = await runtime.get(box)
    const dir = path.join(await runtime.homeDir, "boxes", handle.id)
    const running = () => handle.info().then((i) => i.status === "running" || i.status === "paused" || i.status === "starting", () => false)
    await printLogs(dir, follow, running)
  }))).pipe(Command.withDescription("The box's guest console (on stdout) and supervisor log (on stderr)"))

const pull = Command.make("pull", { ...registryFlags, image: Argument.String("image").pipe(Argument.withDescription("A registry image")) }, act((flags) =>
  withRuntime({ registries: registriesFrom(flags) }, async (runtime) => {
    // A bar redrawn in place on a terminal; in a log or a pipe, a line per layer and phase.
    let previous: Parameters<typeof progressLines>[1]
    const pulled = await runtime.images.pull(flags.image, {
      onProgress: (p) => {
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${progressBar(p)}${p.phase === "done" ? "\n" : ""}`)
        else for (const line of progressLines(p, previous)) process.stderr.write(`${line}\n`)
        previous = p
      }
    })
    out(`${pulled.reference} ${pulled.manifestDigest}\n`)
  }))).pipe(Command.withDescription("Pull an image from a registry, with its progress"))

const images = Command.make("images", {}, act(() => withRuntime({}, async (runtime) => out(imageTable(await runtime.images.list()))))).pipe(
  Command.withDescription("Pulled images, and the OCI layouts (oci:) boxes were made from")
)

/** Asks on the terminal; input that is not a "y" (or its end) is a no. */
const confirm = (question: string): Promise<boolean> =>
  new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr })
    rl.once("close", () => resolve(false))
    rl.question(question, (answer) => {
      resolve(/^y(es)?$/i.test(answer.trim()))
      rl.close()
    })
  })

const prune = Command.make("prune", {
  force: Flag.Boolean("force").pipe(Flag.withDefault(false), Flag.withAlias("f"), Flag.withDescription("Do not ask for confirmation"))
}, act(({ force }) =>
  withRuntime({}, async (runtime) => {
    if (!force && !(await confirm("This removes every stopped or failed box, and the image data no image or box uses.\nAre you sure? [y/N] "))) {
      process.stderr.write("\nNothing removed (-f: no question).\n")
      return 1
    }
    for (const box of await runtime.list()) {
      if (box.status !== "stopped" && box.status !== "failed") continue
      await runtime.remove(box.id).catch((e: unknown) => {
        if (!(e instanceof BoxNotFound)) throw e
      })
      out(`Deleted box ${box.id}\n`)
    }
    const pruned = await runtime.images.prune()
    out(`Deleted ${pruned.removedBlobs} blobs and ${pruned.removedBases} root filesystems\nTotal reclaimed space: ${size(pruned.freedBytes)}\n`)
  }))).pipe(Command.withDescription("Remove stopped and failed boxes, and image data nothing uses"))

const info = Command.make("info", {}, act(() => withRuntime({}, async (runtime) => json(await runtime.info())))).pipe(
  Command.withDescription("What this host runs: the driver, its accelerator (kvm, hvf or tcg) and why, what it can do; the home directory")
)

/** The token of --token-file: its content without surrounding whitespace; an empty one is refused. */
const readToken = (file: string): string => {
  const token = readFileSync(file, "utf8").trim()
  if (token.length === 0) throw new InvalidOptions("--token-file", `${file} is empty`)
  return token
}

const serve = Command.make("serve", {
  listen: Flag.String("listen").pipe(Flag.withMetavar("ADDRESS"), Flag.optional, Flag.withDescription("A unix socket path, or 127.0.0.1:PORT (needs --token-file); default <home>/boxlite.sock")),
  tokenFile: Flag.String("token-file").pipe(Flag.withMetavar("FILE"), Flag.optional, Flag.withDescription("The bearer token every TCP request must carry")),
  home: Flag.String("home").pipe(Flag.withMetavar("DIR"), Flag.optional, Flag.withDescription("The home directory to serve (default $BOXLITE_HOME, else ~/.boxlite)"))
}, (flags) =>
  Effect.scoped(Effect.gen(function*() {
    // Loaded here: the other commands do not pay for the HTTP stack.
    const { parseListen, start: startServer } = yield* Effect.promise(() => import("@boxlite/server"))
    const homeDir = path.resolve(undefinedIfNone(flags.home) ?? defaultHomeDir())
    const tokenFile = undefinedIfNone(flags.tokenFile)
    const token = tokenFile === undefined ? undefined : yield* Effect.try({ try: () => readToken(tokenFile), catch: (e) => e })
    const listen = yield* Effect.try({ try: () => parseListen(undefinedIfNone(flags.listen), homeDir), catch: (e) => e })
    // Interrupted (SIGINT, SIGTERM): the server stops, then the runtime; the boxes stay (they are detached).
    const runtime = yield* Effect.acquireRelease(Effect.sync(() => new Boxlite({ homeDir })), (r) => Effect.promise(() => r.close()))
    const server = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => startServer({ runtime, homeDir, listen, token, version: VERSION }), catch: (e) => e }),
      (s) => Effect.promise(() => s.close())
    )
    process.stderr.write(`boxlite: serving ${homeDir} on ${server.url}\n`)
    return yield* Effect.never
  }))).pipe(Command.withDescription("Serve the REST API (openapi/boxlite.v1.json) of the home directory on a unix socket, or on 127.0.0.1 with a token"))

const version = Command.make("version", {}, () => Effect.sync(() => out(`boxlite ${VERSION}\nnode ${process.version}\n`))).pipe(
  Command.withDescription("The versions of boxlite and Node.js")
)

export const boxlite = Command.make("boxlite").pipe(
  Command.withDescription(
    "BoxLite: run OCI images as micro-VMs. BOX is a box id or name; IMAGE a registry image or an OCI layout (oci:/path[:tag]). " +
      "Boxes, images and state live in $BOXLITE_HOME (default ~/.boxlite); new boxes run on $BOXLITE_DRIVER (qemu, kvm, hvf or a driver package; default qemu); " +
      "BOXLITE_LOG=debug logs each step."
  ),
  Command.withSubcommands([run, create, exec, cp, start, stop, restart, pause, resume, suspend, snapshot, rm, ls, inspect, logs, metrics, pull, images, prune, serve, info, version])
)

/**
 * Box and exec options: their schemas (effect/Schema), defaults, and the validation that turns
 * a bad value into an InvalidOptions error naming the field, before anything starts.
 */
import { type Egress, parseEgressEntry } from "@boxlite/driver"
import { Effect, Exit, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import { InvalidOptions } from "./Errors.js"
import { resolveVolumeSource } from "./internal/VolumeSource.js"

export { type Egress, type EgressEntry, parseEgressEntry } from "@boxlite/driver"

/** The default cap of each box log (BoxOptions.logMaxBytes). */
export const LOG_MAX_BYTES = 1024 * 1024

/** Environment variables as a record or as the reference's `[key, value]` pairs. */
export type EnvInput = Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>

/** A port forward: `{ hostPort, guestPort, protocol, hostIp }` or the reference's `[host, guest, protocol]`. */
export type PortInput =
  | { readonly hostPort: number; readonly guestPort: number; readonly protocol?: "tcp" | "udp"; readonly hostIp?: string }
  | readonly [number, number] | readonly [number, number, "tcp" | "udp"]

/** A volume: `{ hostPath, guestPath, readOnly }` or the reference's `[host, guest, "ro" | "rw"]`. */
export type VolumeInput =
  | { readonly hostPath: string; readonly guestPath: string; readonly readOnly?: boolean }
  | readonly [string, string] | readonly [string, string, "ro" | "rw"]

/**
 * Where a box's network may go (see BoxOptions.network). Entries: an IPv4 address, a CIDR or a
 * hostname (resolved on the host at each start), each optionally with `:port` or `:lo-hi` (TCP and
 * UDP; without one, every protocol and port), or `private` (10/8, 172.16/12, 192.168/16, 100.64/10).
 */
export interface NetworkPolicy {
  readonly mode: "nat" | "none"
  /** Only these destinations (plus the box's DNS); an entry here re-allows a range denied by default. */
  readonly allow?: ReadonlyArray<string>
  /** Destinations refused on top of the defaults; wins over `allow`. */
  readonly deny?: ReadonlyArray<string>
}

export interface Port {
  readonly protocol: "tcp" | "udp"
  readonly hostIp: string
  /** 0 = a free port picked at each start (see `box.info().ports`). */
  readonly hostPort: number
  readonly guestPort: number
}

export interface Volume {
  /** As the user gave it. */
  readonly hostPath: string
  readonly guestPath: string
  readonly readOnly: boolean
  /** What `hostPath` named at create; each start serves that object or refuses (BoxStateError). */
  readonly source: VolumeSource
}

/** A volume's source as resolved at create (stored with the box). */
export interface VolumeSource {
  /** `hostPath` with its symlinks resolved; opened at each start without following any. */
  readonly path: string
  readonly kind: "directory" | "file"
  /** st_dev and st_ino (decimal strings: 64-bit). */
  readonly dev: string
  readonly ino: string
  /** Birth time in ns (statx; "0" where the filesystem keeps none): an inode number is reused, a birth is not. */
  readonly birth: string
}

export interface BoxOptions {
  /** OCI image: `python:slim`, `oci:/path/to/layout:tag`. Default `python:slim`. */
  readonly image?: string
  /** Unique name in this home directory (letters, digits, `.`, `_`, `-`). */
  readonly name?: string
  /** vCPUs, 1 to the host's CPU count. Default 1. */
  readonly cpus?: number
  /** Guest memory in MiB, 128 to 65536. Default 512. */
  readonly memoryMib?: number
  /**
   * Size of the box's disk in GiB, which then persists across stop/start until the box is
   * removed; any size that holds the image. Default: none, an ephemeral disk of the image's
   * size plus 1 GiB free, fresh at every start.
   */
  readonly diskSizeGb?: number
  /** Working directory of commands (absolute). Default: the image's, else `/root`. */
  readonly workingDir?: string
  /** Environment of every command, on top of the image's. */
  readonly env?: EnvInput
  /** User of commands: `name`, `uid`, `name:group` or `uid:gid`. Default: the image's, else root. */
  readonly user?: string
  /**
   * `nat` (default): outbound networking with DNS, where the host's own addresses, loopback,
   * link-local (cloud metadata), multicast, broadcast and 0.0.0.0/8 are unreachable; `none`: no
   * network device at all; or a NetworkPolicy with `allow` / `deny` entries. Enforced on the host.
   */
  readonly network?: "nat" | "none" | NetworkPolicy
  /** Let the guest reach the host's loopback services through 10.0.2.2. Default false. */
  readonly allowHostLoopback?: boolean
  /** Host ports forwarded to the guest; bound to 127.0.0.1 unless `hostIp` says otherwise. */
  readonly ports?: ReadonlyArray<PortInput>
  /**
   * Host directories or files shared with the guest (virtiofs); read-only is enforced by the host.
   * Each path is resolved at create; a box whose path later leads elsewhere does not start.
   */
  readonly volumes?: ReadonlyArray<VolumeInput>
  /** Remove the box (and its disk) when it stops. Default true. */
  readonly autoRemove?: boolean
  /**
   * Let the box outlive the process that starts it (its supervisor runs on its own until the
   * box is stopped). Default false: the box stops when that process ends, even by SIGKILL.
   */
  readonly detach?: boolean
  /** How long the guest may take to boot and answer. Default 60000 (suits TCG). */
  readonly readyTimeoutMs?: number
  /**
   * Cap of each of the box's logs (the guest console and the supervisor's), in bytes: a full log
   * becomes `<name>.1` and a new one starts, so a log takes at most twice this on disk. Default 1 MiB.
   */
  readonly logMaxBytes?: number
  /**
   * Start from a snapshot (its id or name; `box.snapshot()`): the box resumes where the snapshot's
   * box was, with its memory, processes and disk, in a few hundred ms instead of a boot. Its image,
   * cpus, memory, network mode and volumes are the snapshot's (giving others is InvalidOptions); its
   * env, working dir and user default to the snapshot box's; name, ports, network rules and the rest
   * are its own.
   */
  readonly fromSnapshot?: string
  /**
   * Start from a template of this image and shape (image, cpus, memory, network mode) kept as a
   * snapshot named `warm-<key>`: the first such create boots a box and saves it, later ones
   * resume it (Box.snapshot). Not with volumes, diskSizeGb or fromSnapshot.
   */
  readonly warm?: boolean
}

export interface ExecOptions {
  /** Added to (and overriding) the box's and image's environment. */
  readonly env?: EnvInput
  /** Working directory for this command (absolute). */
  readonly workingDir?: string
  /** User for this command: `name`, `uid`, `name:group` or `uid:gid`. */
  readonly user?: string
  /** Kill the command's process group after this many ms and fail with TimeoutError. */
  readonly timeoutMs?: number
  /**
   * Run on a terminal (`true` = 24x80, or its size): stdout carries everything, stderr is empty,
   * `execution.resize()` changes the size. For shells and programs that want a tty.
   */
  readonly tty?: boolean | { readonly rows: number; readonly cols: number }
}

export interface ResolvedBoxOptions {
  readonly image: string
  readonly name: string | undefined
  readonly cpus: number
  readonly memoryMib: number
  readonly diskSizeGb: number | undefined
  readonly workingDir: string | undefined
  readonly env: ReadonlyArray<readonly [string, string]>
  readonly user: string | undefined
  readonly network: "nat" | "none"
  /** Absent in records written before egress rules existed: the defaults. */
  readonly egress?: Egress
  readonly allowHostLoopback: boolean
  readonly ports: ReadonlyArray<Port>
  readonly volumes: ReadonlyArray<Volume>
  readonly autoRemove: boolean
  readonly detach: boolean
  readonly readyTimeoutMs: number
  readonly logMaxBytes: number
  /** Created `warm` (absent in records from before the option). */
  readonly warm?: boolean
}

export interface ResolvedExecOptions {
  readonly env: ReadonlyArray<readonly [string, string]>
  readonly workingDir: string | undefined
  readonly user: string | undefined
  readonly timeoutMs: number | undefined
  readonly tty: { readonly rows: number; readonly cols: number } | undefined
}

const check = <T>(predicate: (value: T) => boolean, message: string) =>
  Schema.makeFilter<T>((value) => (predicate(value) ? undefined : message))

const AbsolutePath = Schema.String.check(check((s: string) => s.startsWith("/"), "must be an absolute path (start with /)"))
const validEnvKey = (k: string) => k.length > 0 && !k.includes("=") && !k.includes("\0")
const EnvKey = Schema.String.check(check(validEnvKey, "environment variable names must be non-empty, without '=' or NUL"))
const EnvValue = Schema.String.check(check((v: string) => !v.includes("\0"), "environment values must not contain NUL"))
// Record keys are checked on the whole record: key schemas of a Record do not run their filters.
const EnvRecord = Schema.Record(Schema.String, EnvValue).check(
  check((r: Readonly<Record<string, string>>) => Object.keys(r).every(validEnvKey), "environment variable names must be non-empty, without '=' or NUL")
)
const Env = Schema.Union([EnvRecord, Schema.Array(Schema.Tuple([EnvKey, EnvValue]))])
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const User = Schema.String.check(check((s: string) => /^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/.test(s), "must be name, uid, name:group or uid:gid"))

const PortNumber = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))
const HostPortNumber = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))
const Protocol = Schema.Literals(["tcp", "udp"])
const IPv4 = Schema.String.check(check((s: string) => /^(\d{1,3})(\.\d{1,3}){3}$/.test(s) && s.split(".").every((n) => Number(n) <= 255), "must be an IPv4 address"))
const Ports = Schema.Array(Schema.Union([
  Schema.Struct({ hostPort: HostPortNumber, guestPort: PortNumber, protocol: Schema.optionalKey(Protocol), hostIp: Schema.optionalKey(IPv4) }),
  Schema.Tuple([HostPortNumber, PortNumber]),
  Schema.Tuple([HostPortNumber, PortNumber, Protocol])
]))
const Volumes = Schema.Array(Schema.Union([
  Schema.Struct({ hostPath: AbsolutePath, guestPath: AbsolutePath, readOnly: Schema.optionalKey(Schema.Boolean) }),
  Schema.Tuple([AbsolutePath, AbsolutePath]),
  Schema.Tuple([AbsolutePath, AbsolutePath, Schema.Literals(["ro", "rw"])])
]))

const EgressEntryString = Schema.String.check(Schema.makeFilter((s: string) => {
  const parsed = parseEgressEntry(s)
  return typeof parsed === "string" ? parsed : undefined
}))
const NetworkMode = Schema.Literals(["nat", "none"])
const Network = Schema.Union([
  NetworkMode,
  Schema.Struct({ mode: NetworkMode, allow: Schema.optionalKey(Schema.Array(EgressEntryString)), deny: Schema.optionalKey(Schema.Array(EgressEntryString)) })
])

const boxFields = {
  image: Schema.String.check(check((s: string) => s.trim().length > 0, "must be a non-empty image reference")),
  name: Schema.String.check(check((s: string) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(s), "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")),
  cpus: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: os.cpus().length })),
  memoryMib: Schema.Int.check(Schema.isBetween({ minimum: 128, maximum: 65536 })),
  diskSizeGb: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 16384 })),
  workingDir: AbsolutePath,
  env: Env,
  user: User,
  network: Network,
  allowHostLoopback: Schema.Boolean,
  ports: Ports,
  volumes: Volumes,
  autoRemove: Schema.Boolean,
  detach: Schema.Boolean,
  readyTimeoutMs: PositiveInt,
  logMaxBytes: Schema.Int.check(Schema.isBetween({ minimum: 4096, maximum: 1024 ** 3 })),
  fromSnapshot: Schema.String.check(check((s: string) => s.length > 0, "must be a snapshot id or name")),
  warm: Schema.Boolean
} satisfies Record<keyof BoxOptions, Schema.Top>

const TerminalCells = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 65535 }))
const TtySize = Schema.Struct({ rows: TerminalCells, cols: TerminalCells })
const DEFAULT_TTY = { rows: 24, cols: 80 } as const

const execFields = {
  env: Env,
  workingDir: AbsolutePath,
  user: User,
  timeoutMs: PositiveInt,
  tty: Schema.Union([Schema.Boolean, TtySize])
} satisfies Record<keyof ExecOptions, Schema.Top>

/** Fields whose errors name the element inside them (`network.allow[2]`), from the schema's path. */
const NAMES_ELEMENTS = new Set(["network"])
const elementPath = (message: string): string => {
  const at = /\n\s*at ((?:\[[^\]]*\])+)\s*$/.exec(message)?.[1]
  return at ? at.replace(/\["([^"]*)"\]/g, ".$1") : ""
}

const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    previous = row
  }
  return previous[b.length]!
}

/** The option a wrong key probably meant: the same but for case and `_` (`memory_mib`), else a near spelling. */
export const closestOption = (key: string, known: ReadonlyArray<string>): string | undefined => {
  const plain = (s: string) => s.replaceAll("_", "").replaceAll("-", "").toLowerCase()
  const same = known.find((k) => plain(k) === plain(key))
  if (same !== undefined) return same
  const [best] = known.map((k) => [k, editDistance(plain(key), plain(k))] as const).sort((a, b) => a[1] - b[1])
  return best !== undefined && best[1] <= Math.max(1, Math.floor(best[0].length / 4)) ? best[0] : undefined
}

/** InvalidOptions for the first key of `input` that is not an option, naming what it probably meant. */
export const unknownOption = (input: object, known: ReadonlyArray<string>, prefix = ""): InvalidOptions | undefined => {
  const key = Object.keys(input).find((k) => !known.includes(k))
  if (key === undefined) return undefined
  const meant = closestOption(key, known)
  return new InvalidOptions(`${prefix}${key}`, meant !== undefined ? `unknown option; did you mean "${meant}"?` : `unknown option (known: ${known.join(", ")})`)
}

/** The keys of BoxOptions, for callers that check options before creating a box. */
export const BOX_OPTION_KEYS: ReadonlyArray<string> = Object.keys(boxFields)

/** Throws InvalidOptions for a key that is not a box option (constructors check at once, not at first use). */
export const assertBoxOptionKeys = (input: object): void => {
  const error = unknownOption(input, BOX_OPTION_KEYS)
  if (error) throw error
}

/** Validates each present field with its schema, and refuses fields that do not exist. */
const validate = (fields: Record<string, Schema.Top>, input: unknown, prefix: string): Effect.Effect<void, InvalidOptions> =>
  Effect.suspend(() => {
    if (input === undefined) return Effect.void
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      return Effect.fail(new InvalidOptions(prefix || "options", "must be an object"))
    }
    const unknown = unknownOption(input, Object.keys(fields), prefix)
    if (unknown) return Effect.fail(unknown)
    for (const [key, value] of Object.entries(input)) {
      const schema = fields[key]!
      if (value === undefined) continue
      const result = Schema.decodeUnknownExit(schema as Schema.Codec<unknown>)(value)
      if (Exit.isFailure(result)) {
        const reason = result.cause.reasons[0]
        const detail = reason && "error" in reason ? String((reason.error as { message?: string }).message) : "invalid value"
        const path = NAMES_ELEMENTS.has(key) ? elementPath(detail) : ""
        return Effect.fail(new InvalidOptions(`${prefix}${key}${path}`, path ? detail.replace(/\n[\s\S]*$/, "") : `${detail} (got ${JSON.stringify(value)})`))
      }
    }
    return Effect.void
  })

export const normalizeEnv = (env: EnvInput | undefined): ReadonlyArray<readonly [string, string]> =>
  env === undefined ? [] : Array.isArray(env) ? env.map(([k, v]) => [k, v] as const) : Object.entries(env as Record<string, string>)

const normalizePort = (port: PortInput): Port =>
  "hostPort" in port
    ? { protocol: port.protocol ?? "tcp", hostIp: port.hostIp ?? "127.0.0.1", hostPort: port.hostPort, guestPort: port.guestPort }
    : { protocol: port[2] ?? "tcp", hostIp: "127.0.0.1", hostPort: port[0], guestPort: port[1] }

const normalizeVolume = (volume: VolumeInput): Omit<Volume, "source"> =>
  "hostPath" in volume
    ? { hostPath: volume.hostPath, guestPath: volume.guestPath, readOnly: volume.readOnly ?? false }
    : { hostPath: volume[0], guestPath: volume[1], readOnly: volume[2] === "ro" }

/**
 * What the schemas cannot see: the host side (volume sources exist: each is resolved here, once),
 * and options that contradict.
 */
const checkHost = (options: Omit<ResolvedBoxOptions, "volumes"> & { readonly volumes: ReadonlyArray<Omit<Volume, "source">> }): Effect.Effect<ResolvedBoxOptions, InvalidOptions> =>
  Effect.suspend(() => {
    if (options.network === "none" && (options.egress?.allow !== undefined || (options.egress?.deny.length ?? 0) > 0)) {
      return Effect.fail(new InvalidOptions("network", `allow and deny need a network (mode is "none")`))
    }
    if (options.network === "none" && options.ports.length > 0) {
      return Effect.fail(new InvalidOptions("ports", `forwarding ports needs a network (network is "none")`))
    }
    const seen = new Set<string>()
    for (const [i, port] of options.ports.entries()) {
      const key = `${port.protocol}/${port.hostIp}:${port.hostPort}`
      if (port.hostPort !== 0 && seen.has(key)) return Effect.fail(new InvalidOptions(`ports[${i}]`, `${key} is forwarded twice`))
      seen.add(key)
    }
    const guestPaths = new Set<string>()
    const volumes: Array<Volume> = []
    for (const [i, volume] of options.volumes.entries()) {
      if (!fs.existsSync(volume.hostPath)) {
        return Effect.fail(new InvalidOptions(`volumes[${i}].hostPath`, `${volume.hostPath} does not exist`))
      }
      if (volume.guestPath === "/" || guestPaths.has(volume.guestPath)) {
        return Effect.fail(new InvalidOptions(`volumes[${i}].guestPath`, `${volume.guestPath} is "/" or used by another volume`))
      }
      guestPaths.add(volume.guestPath)
      try {
        volumes.push({ ...volume, source: resolveVolumeSource(volume.hostPath) })
      } catch (e) {
        return Effect.fail(new InvalidOptions(`volumes[${i}].hostPath`, (e as Error).message))
      }
    }
    return Effect.succeed({ ...options, volumes })
  })

/**
 * The box options a home's `config.json` may default (`defaults`, see Config.ts): how boxes are
 * shaped and run. Not `name`, `ports` or `volumes` (one box's own: a name and a host port are
 * taken once, a host path is shared only when the code asks), nor `autoRemove`, `detach`,
 * `diskSizeGb`, `fromSnapshot` or `warm` (what a box is and how long it lives: the caller's call).
 */
export const BOX_DEFAULT_KEYS = [
  "image", "cpus", "memoryMib", "workingDir", "env", "user", "network", "allowHostLoopback", "readyTimeoutMs", "logMaxBytes"
] as const satisfies ReadonlyArray<keyof BoxOptions>

export type BoxDefaults = Pick<BoxOptions, typeof BOX_DEFAULT_KEYS[number]>

const defaultFields = Object.fromEntries(BOX_DEFAULT_KEYS.map((key) => [key, boxFields[key]]))

/** Validates box defaults (config.json's `defaults`): InvalidOptions naming `<field>.<option>`, unknown options refused. */
export const validateBoxDefaults = (input: unknown, field: string): Effect.Effect<BoxDefaults, InvalidOptions> =>
  input !== undefined && (typeof input !== "object" || input === null || Array.isArray(input))
    ? Effect.fail(new InvalidOptions(field, `must be an object of box options (got ${JSON.stringify(input)})`))
    : Effect.as(validate(defaultFields, input, `${field}.`), (input ?? {}) as BoxDefaults)

/**
 * The options of a new box: `input`'s (validated), else `defaults`' (a home's config.json, valid
 * already), else BoxLite's. A field given in `input` replaces the default whole, except `env`,
 * which is merged by variable (input's value wins).
 */
export const resolveBoxOptions = (input: BoxOptions | undefined, defaults: BoxDefaults = {}): Effect.Effect<ResolvedBoxOptions, InvalidOptions> =>
  validate(boxFields, input, "").pipe(
    Effect.map(() => {
      const given: BoxOptions = { ...defaults, ...Object.fromEntries(Object.entries(input ?? {}).filter(([, v]) => v !== undefined)) }
      return {
        image: given.image ?? "python:slim",
        name: given.name,
        cpus: given.cpus ?? 1,
        memoryMib: given.memoryMib ?? 512,
        diskSizeGb: given.diskSizeGb,
        workingDir: given.workingDir,
        env: defaults.env === undefined ? normalizeEnv(input?.env) : mergeEnv(normalizeEnv(defaults.env), normalizeEnv(input?.env)),
        user: given.user,
        network: typeof given.network === "object" ? given.network.mode : given.network ?? "nat",
        egress: typeof given.network === "object"
          ? { ...(given.network.allow ? { allow: [...given.network.allow] } : {}), deny: [...(given.network.deny ?? [])] }
          : { deny: [] },
        allowHostLoopback: given.allowHostLoopback ?? false,
        ports: (given.ports ?? []).map(normalizePort),
        volumes: (given.volumes ?? []).map(normalizeVolume),
        autoRemove: given.autoRemove ?? true,
        detach: given.detach ?? false,
        readyTimeoutMs: given.readyTimeoutMs ?? 60_000,
        logMaxBytes: given.logMaxBytes ?? LOG_MAX_BYTES,
        warm: given.warm ?? false
      }
    }),
    Effect.flatMap(checkHost)
  )

export const resolveExecOptions = (input: ExecOptions | undefined): Effect.Effect<ResolvedExecOptions, InvalidOptions> =>
  validate(execFields, input, "exec.").pipe(
    Effect.as({
      env: normalizeEnv(input?.env),
      workingDir: input?.workingDir,
      user: input?.user,
      timeoutMs: input?.timeoutMs,
      tty: input?.tty === true ? DEFAULT_TTY : input?.tty === false ? undefined : input?.tty
    })
  )

/** Later entries win; the first position of a key is kept so the order stays stable. */
export const mergeEnv = (...layers: ReadonlyArray<ReadonlyArray<readonly [string, string]>>): Array<[string, string]> => {
  const merged = new Map<string, string>()
  for (const layer of layers) for (const [k, v] of layer) merged.set(k, v)
  return [...merged]
}

/** Limits of a copy out of a box (copyOut, readFile): the guest decides what it sends. */
export interface CopyOutOptions {
  /** Most bytes of archive the guest may send (file contents plus 512-byte headers). Default 1 GiB (copyOut), 64 MiB (readFile). */
  readonly maxBytes?: number
  /** Most files, directories and links. Default 100000. */
  readonly maxEntries?: number
}

export interface SnapshotOptions {
  /** Unique in the home, as box names are spelt; default none (the snapshot is known by its id). */
  readonly name?: string
}

export interface WriteFileOptions {
  /** Permission bits of the file (e.g. 0o755). Default 0o644. */
  readonly mode?: number
}

export const COPY_OUT_MAX_BYTES = 1024 ** 3
export const READ_FILE_MAX_BYTES = 64 * 1024 ** 2
export const COPY_OUT_MAX_ENTRIES = 100_000

const copyOutFields = {
  maxBytes: PositiveInt,
  maxEntries: PositiveInt
} satisfies Record<keyof CopyOutOptions, Schema.Top>

const writeFileFields = {
  mode: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 0o777 }))
} satisfies Record<keyof WriteFileOptions, Schema.Top>

export const resolveCopyOutOptions = (
  input: CopyOutOptions | undefined,
  defaultMaxBytes: number
): Effect.Effect<Required<CopyOutOptions>, InvalidOptions> =>
  validate(copyOutFields, input, "copy.").pipe(
    Effect.as({ maxBytes: input?.maxBytes ?? defaultMaxBytes, maxEntries: input?.maxEntries ?? COPY_OUT_MAX_ENTRIES })
  )

const snapshotFields = {
  name: boxFields.name
} satisfies Record<keyof SnapshotOptions, Schema.Top>

export const resolveSnapshotOptions = (input: SnapshotOptions | undefined): Effect.Effect<SnapshotOptions, InvalidOptions> =>
  validate(snapshotFields, input, "").pipe(Effect.as(input?.name !== undefined ? { name: input.name } : {}))

export const resolveWriteFileOptions = (input: WriteFileOptions | undefined): Effect.Effect<Required<WriteFileOptions>, InvalidOptions> =>
  validate(writeFileFields, input, "writeFile.").pipe(Effect.as({ mode: input?.mode ?? 0o644 }))

/**
 * The REST API v1 as effect/http-api endpoints: paths, parameters, payloads, responses and
 * errors are Schemas, so the server decodes requests with them and the OpenAPI document
 * (`openapi/boxlite.v1.json`) is derived from them (`openApiDocument`).
 *
 * JSON shapes are the TypeScript API's: BoxInfo, BoxMetrics, ImageInfo... as `Boxlite` returns
 * them (Dates as ISO strings, absent values absent). Box options are passed to the runtime as
 * given: it validates them, and a bad one is a 400 InvalidOptions naming the field.
 */
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"

/** The largest JSON body a request may have (a larger one is 413 PayloadTooLarge). */
export const MAX_JSON_BYTES = 1024 * 1024
/** The largest tar a file upload may send. */
export const MAX_UPLOAD_BYTES = 1024 ** 3
/** The largest stdin chunk one request may send. */
export const MAX_STDIN_BYTES = 64 * 1024 * 1024

// ---- Errors: non-2xx bodies are {"error": {"_tag", "message", ...the error's fields}} ----

/** The error itself: its tag, its message and its fields (InvalidOptions has `field`, BoxNotFound `idOrName`...). */
export const ErrorDetail = Schema.StructWithRest(Schema.Struct({ _tag: Schema.String, message: Schema.String }), [Schema.Record(Schema.String, Schema.Unknown)])
  .annotate({ identifier: "ErrorDetail" })
export type ErrorDetail = typeof ErrorDetail.Type

const errorBody = { error: ErrorDetail }

/** 400: InvalidOptions, ParseError, BadRequest (malformed JSON, a body or parameter of the wrong shape). */
export class BadRequestError extends Schema.Error<BadRequestError>("BadRequestError")(errorBody, { httpApiStatus: 400 }) {}
/** 401: Unauthorized (TCP without the bearer token). */
export class UnauthorizedError extends Schema.Error<UnauthorizedError>("UnauthorizedError")(errorBody, { httpApiStatus: 401 }) {}
/** 404: BoxNotFound, ImageNotFound, SnapshotNotFound, ExecutionNotFound, PathNotFound, NotFound (no such route). */
export class NotFoundError extends Schema.Error<NotFoundError>("NotFoundError")(errorBody, { httpApiStatus: 404 }) {}
/** 409: BoxStateError, ExecutionBusy (another client reads that output). */
export class ConflictError extends Schema.Error<ConflictError>("ConflictError")(errorBody, { httpApiStatus: 409 }) {}
/** 413: PayloadTooLarge. */
export class PayloadTooLargeError extends Schema.Error<PayloadTooLargeError>("PayloadTooLargeError")(errorBody, { httpApiStatus: 413 }) {}
/** 500: every other error (ExecError, BootError, ImageError, StorageError...). */
export class InternalError extends Schema.Error<InternalError>("InternalError")(errorBody, { httpApiStatus: 500 }) {}
/** 504: TimeoutError. */
export class TimeoutResponse extends Schema.Error<TimeoutResponse>("TimeoutResponse")(errorBody, { httpApiStatus: 504 }) {}

export type ApiError = BadRequestError | UnauthorizedError | NotFoundError | ConflictError | PayloadTooLargeError | InternalError | TimeoutResponse

/** Every endpoint may answer with each of them. */
const error = [BadRequestError, UnauthorizedError, NotFoundError, ConflictError, PayloadTooLargeError, InternalError, TimeoutResponse]

// ---- Shapes of the TypeScript API, as JSON ----

const optional = Schema.optionalKey

export const Port = Schema.Struct({
  protocol: Schema.Literals(["tcp", "udp"]),
  hostIp: Schema.String,
  hostPort: Schema.Number,
  guestPort: Schema.Number
}).annotate({ identifier: "Port" })

export const BoxStatus = Schema.Literals(["configured", "starting", "running", "paused", "stopping", "stopped", "suspended", "failed"])
  .annotate({ identifier: "BoxStatus" })

export const BoxInfo = Schema.Struct({
  id: Schema.String,
  name: optional(Schema.String),
  status: BoxStatus,
  image: Schema.String,
  autoRemove: Schema.Boolean,
  cpus: Schema.Number,
  memoryMib: Schema.Number,
  createdAt: Schema.String.annotate({ description: "ISO 8601" }),
  pid: optional(Schema.Number),
  ports: Schema.Array(Port),
  reason: optional(Schema.String),
  driver: Schema.String,
  accelerator: optional(Schema.String),
  transport: optional(Schema.String),
  snapshot: optional(Schema.String)
}).annotate({ identifier: "BoxInfo" })

export const BoxMetrics = Schema.Struct({
  cpuTimeMs: Schema.Number,
  memoryUsageBytes: Schema.Number,
  networkBytesSent: Schema.Number,
  networkBytesReceived: Schema.Number
}).annotate({ identifier: "BoxMetrics" })

export const RuntimeMetrics = Schema.Struct({
  boxesCreated: Schema.Number,
  boxesDestroyed: Schema.Number,
  totalExecCalls: Schema.Number,
  activeBoxes: Schema.Number
}).annotate({ identifier: "RuntimeMetrics" })

export const RuntimeInfo = Schema.Struct({
  version: Schema.String,
  homeDir: Schema.String,
  driver: Schema.String,
  hypervisor: Schema.Struct({
    driver: Schema.String,
    accelerator: Schema.String,
    reason: Schema.String,
    transport: Schema.String,
    confinement: optional(Schema.Struct({ user: Schema.String, cgroup: Schema.String, degraded: optional(Schema.String) }))
  }),
  capabilities: Schema.Struct({
    diskFormats: Schema.Array(Schema.String),
    network: Schema.Boolean,
    portForwards: Schema.Boolean,
    egressPolicy: Schema.Boolean,
    volumes: Schema.Boolean,
    snapshots: Schema.Boolean,
    agentTransport: Schema.String
  })
}).annotate({ identifier: "RuntimeInfo" })

export const ImageInfo = Schema.Struct({
  reference: Schema.String,
  manifestDigest: Schema.String,
  configDigest: Schema.String,
  platform: Schema.Struct({ os: Schema.String, architecture: Schema.String, variant: optional(Schema.String) }),
  pulledAt: Schema.String,
  size: Schema.Number
}).annotate({ identifier: "ImageInfo" })

export const SnapshotInfo = Schema.Struct({
  id: Schema.String,
  name: optional(Schema.String),
  boxId: Schema.String,
  image: Schema.String,
  createdAt: Schema.String,
  cpus: Schema.Number,
  memoryMib: Schema.Number,
  stateBytes: Schema.Number,
  sizeBytes: Schema.Number
}).annotate({ identifier: "SnapshotInfo" })

export const ExecResult = Schema.Struct({
  exitCode: Schema.Number,
  signal: optional(Schema.String)
}).annotate({ identifier: "ExecResult" })

export const PullProgress = Schema.Struct({
  reference: Schema.String,
  phase: Schema.Literals(["resolving", "downloading", "done"]),
  layers: Schema.Array(Schema.Record(Schema.String, Schema.Unknown)),
  downloadedBytes: Schema.Number,
  totalBytes: Schema.Number
}).annotate({ identifier: "PullProgress" })

/** A line of `POST /v1/images/pull`: progress, then `{"done": ImageInfo}` or `{"error": ...}`. */
export const PullEvent = Schema.Union([PullProgress, Schema.Struct({ done: ImageInfo }), Schema.Struct(errorBody)]).annotate({ identifier: "PullEvent" })

/** A line of an execution's output: a chunk of stdout or stderr (base64), then `{"exit": ExecResult}` or `{"error": ...}`. */
export const OutputEvent = Schema.Union([
  Schema.Struct({ stream: Schema.Literals(["stdout", "stderr"]), data: Schema.String.annotate({ description: "base64" }) }),
  Schema.Struct({ exit: ExecResult }),
  Schema.Struct(errorBody)
]).annotate({ identifier: "OutputEvent" })

export const BoxKind = Schema.Literals(["box", "simple", "code", "browser", "computer", "interactive"]).annotate({ identifier: "BoxKind" })

/** Options as the TypeScript API takes them; the runtime validates them (InvalidOptions naming the field). */
const Options = Schema.Record(Schema.String, Schema.Unknown).annotate({ description: "BoxOptions as runtime.create() takes them (camelCase)" })

export const CreateBox = Schema.Struct({
  kind: optional(BoxKind),
  options: optional(Options)
}).annotate({ identifier: "CreateBox" })

/** A body whose fields are all optional may be empty (read as null) or null. */
const orEmpty = <S extends Schema.Top>(schema: S) => [schema, Schema.Null] as const

export const ExecRequest = Schema.Struct({
  command: Schema.String,
  args: optional(Schema.Array(Schema.String)),
  env: optional(Schema.Union([Schema.Record(Schema.String, Schema.String), Schema.Array(Schema.Tuple([Schema.String, Schema.String]))])),
  workingDir: optional(Schema.String),
  tty: optional(Schema.Union([Schema.Boolean, Schema.Struct({ rows: Schema.Number, cols: Schema.Number })])),
  user: optional(Schema.String),
  timeoutMs: optional(Schema.Number)
}).annotate({ identifier: "ExecRequest" })

const Created = Schema.Struct({ id: Schema.String }).annotate({ identifier: "ExecutionCreated" })

/** The methods of each kind's box that `actions/{method}` calls (the TypeScript boxes' names). */
export const ACTIONS = {
  box: [],
  simple: [],
  interactive: [],
  code: ["run", "runScript", "installPackage", "installPackages", "runCode", "restartInterpreter"],
  browser: ["endpoint", "browser"],
  computer: [
    "waitUntilReady", "screenshot", "mouseMove", "leftClick", "rightClick", "middleClick", "doubleClick", "tripleClick", "leftClickDrag",
    "cursorPosition", "type", "key", "scroll", "getScreenSize", "viewerUrl"
  ]
} as const satisfies Record<typeof BoxKind.Type, ReadonlyArray<string>>

const idParam = { id: Schema.String.annotate({ description: "box id or name" }) }
const execParams = { ...idParam, execId: Schema.String }
const Void = HttpApiSchema.NoContent

const runtime = HttpApiGroup.make("runtime")
  .add(HttpApiEndpoint.get("info", "/v1/info", { success: RuntimeInfo, error }))
  .add(HttpApiEndpoint.get("metrics", "/v1/metrics", { success: RuntimeMetrics, error }))

const images = HttpApiGroup.make("images")
  .add(HttpApiEndpoint.get("list", "/v1/images", { success: Schema.Array(ImageInfo), error }))
  .add(HttpApiEndpoint.post("pull", "/v1/images/pull", {
    payload: Schema.Struct({ reference: Schema.String }),
    success: HttpApiSchema.StreamNdjson({ schema: PullEvent }),
    error
  }))
  .add(HttpApiEndpoint.delete("remove", "/v1/images/:ref", { params: { ref: Schema.String.annotate({ description: "URL-encoded reference" }) }, success: Void, error }))

const boxes = HttpApiGroup.make("boxes")
  .add(HttpApiEndpoint.post("create", "/v1/boxes", { payload: orEmpty(CreateBox), success: BoxInfo.pipe(HttpApiSchema.status(201)), error }))
  .add(HttpApiEndpoint.get("list", "/v1/boxes", { success: Schema.Array(BoxInfo), error }))
  .add(HttpApiEndpoint.get("get", "/v1/boxes/:id", { params: idParam, success: BoxInfo, error }))
  .add(HttpApiEndpoint.post("start", "/v1/boxes/:id/start", { params: idParam, success: BoxInfo, error }))
  .add(HttpApiEndpoint.post("stop", "/v1/boxes/:id/stop", { params: idParam, success: BoxInfo, error }))
  .add(HttpApiEndpoint.delete("remove", "/v1/boxes/:id", {
    params: idParam,
    query: { force: optional(Schema.Literals(["true", "false"])) },
    success: Void,
    error
  }))
  .add(HttpApiEndpoint.get("metrics", "/v1/boxes/:id/metrics", { params: idParam, success: BoxMetrics, error }))
  .add(HttpApiEndpoint.post("action", "/v1/boxes/:id/actions/:method", {
    params: { ...idParam, method: Schema.String.annotate({ description: `per kind: ${Object.entries(ACTIONS).filter(([, m]) => m.length > 0).map(([k, m]) => `${k}: ${m.join(", ")}`).join("; ")}` }) },
    payload: orEmpty(Schema.Struct({ args: optional(Schema.Array(Schema.Unknown)) })),
    success: Schema.Struct({ result: Schema.Unknown }).annotate({ identifier: "ActionResult" }),
    error
  }))

const executions = HttpApiGroup.make("executions")
  .add(HttpApiEndpoint.post("create", "/v1/boxes/:id/executions", { params: idParam, payload: ExecRequest, success: Created.pipe(HttpApiSchema.status(201)), error }))
  .add(HttpApiEndpoint.get("output", "/v1/boxes/:id/executions/:execId/output", {
    params: execParams,
    success: HttpApiSchema.StreamNdjson({ schema: OutputEvent }),
    error
  }))
  .add(HttpApiEndpoint.post("stdin", "/v1/boxes/:id/executions/:execId/stdin", {
    params: execParams,
    payload: HttpApiSchema.StreamUint8Array({ maxBytes: MAX_STDIN_BYTES }),
    success: Void,
    error
  }))
  .add(HttpApiEndpoint.post("closeStdin", "/v1/boxes/:id/executions/:execId/stdin/close", { params: execParams, success: Void, error }))
  .add(HttpApiEndpoint.post("resize", "/v1/boxes/:id/executions/:execId/resize", {
    params: execParams,
    payload: Schema.Struct({ cols: Schema.Int, rows: Schema.Int }),
    success: Void,
    error
  }))
  .add(HttpApiEndpoint.post("signal", "/v1/boxes/:id/executions/:execId/signal", {
    params: execParams,
    payload: Schema.Struct({ signal: Schema.Union([Schema.String, Schema.Int]).annotate({ description: "a name (SIGTERM) or a number" }) }),
    success: Void,
    error
  }))
  .add(HttpApiEndpoint.get("wait", "/v1/boxes/:id/executions/:execId/wait", { params: execParams, success: ExecResult, error }))

const files = HttpApiGroup.make("files")
  .add(HttpApiEndpoint.put("upload", "/v1/boxes/:id/files", {
    params: idParam,
    query: { path: Schema.String.annotate({ description: "the guest directory to extract into" }) },
    payload: HttpApiSchema.StreamUint8Array({ contentType: "application/x-tar", maxBytes: MAX_UPLOAD_BYTES }),
    success: Void,
    error
  }))
  .add(HttpApiEndpoint.get("download", "/v1/boxes/:id/files", {
    params: idParam,
    query: { path: Schema.String.annotate({ description: "the guest file or directory" }) },
    success: HttpApiSchema.StreamUint8Array({ contentType: "application/x-tar" }),
    error
  }))

const snapshots = HttpApiGroup.make("snapshots")
  .add(HttpApiEndpoint.get("list", "/v1/snapshots", { success: Schema.Array(SnapshotInfo), error }))
  .add(HttpApiEndpoint.post("create", "/v1/boxes/:id/snapshots", {
    params: idParam,
    payload: orEmpty(Schema.Struct({ name: optional(Schema.String) })),
    success: SnapshotInfo.pipe(HttpApiSchema.status(201)),
    error
  }))
  .add(HttpApiEndpoint.post("clone", "/v1/snapshots/:id/clone", {
    params: { id: Schema.String },
    payload: orEmpty(Schema.Struct({ options: optional(Options) })),
    success: BoxInfo.pipe(HttpApiSchema.status(201)),
    error
  }))
  .add(HttpApiEndpoint.delete("remove", "/v1/snapshots/:id", { params: { id: Schema.String }, success: Void, error }))

/** What each operation does, beyond its shapes (by operationId). */
const SUMMARIES: Readonly<Record<string, string>> = {
  "runtime.info": "The runtime: version, home directory, driver, accelerator and why, what the driver can do",
  "runtime.metrics": "Boxes created and destroyed, exec calls, active boxes (across processes)",
  "images.list": "Pulled images, and the OCI layouts boxes were made from",
  "images.pull": "Pulls an image: NDJSON progress lines, then {\"done\": ImageInfo} or {\"error\": ...}",
  "images.remove": "Removes a pulled image (its reference URL-encoded)",
  "boxes.create": "Creates a box (detached: it outlives the request and the server); a kind other than box is started at once",
  "boxes.list": "Every box of the home, newest first, with its true status",
  "boxes.get": "A box by id or name",
  "boxes.start": "Boots the box (restarts a failed one); a no-op when running",
  "boxes.stop": "Stops the box gracefully; an autoRemove box is removed too (its last info is returned)",
  "boxes.remove": "Removes the box and its disk; a running one only with force=true",
  "boxes.metrics": "CPU time, memory and network bytes of a running box",
  "boxes.action": "Calls a method of the box's kind (CodeBox, BrowserBox, ComputerBox) with its arguments",
  "executions.create": "Runs a command in the box (booting it if needed); its output is kept for the reader",
  "executions.output": "The command's output, live, as NDJSON: base64 chunks of stdout and stderr, then {\"exit\": ExecResult} (or {\"error\": ...}). One reader at a time; unread output stays for the next",
  "executions.stdin": "Writes the request body to the command's stdin (resolves once the guest took it)",
  "executions.closeStdin": "Closes the command's stdin (end of file)",
  "executions.resize": "A tty command's new terminal size",
  "executions.signal": "Sends a signal to the command's process group",
  "executions.wait": "Waits for the command to end: its exit status (504 TimeoutError if timeoutMs ran out)",
  "files.upload": "Copies the entries of a tar archive into a guest directory (as cp -a)",
  "files.download": "A guest file or tree as a tar archive (its base name at the top)",
  "snapshots.list": "Snapshots with their sizes",
  "snapshots.create": "Saves a running box (memory, devices, disk) as a snapshot; the box runs on",
  "snapshots.clone": "Creates a box (detached) that starts from the snapshot",
  "snapshots.remove": "Removes a snapshot (not while boxes made from it exist)"
}

export class Api extends HttpApi.make("boxlite")
  .add(runtime)
  .add(images)
  .add(boxes)
  .add(executions)
  .add(files)
  .add(snapshots)
  .annotateMerge(OpenApi.annotations({
    title: "BoxLite REST API",
    version: "1",
    description: "Boxes (micro-VMs), executions, files, images and snapshots of one BoxLite home. " +
      "Served on a unix socket (<home>/boxlite.sock, owner-only) or on 127.0.0.1 with a bearer token. " +
      "Errors: {\"error\": {\"_tag\", \"message\", ...fields}}.",
    // Auth is the server's (a bearer token on TCP, none on the unix socket), for every path.
    transform: (spec) => {
      for (const item of Object.values(spec["paths"] as Record<string, Record<string, Record<string, unknown>>>)) {
        for (const operation of Object.values(item)) {
          delete operation["security"]
          operation["summary"] = SUMMARIES[operation["operationId"] as string]
        }
      }
      return {
        ...spec,
        components: { ...spec["components"], securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "Required on TCP; not on the unix socket" } } },
        security: [{ bearer: [] }, {}]
      }
    }
  }))
{}

/** The OpenAPI 3.1 document of the API, derived from its Schemas. */
export const openApiDocument = (): Record<string, unknown> => OpenApi.fromApi(Api) as unknown as Record<string, unknown>


/**
 * The server: the Api's endpoints mapped onto a `Boxlite` runtime (Promise face), served by
 * @effect/platform-node's NodeHttpServer on a unix socket (default `<home>/boxlite.sock`,
 * owner-only) or on 127.0.0.1 with a bearer token. It adds no runtime logic: boxes are the
 * home's ordinary boxes, created detached (they outlive requests and the server).
 */
// The module, not the package index: that loads the HTTP client too (undici 8, Node >= 22.19).
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { type BoxOptions, BoxStateError, type ExecOptions, InvalidOptions } from "@boxlite/core"
import type { Box, Boxlite } from "@boxlite/core/promise"
import { ByteSize, Cause, Effect, Exit, Layer, Queue, Scope, Stream } from "effect"
import { Headers, HttpIncomingMessage, HttpRouter, HttpServer, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiError } from "effect/http-api"
import { createHash, timingSafeEqual } from "node:crypto"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { finished } from "node:stream/promises"
import * as tar from "tar"
import { Api, MAX_JSON_BYTES } from "./Api.js"
import { apiError, detailOf, statusOf, toApiError } from "./internal/Errors.js"
import { Executions } from "./internal/Executions.js"
import { Kinds } from "./internal/Kinds.js"
import { acquireLock, type Listen } from "./Listen.js"

export interface ServerOptions {
  /** The runtime to serve; the server does not close it. */
  readonly runtime: Boxlite
  /** Where to listen: a unix socket path, or 127.0.0.1:PORT (then `token` is required). */
  readonly listen: Listen
  /** The bearer token every TCP request must carry. */
  readonly token?: string | undefined
  /** Reported by GET /v1/info. */
  readonly version: string
}

const call = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: toApiError })

/** A value as JSON has it (Dates as ISO strings, undefined fields gone). */
const plain = <A>(value: A): any => JSON.parse(JSON.stringify(value))

/** `{"error": ...}` with the status of its tag. */
const errorResponse = (tag: string, message: string) => {
  const error = { _tag: tag, message }
  return HttpServerResponse.jsonUnsafe({ error }, { status: statusOf(error) })
}

/** Chunks of a payload stream, its limit breach as PayloadTooLarge. */
const chunksOf = (payload: Stream.Stream<Uint8Array, unknown>) =>
  Stream.mapError(payload, (e) => (HttpApiError.HttpApiPayloadTooLarge.is(e) ? apiError("PayloadTooLarge", e.message) : toApiError(e)))

const handlers = (options: ServerOptions) => {
  const { runtime } = options
  const executions = new Executions()
  const kinds = new Kinds(runtime)
  const box = (idOrName: string) => call(() => runtime.get(idOrName))
  const infoOf = (b: Box) => call(async () => plain(await b.info()))

  const runtimeGroup = HttpApiBuilder.group(Api, "runtime", (h) =>
    h
      .handle("info", () =>
        call(async () => {
          const info = await runtime.info()
          return plain({ version: options.version, homeDir: info.homeDir, driver: info.hypervisor.driver, hypervisor: info.hypervisor, capabilities: info.capabilities })
        }))
      .handle("metrics", () => call(() => runtime.metrics())))

  const imagesGroup = HttpApiBuilder.group(Api, "images", (h) =>
    h
      .handle("list", () => call(async () => plain(await runtime.images.list())))
      .handle("pull", ({ payload }) =>
        Effect.succeed(Stream.callback<any>((queue) =>
          Effect.sync(() => {
            // One progress line per phase, and at most every 200 ms while downloading.
            let last = 0
            const onProgress = (p: unknown) => {
              const now = Date.now()
              if ((p as { phase: string }).phase === "downloading" && now - last < 200) return
              last = now
              Queue.offerUnsafe(queue, plain(p))
            }
            runtime.images.pull(payload.reference, { onProgress }).then(
              (info) => Queue.offerUnsafe(queue, { done: plain(info) }),
              (e: unknown) => Queue.offerUnsafe(queue, { error: detailOf(e) })
            ).finally(() => Queue.endUnsafe(queue))
          })
        )))
      .handle("remove", ({ params }) => call(() => runtime.images.remove(params.ref))))

  const boxesGroup = HttpApiBuilder.group(Api, "boxes", (h) =>
    h
      .handle("create", ({ payload }) =>
        call(async () => {
          const options = (payload?.options ?? {}) as BoxOptions & Record<string, unknown>
          const kind = payload?.kind ?? "box"
          const created = kind === "box" ? await runtime.create({ detach: true, ...options }) : await kinds.create(kind, options)
          return plain(await created.info())
        }))
      .handle("list", () => call(async () => plain(await runtime.list())))
      .handle("get", ({ params }) => Effect.flatMap(box(params.id), infoOf))
      .handle("start", ({ params }) =>
        Effect.flatMap(box(params.id), (b) => call(async () => {
          await b.start()
          return plain(await b.info())
        })))
      .handle("stop", ({ params }) =>
        Effect.flatMap(box(params.id), (b) => call(async () => {
          const before = await b.info()
          await b.stop()
          // An autoRemove box is gone once stopped: its last info, stopped.
          const after = await b.info().catch(() => ({ ...before, status: "stopped" as const, pid: undefined }))
          if (after.status === "stopped") kinds.forget(b.id)
          return plain(after)
        })))
      .handle("remove", ({ params, query }) =>
        Effect.flatMap(box(params.id), (b) => call(async () => {
          if (!(await kinds.remove(b.id))) await runtime.remove(b.id, { force: query.force === "true" })
        })))
      .handle("metrics", ({ params }) => Effect.flatMap(box(params.id), (b) => call(() => b.metrics())))
      .handle("action", ({ params, payload }) =>
        Effect.flatMap(box(params.id), (b) => call(async () => ({ result: await kinds.call(b.id, params.method, payload?.args ?? []) })))))

  const entry = (params: { readonly id: string; readonly execId: string }) =>
    Effect.flatMap(box(params.id), (b) => {
      const found = executions.get(b.id, params.execId)
      return found ? Effect.succeed(found) : Effect.fail(apiError("ExecutionNotFound", `no execution ${params.execId} in box ${params.id} (ended executions are kept until read and waited, or for 10 minutes)`, { execId: params.execId }))
    })

  const executionsGroup = HttpApiBuilder.group(Api, "executions", (h) =>
    h
      .handle("create", ({ params, payload }) =>
        Effect.flatMap(box(params.id), (b) => call(async () => {
          const { command, args = [], ...execOptions } = payload
          const execution = await b.exec(command, args, execOptions as ExecOptions)
          return { id: executions.add(b.id, execution).id }
        })))
      .handle("output", ({ params }) =>
        Effect.flatMap(entry(params), (e) => {
          const ticket = e.claim()
          if (ticket === undefined) return Effect.fail(apiError("ExecutionBusy", `another client reads the output of execution ${params.execId}`, { execId: params.execId }))
          const events: AsyncIterable<any> = {
            [Symbol.asyncIterator]: () => ({
              next: async () => {
                const event = await e.next(ticket)
                return event === undefined ? { done: true, value: undefined } : { done: false, value: event }
              }
            })
          }
          // A reader that disconnects interrupts the stream: its place is free, unread output stays.
          return Effect.succeed(Stream.fromAsyncIterable(events, toApiError).pipe(Stream.ensuring(Effect.sync(() => e.release(ticket)))))
        }))
      .handle("stdin", ({ params, payload }) =>
        Effect.flatMap(entry(params), (e) => {
          const stdin = e.execution.stdin()
          return Stream.runForEach(chunksOf(payload), (chunk) => call(() => stdin.write(chunk)))
        }))
      .handle("closeStdin", ({ params }) => Effect.flatMap(entry(params), (e) => call(() => e.execution.stdin().close())))
      .handle("resize", ({ params, payload }) => Effect.flatMap(entry(params), (e) => call(() => e.execution.resize(payload.rows, payload.cols))))
      .handle("signal", ({ params, payload }) =>
        Effect.flatMap(entry(params), (e) => {
          const signal = typeof payload.signal === "number" ? payload.signal : os.constants.signals[payload.signal.toUpperCase() as keyof typeof os.constants.signals]
          return signal === undefined
            ? Effect.fail(apiError("InvalidOptions", `invalid option "signal": unknown signal ${JSON.stringify(payload.signal)}`, { field: "signal" }))
            : call(() => e.execution.kill(signal))
        }))
      .handle("wait", ({ params }) => Effect.flatMap(entry(params), (e) => call(async () => plain(await e.wait())))))

  const filesGroup = HttpApiBuilder.group(Api, "files", (h) =>
    h
      .handle("upload", ({ params, query, payload }) =>
        Effect.flatMap(box(params.id), (b) =>
          Effect.acquireUseRelease(
            call(() => fs.mkdtemp(path.join(os.tmpdir(), "boxlite-upload-"))),
            (stage) =>
              Effect.gen(function*() {
                // Unpacked here (no absolute or .. names, no devices or hard links, owned by this user),
                // then copied in with box.copyIn and its rules.
                const unpack = tar.x({ cwd: stage, strict: true, preserveOwner: false, filter: (_p, entry) => ["File", "OldFile", "Directory", "SymbolicLink"].includes((entry as tar.ReadEntry).type) })
                // Settles with the archive's fault, if any, and never rejects: the fault may come while
                // chunks are still being written, before anything awaits it.
                let fault: ReturnType<typeof apiError> | undefined
                const settled = finished(unpack).then(
                  () => undefined,
                  (e: unknown) => (fault = apiError("BadRequest", `the body is not a tar archive: ${(e as Error).message}`))
                )
                // A broken archive stops the writing (it never drains again); the rest of the body is not read.
                const write = (chunk: Uint8Array) =>
                  new Promise<void>((resolve) => {
                    if (unpack.write(Buffer.from(chunk))) return resolve()
                    unpack.once("drain", () => resolve())
                    void settled.then(() => resolve())
                  })
                yield* Stream.runForEach(chunksOf(payload), (chunk) => (fault ? Effect.fail(fault) : Effect.promise(() => write(chunk))))
                unpack.end()
                yield* Effect.promise(() => settled)
                if (fault) return yield* Effect.fail(fault)
                for (const name of yield* call(() => fs.readdir(stage))) yield* call(() => b.copyIn(path.join(stage, name), query.path))
              }),
            (stage) => Effect.promise(() => fs.rm(stage, { recursive: true, force: true }))
          )))
      .handle("download", ({ params, query }) =>
        Effect.flatMap(box(params.id), (b) =>
          Effect.gen(function*() {
            const name = path.posix.basename(query.path.replace(/\/+$/, ""))
            if (name === "") return yield* apiError("InvalidOptions", `invalid option "path": name a file or directory below / (got ${JSON.stringify(query.path)})`, { field: "path" })
            const stage = yield* call(() => fs.mkdtemp(path.join(os.tmpdir(), "boxlite-download-")))
            const cleanup = Effect.promise(() => fs.rm(stage, { recursive: true, force: true }))
            yield* call(() => b.copyOut(query.path, stage)).pipe(Effect.tapError(() => cleanup))
            const packed = tar.c({ cwd: stage, portable: true }, [name]) as unknown as AsyncIterable<Uint8Array>
            return Stream.fromAsyncIterable(packed, toApiError).pipe(Stream.ensuring(cleanup))
          }))))

  const snapshotsGroup = HttpApiBuilder.group(Api, "snapshots", (h) =>
    h
      .handle("list", () => call(async () => plain(await runtime.snapshots.list())))
      .handle("create", ({ params, payload }) =>
        Effect.flatMap(box(params.id), (b) => call(async () => plain(await b.snapshot(payload?.name === undefined ? {} : { name: payload.name })))))
      .handle("clone", ({ params, payload }) =>
        call(async () => {
          const created = await runtime.create({ detach: true, ...(payload?.options as BoxOptions | undefined), fromSnapshot: params.id })
          return plain(await created.info())
        }))
      .handle("remove", ({ params }) => call(() => runtime.snapshots.remove(params.id))))

  return Layer.mergeAll(runtimeGroup, imagesGroup, boxesGroup, executionsGroup, filesGroup, snapshotsGroup)
}

const digest = (s: string) => createHash("sha256").update(s).digest()

/** Constant-time: `Authorization: Bearer <token>`. */
const authorized = (header: string | undefined, token: string): boolean => {
  const given = /^Bearer (.+)$/.exec(header ?? "")?.[1] ?? ""
  return timingSafeEqual(digest(given), digest(token))
}

/** The framework's own refusals (bad JSON, a wrong shape, a body too large, no route) as the API's JSON errors. */
const asApiResponse = (cause: Cause.Cause<unknown>) => {
  const error = Cause.squash(cause)
  if (HttpApiError.HttpApiSchemaError.is(error)) {
    return Effect.succeed(errorResponse("BadRequest", `${error.kind}: ${error.cause.message}`))
  }
  if (HttpApiError.HttpApiPayloadTooLarge.is(error)) return Effect.succeed(errorResponse("PayloadTooLarge", error.message))
  if (HttpServerError.isHttpServerError(error)) {
    const reason = error.reason
    if (reason._tag === "RouteNotFound") return Effect.succeed(errorResponse("NotFound", `no route ${reason.request.method} ${reason.request.url}`))
    if (reason._tag === "RequestParseError") {
      return Effect.succeed(reason.reason === "BodyTooLarge"
        ? errorResponse("PayloadTooLarge", `a JSON body may have at most ${MAX_JSON_BYTES} bytes`)
        : errorResponse("BadRequest", `the body cannot be read as JSON: ${String((reason.cause as Error | undefined)?.message ?? reason.description ?? "")}`))
    }
  }
  return Effect.failCause(cause)
}

/**
 * The body type each request is read as, whatever it says: raw bytes for stdin, a tar for
 * uploads, JSON for every other body. Clients that label a JSON body as a form (`curl -d`,
 * Python's urllib) or send none are served, not answered 415.
 */
const bodyTypeOf = (method: string, url: string): string | undefined => {
  const path = url.split("?")[0]!
  if (method === "PUT" && path.endsWith("/files")) return "application/x-tar"
  if (method === "POST" && path.endsWith("/stdin")) return "application/octet-stream"
  return method === "POST" ? "application/json" : undefined
}

/** Auth on TCP, body types and the JSON body limit, and JSON errors for what the framework refuses. */
const middleware = (token: string | undefined) =>
  HttpRouter.middleware((app) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (token !== undefined && !authorized(request.headers["authorization"], token)) {
        return errorResponse("Unauthorized", "this server needs `Authorization: Bearer <token>` (the token in its --token-file)")
      }
      const bodyType = bodyTypeOf(request.method, request.url)
      const typed = bodyType === undefined || request.headers["content-type"] === bodyType
        ? request
        : request.modify({ headers: Headers.set(request.headers, "content-type", bodyType) })
      const response = yield* app.pipe(
        Effect.provideService(HttpServerRequest.HttpServerRequest, typed),
        Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(MAX_JSON_BYTES)),
        Effect.catchCause(asApiResponse)
      )
      // A stream body whose Content-Length is past its cap is refused before the handler, with an empty 413.
      return response.status === 413 && response.body._tag === "Empty" ? errorResponse("PayloadTooLarge", "the body is larger than this endpoint takes") : response
    }), { global: true })

/** The routes of the API on `runtime` (no listener): for tests and for `serve`. */
export const routes = (options: ServerOptions) =>
  Layer.mergeAll(HttpApiBuilder.layer(Api, { openapiPath: "/v1/openapi.json" }).pipe(Layer.provide(handlers(options))), middleware(options.token))

/** Removes a socket file that nobody listens on (a crashed server's); one that answers is another server's: refused. */
const clearSocket = async (socketPath: string) => {
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath, () => {
      probe.destroy()
      resolve(true)
    })
    probe.once("error", () => resolve(false))
  })
  if (live) throw new BoxStateError(`${socketPath} is served by another process: pick another --listen`)
  await fs.rm(socketPath, { force: true })
}

export interface RunningServer {
  /** `unix:///abs/path.sock` or `http://127.0.0.1:PORT`: what BOXLITE_URL takes. */
  readonly url: string
  /** Stops listening (open streams are cut); boxes stay. */
  readonly close: () => Promise<void>
}

/**
 * Listens on `options.listen` until `close()`. Refuses a home another live server serves
 * (one server per home: executions and kind boxes live in the server's process) and TCP
 * without a token.
 */
export const start = async (options: ServerOptions & { readonly homeDir: string }): Promise<RunningServer> => {
  const lock = await acquireLock(options.homeDir, options.listen)
  try {
    if (options.listen.type === "tcp" && !options.token) throw new InvalidOptions("tokenFile", "a TCP listener needs a bearer token (--token-file)")
    // Opens the home now (made private; another user's is refused) rather than at the first request.
    await options.runtime.homeDir
    if (options.listen.type === "unix") await clearSocket(options.listen.path)
    // Streams still open at close (an output being read, a wait) are cut after a moment.
    const shutdown = { gracefulShutdownTimeout: "2 seconds" } as const
    const listenOptions = options.listen.type === "unix" ? { path: options.listen.path, ...shutdown } : { host: options.listen.host, port: options.listen.port, ...shutdown }
    // No request timeout: an output stream or a wait may last as long as the command runs.
    const server = HttpRouter.serve(routes(options), { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => http.createServer({ requestTimeout: 0 }), listenOptions))
    )
    const scope = Effect.runSync(Scope.make())
    const context = await Effect.runPromise(Layer.buildWithScope(server, scope))
    const address = (context.mapUnsafe.get(HttpServer.HttpServer.key) as HttpServer.HttpServer["Service"]).address
    if (options.listen.type === "unix") await fs.chmod(options.listen.path, 0o600)
    const url = address._tag === "UnixPathAddress" ? `unix://${address.path}` : `http://${options.listen.type === "tcp" ? options.listen.host : "127.0.0.1"}:${address.port}`
    return {
      url,
      close: async () => {
        await Effect.runPromise(Scope.close(scope, Exit.void)).catch(() => undefined)
        await lock.release()
      }
    }
  } catch (e) {
    await lock.release()
    throw e
  }
}

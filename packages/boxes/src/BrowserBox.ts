/**
 * BrowserBox: Chromium, Firefox or WebKit running in a box, driven from the host. `start()`
 * boots the box, launches the browser in it (as a supervised process of the non-root user
 * `browser`) and resolves once the browser's endpoint answers on a host port of 127.0.0.1 that
 * the runtime picked; `endpoint()` is that URL. The browser going away is never silent: start()
 * or the next `endpoint()` fails with a BrowserError carrying its exit code and stderr tail.
 */
import { assertBoxOptionKeys, type Box, type BoxInfo, type BoxMetrics, type BoxOptions, BoxStateError, type CreateError, type ExecError, InvalidOptions, Runtime, type StartError, TimeoutError } from "@boxlite/core"
import type { Boxlite, Box as PromiseBox } from "@boxlite/core/promise"
import { Deferred, Effect, Fiber, Schema, type Scope, Stream } from "effect"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import { BrowserError, BROWSERS, type BrowserType, endpointOf, GUEST_PORT, launchCommand, Tail, waitForBrowser } from "./internal/Browsers.js"

export { BrowserError, type BrowserType }

/**
 * The image when none is given: `$BOXLITE_BROWSER_IMAGE` (e.g. your registry's copy), else the
 * layout `scripts/install.sh` builds in this checkout (images/out/browser).
 */
export const defaultImage = (): string =>
  process.env["BOXLITE_BROWSER_IMAGE"] || `oci:${fileURLToPath(new URL("../../../images/out/browser", import.meta.url))}:latest`

export interface BrowserBoxOptions extends BoxOptions {
  /** Default "chromium". */
  readonly browser?: BrowserType
  /** How long the browser may take to answer once the box is up. Default 180000 (suits TCG). */
  readonly startTimeoutMs?: number
}

interface Resolved {
  readonly browser: BrowserType
  readonly startTimeoutMs: number
  readonly box: BoxOptions
}

const isBrowser = Schema.is(Schema.Literals(BROWSERS))
const isTimeout = Schema.is(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))

/** BrowserBox's own options checked, the box's given the reference's defaults (2 CPUs, 2 GiB) and the forward. */
const resolve = (options: BrowserBoxOptions): Effect.Effect<Resolved, InvalidOptions> =>
  Effect.suspend(() => {
    const { browser = "chromium", startTimeoutMs = 180_000, ...box } = options
    if (!isBrowser(browser)) return Effect.fail(new InvalidOptions("browser", `must be one of ${BROWSERS.join(", ")} (got ${JSON.stringify(browser)})`))
    if (!isTimeout(startTimeoutMs)) return Effect.fail(new InvalidOptions("startTimeoutMs", `must be an integer >= 1 (got ${JSON.stringify(startTimeoutMs)})`))
    return Effect.succeed({
      browser,
      startTimeoutMs,
      box: {
        image: defaultImage(),
        cpus: Math.min(2, os.cpus().length),
        memoryMib: 2048,
        ...box,
        ports: [...(box.ports ?? []), { hostPort: 0, guestPort: GUEST_PORT[browser] }]
      }
    })
  })

/** The host port the runtime bound for the browser's forward (the last one: ours). */
const hostPortOf = (ports: ReadonlyArray<{ readonly guestPort: number; readonly hostPort: number }>, browser: BrowserType): number =>
  [...ports].reverse().find((p) => p.guestPort === GUEST_PORT[browser])!.hostPort

/** A started browser (Effect face). */
export interface Browser {
  readonly box: Box
  readonly browser: BrowserType
  /** The endpoint URL; fails with BrowserError once the browser has exited. */
  readonly endpoint: Effect.Effect<string, BrowserError>
}

export type BrowserStartError = CreateError | StartError | ExecError | InvalidOptions | TimeoutError | BrowserError

/** A browser in a box that lives as long as the enclosing Scope (Effect face): removed on close. */
export const scoped = (options: BrowserBoxOptions = {}): Effect.Effect<Browser, BrowserStartError, Runtime | Scope.Scope> =>
  Effect.gen(function*() {
    const { browser, startTimeoutMs, box: boxOptions } = yield* resolve(options)
    const box = yield* Effect.acquireRelease(Runtime.use((runtime) => runtime.create(boxOptions)), (box) => box.remove)
    yield* box.start
    const hostPort = hostPortOf((yield* box.info.pipe(Effect.orDie)).ports, browser)
    const { command, args, options: execOptions } = launchCommand(browser, hostPort)
    const execution = yield* box.exec(command, args, execOptions)
    const stderr = new Tail()
    yield* Effect.forkScoped(Stream.runDrain(execution.stdout).pipe(Effect.ignore))
    const drained = yield* Effect.forkScoped(Stream.runForEach(execution.stderr, (chunk) => Effect.sync(() => stderr.push(chunk))).pipe(Effect.ignore))
    // The exit is reported once stderr is read to its end, so the tail is complete.
    const exit = yield* Deferred.make<BrowserError>()
    let gone: BrowserError | undefined
    yield* Effect.forkScoped(Effect.gen(function*() {
      const result = yield* Effect.exit(execution.wait)
      yield* Fiber.join(drained)
      gone = new BrowserError(browser, result._tag === "Success" ? result.value.exitCode : undefined, stderr.toString())
      yield* Deferred.succeed(exit, gone)
    }))
    const exited = Effect.runPromise(Deferred.await(exit))
    yield* Effect.tryPromise({ try: () => waitForBrowser(browser, hostPort, exited, startTimeoutMs, stderr), catch: (e) => e as TimeoutError | BrowserError })
    const url = endpointOf(browser, hostPort)
    return { box, browser, endpoint: Effect.suspend(() => (gone ? Effect.fail(gone) : Effect.succeed(url))) }
  })

interface Launched {
  readonly box: PromiseBox
  readonly url: string
  /** Set when the browser exits after start. */
  gone?: BrowserError
}

/** Promise face: `await using browser = new BrowserBox({ browser: "firefox" }); await browser.start()`. */
export class BrowserBox implements AsyncDisposable {
  private started: Promise<Launched> | undefined
  private launched: Launched | undefined

  /** Throws InvalidOptions at once for a key that is not an option (naming the one it probably meant). */
  constructor(private readonly options: BrowserBoxOptions, private readonly runtime: Boxlite) {
    const { browser: _browser, startTimeoutMs: _startTimeoutMs, ...boxOptions } = options
    assertBoxOptionKeys(boxOptions)
  }

  /** Which browser this box runs. */
  get browser(): BrowserType {
    return this.options.browser ?? "chromium"
  }

  /** Boots the box and the browser; resolves when the endpoint answers from the host. Later calls: the same start. */
  start(): Promise<void> {
    this.started ??= this.launch()
    return this.started.then(() => undefined)
  }

  private async launch(): Promise<Launched> {
    const { browser, startTimeoutMs, box: boxOptions } = await Effect.runPromise(resolve(this.options))
    const box = await this.runtime.create(boxOptions)
    try {
      await box.start()
      const hostPort = hostPortOf((await box.info()).ports, browser)
      const { command, args, options } = launchCommand(browser, hostPort)
      const execution = await box.exec(command, args, options)
      const stderr = new Tail()
      void execution.stdout().text().catch(() => {})
      const drained = (async () => {
        for await (const chunk of execution.stderr().bytes()) stderr.push(chunk)
      })().catch(() => {})
      // The exit is reported once stderr is read to its end, so the tail is complete.
      const exited = execution.wait().then(
        async (result) => (await drained, new BrowserError(browser, result.exitCode, stderr.toString())),
        async (e: unknown) => (await drained, new BrowserError(browser, undefined, stderr.toString(), `${browser}: ${(e as Error).message}`))
      )
      await waitForBrowser(browser, hostPort, exited, startTimeoutMs, stderr)
      const launched: Launched = { box, url: endpointOf(browser, hostPort) }
      void exited.then((e) => (launched.gone = e))
      this.launched = launched
      return launched
    } catch (e) {
      await box.remove()
      throw e
    }
  }

  /**
   * The browser's endpoint on the host's 127.0.0.1: chromium's DevTools HTTP URL (for
   * `connectOverCDP` / puppeteer's `browserURL`), firefox's WebDriver BiDi WebSocket URL,
   * webkit's WebDriver URL. Throws BrowserError if the browser has exited since.
   */
  endpoint(): string {
    if (this.launched === undefined) throw new BoxStateError("the BrowserBox is not started: await start() first")
    if (this.launched.gone) throw this.launched.gone
    return this.launched.url
  }

  /** The box the browser runs in (after start()): exec, files, info, metrics. */
  get box(): PromiseBox {
    if (this.launched === undefined) throw new BoxStateError("the BrowserBox is not started: await start() first")
    return this.launched.box
  }

  /** The box's id once started; BoxStateError before. */
  get id(): string {
    return this.box.id
  }

  /** The box's info; starts the box and the browser if needed. */
  async info(): Promise<BoxInfo> {
    await this.start()
    return this.box.info()
  }

  /** CPU time, memory and network use of the box; starts it if needed. */
  async metrics(): Promise<BoxMetrics> {
    await this.start()
    return this.box.metrics()
  }

  /** Stops and removes the box (if it was started). */
  async stop(): Promise<void> {
    const started = this.started
    this.started = undefined
    this.launched = undefined
    if (started) await (await started.catch(() => undefined))?.box.remove()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }
}

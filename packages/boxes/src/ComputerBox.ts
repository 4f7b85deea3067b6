/**
 * ComputerBox: a desktop in a box for computer-use agents. Screenshots, mouse and keyboard
 * through 14 functions (xdotool in the box), and a noVNC viewer a person opens in a browser
 * on the host. The image (images/desktop) runs the session as the unprivileged user `desktop`.
 */
import {
  type Box,
  type BoxOptions,
  BoxliteError,
  BoxStateError,
  type CreateError,
  type ExecOptions,
  InvalidOptions,
  type Runtime,
  type StartError
} from "@boxlite/core"
import { asBoxliteError, type Box as PromiseBox, type Boxlite } from "@boxlite/core/promise"
import { Effect, Exit, Scope } from "effect"
import { fileURLToPath } from "node:url"
import * as internal from "./internal/desktop.js"
import { run, scoped as scopedBox, SimpleBox } from "./SimpleBox.js"

export type { Desktop, DesktopError, Screenshot, ScrollDirection } from "./internal/desktop.js"

export interface ComputerBoxOptions extends BoxOptions {
  /** Screen width in pixels (320-4096). Default 1024. */
  readonly width?: number
  /** Screen height in pixels (320-4096). Default 768. */
  readonly height?: number
}

/** The desktop image built by `images/build.sh desktop` (scripts/install.sh) in this repository. */
export const defaultImage = `oci:${fileURLToPath(new URL("../../../images/out/desktop", import.meta.url))}:latest`

/**
 * The box options of a ComputerBox: the desktop image, 2 vCPUs and 2 GiB (a desktop under TCG
 * needs them), and the viewer's port forwarded from a free port on the host's 127.0.0.1.
 */
const boxOptions = (options: ComputerBoxOptions): { readonly box: BoxOptions; readonly width: number; readonly height: number } => {
  const { width, height, ...rest } = options
  return {
    width: internal.validateSize("width", width, internal.defaultWidth),
    height: internal.validateSize("height", height, internal.defaultHeight),
    box: {
      image: defaultImage,
      cpus: 2,
      memoryMib: 2048,
      ...rest,
      ports: [...(rest.ports ?? []), { hostPort: 0, guestPort: internal.viewerGuestPort }]
    }
  }
}

const viewerUrl = (ports: ReadonlyArray<{ readonly guestPort: number; readonly hostPort: number; readonly hostIp?: string }>): string => {
  const port = ports.filter((p) => p.guestPort === internal.viewerGuestPort).at(-1)
  if (port === undefined || port.hostPort === 0) throw new BoxStateError("the box has no host port for the desktop viewer")
  return `http://127.0.0.1:${port.hostPort}/vnc.html?autoconnect=true&resize=scale`
}

/** A desktop on a new box for as long as the enclosing Scope (Effect face); the box is removed on close. */
export const scoped = (
  options: ComputerBoxOptions = {}
): Effect.Effect<internal.Desktop<StartError> & { readonly box: Box }, CreateError | StartError | InvalidOptions, Runtime | Scope.Scope> =>
  Effect.gen(function*() {
    const { box: create, width, height } = yield* Effect.try({ try: () => boxOptions(options), catch: (e) => e as InvalidOptions })
    const box = yield* scopedBox(create)
    yield* box.start
    const info = yield* box.info.pipe(Effect.orDie)
    const url = yield* Effect.try({ try: () => viewerUrl(info.ports), catch: (e) => e as BoxStateError }).pipe(Effect.orDie)
    const desktop = yield* internal.make((command, args, execOptions) => run(box, command, args, execOptions), { width, height, viewerUrl: url })
    return { ...desktop, box }
  })

/** Promise face: `await using desktop = new ComputerBox(); await desktop.waitUntilReady()`. */
export class ComputerBox extends SimpleBox {
  private readonly settings: ReturnType<typeof boxOptions>
  private session: Promise<{ readonly box: PromiseBox; readonly desktop: internal.Desktop<BoxliteError>; readonly scope: Scope.Closeable }> | undefined
  private url: string | undefined

  /** Throws InvalidOptions at once for a bad or unknown option, naming it. */
  constructor(options: ComputerBoxOptions, runtime: Boxlite) {
    const settings = boxOptions(options)
    super(settings.box, runtime)
    this.settings = settings
  }

  /** Boots the box and starts the desktop session (not yet waiting for it); later calls return the same box. */
  override start(): Promise<PromiseBox> {
    return this.desktop().then((s) => s.box)
  }

  private desktop() {
    const settings = this.settings
    this.session ??= super.start().then(async (box) => {
      const url = viewerUrl((await box.info()).ports)
      const execute = (command: string, args: ReadonlyArray<string>, options?: ExecOptions) =>
        Effect.tryPromise({
          try: async () => {
            const execution = await box.exec(command, args, options)
            const [stdout, stderr] = await Promise.all([execution.stdout().text(), execution.stderr().text()])
            return { ...(await execution.wait()), stdout, stderr }
          },
          catch: asBoxliteError
        })
      const scope = Effect.runSync(Scope.make())
      const desktop = await Effect.runPromise(internal.make(execute, { width: settings.width, height: settings.height, viewerUrl: url }).pipe(Scope.provide(scope)))
      this.url = url
      return { box, desktop, scope }
    })
    return this.session
  }

  private call<A>(f: (desktop: internal.Desktop<BoxliteError>) => Effect.Effect<A, BoxliteError>): Promise<A> {
    return this.desktop().then(({ desktop }) => Effect.runPromise(f(desktop))).catch((e: unknown) => Promise.reject(asBoxliteError(e)))
  }

  /** The screen size this box was configured with. */
  get width(): number {
    return this.settings.width
  }
  get height(): number {
    return this.settings.height
  }

  /** Boots the box if needed and waits until the desktop is drawable and watchable (default 60 s). */
  waitUntilReady(timeoutMs?: number): Promise<void> {
    return this.call((d) => d.waitUntilReady(timeoutMs))
  }
  /** `{ data: base64 PNG, width, height, format: "png" }`. */
  screenshot(): Promise<internal.Screenshot> {
    return this.call((d) => d.screenshot)
  }
  mouseMove(x: number, y: number): Promise<void> {
    return this.call((d) => d.mouseMove(x, y))
  }
  leftClick(): Promise<void> {
    return this.call((d) => d.leftClick)
  }
  rightClick(): Promise<void> {
    return this.call((d) => d.rightClick)
  }
  middleClick(): Promise<void> {
    return this.call((d) => d.middleClick)
  }
  doubleClick(): Promise<void> {
    return this.call((d) => d.doubleClick)
  }
  tripleClick(): Promise<void> {
    return this.call((d) => d.tripleClick)
  }
  /** Presses the left button at the start, moves to the end and releases it there. */
  leftClickDrag(startX: number, startY: number, endX: number, endY: number): Promise<void> {
    return this.call((d) => d.leftClickDrag(startX, startY, endX, endY))
  }
  /** `[x, y]` of the mouse pointer. */
  cursorPosition(): Promise<readonly [number, number]> {
    return this.call((d) => d.cursorPosition)
  }
  /** Types any Unicode text as keystrokes (a newline presses Return). */
  type(text: string): Promise<void> {
    return this.call((d) => d.type(text))
  }
  /** xdotool key syntax: `"Return"`, `"ctrl+a"`, `"ctrl+shift+t"`, several separated by spaces. */
  key(keys: string): Promise<void> {
    return this.call((d) => d.key(keys))
  }
  /** Scrolls at `(x, y)` by `amount` wheel clicks (default 3). */
  scroll(x: number, y: number, direction: internal.ScrollDirection, amount?: number): Promise<void> {
    return this.call((d) => d.scroll(x, y, direction, amount))
  }
  /** `[width, height]` as the X server reports it. */
  getScreenSize(): Promise<readonly [number, number]> {
    return this.call((d) => d.getScreenSize)
  }

  /** noVNC on the host's 127.0.0.1 (the port is picked at start): watch and take over in a browser. */
  viewerUrl(): string {
    if (this.url === undefined) throw new BoxStateError("the ComputerBox has not started: call start() or waitUntilReady() first")
    return this.url
  }

  /** Ends the session, then stops and removes the box. */
  override async stop(): Promise<void> {
    const session = this.session
    this.session = undefined
    this.url = undefined
    const started = await session?.catch(() => undefined)
    if (started) await Effect.runPromise(Scope.close(started.scope, Exit.void))
    await super.stop()
  }
}

/**
 * What BrowserBox runs in the guest for each browser, and how the host tells that the browser
 * answers. Both browsers' debug endpoints listen on the guest's loopback only (new headless
 * Chromium ignores --remote-debugging-address), while a forwarded port arrives on the guest's
 * network interface: so socat relays the forwarded port to the browser on loopback. The browser
 * listens on the same port number as the host side, so the Host header a client sends
 * (`127.0.0.1:<host port>`) names the browser's own address: Firefox refuses WebSocket
 * handshakes whose Host port is not its own. Everything runs as the image's non-root user `browser`.
 */
import { BoxliteError, TimeoutError } from "@boxlite/core"

export const BROWSERS = ["chromium", "firefox", "webkit"] as const
export type BrowserType = (typeof BROWSERS)[number]

/** The guest port forwarded to the host (the reference's 9222/9223/9224). */
export const GUEST_PORT: Readonly<Record<BrowserType, number>> = { chromium: 9222, firefox: 9223, webkit: 9224 }

export const BROWSER_USER = "browser"
const HOME = "/home/browser"

const launch: Readonly<Record<BrowserType, (port: number) => string>> = {
  // --no-sandbox: the VM is the sandbox (README). A fresh profile per start; no background
  // traffic (updates, sync, safe browsing) from a box that may have no route out.
  chromium: (port) =>
    `exec chromium --headless --no-sandbox --disable-gpu --no-first-run --no-default-browser-check ` +
    `--disable-background-networking --disable-component-update --disable-sync --disable-breakpad ` +
    `--user-data-dir="$(mktemp -d)" --remote-debugging-port=${port} about:blank`,
  // WebDriver BiDi at ws://host:port/session (Firefox ESR 128+ has no CDP).
  firefox: (port) =>
    `exec firefox-esr --headless --no-remote --profile "$(mktemp -d)" --remote-debugging-port=${port}`,
  // WebKitGTK (GTK3) needs a display: a private Xvfb. The driver starts MiniBrowser per session.
  webkit: (port) =>
    `Xvfb :99 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & export DISPLAY=:99; ` +
    `exec WebKitWebDriver --port=${port}`
}

/**
 * The supervised command: relay in the background, then the shell becomes the browser, so the
 * execution ends (and its exit code and stderr tell why) exactly when the browser does.
 */
export const launchCommand = (browser: BrowserType, hostPort: number): { command: string; args: Array<string>; options: { user: string; env: Record<string, string>; workingDir: string } } => ({
  command: "/bin/sh",
  args: [
    "-c",
    `socat TCP-LISTEN:${GUEST_PORT[browser]},fork,reuseaddr TCP:127.0.0.1:${hostPort} </dev/null >/dev/null 2>&1 & ` +
    `cd ${HOME} && ${launch[browser](hostPort)}`
  ],
  options: { user: BROWSER_USER, env: { HOME, TMPDIR: "/tmp" }, workingDir: HOME }
})

/**
 * The endpoint a client uses: chromium's DevTools HTTP URL, firefox's BiDi WebSocket URL,
 * webkit's WebDriver URL. Clients send `Host: 127.0.0.1:<port>`, which both browsers accept
 * (an IP), and Chromium builds `webSocketDebuggerUrl` from that header: it names the host side.
 */
export const endpointOf = (browser: BrowserType, hostPort: number): string =>
  browser === "firefox" ? `ws://127.0.0.1:${hostPort}/session` : `http://127.0.0.1:${hostPort}`

/** The HTTP URL whose answer means the browser (not just the relay) is up. */
const probeUrl = (browser: BrowserType, hostPort: number): string =>
  `http://127.0.0.1:${hostPort}${browser === "chromium" ? "/json/version" : browser === "webkit" ? "/status" : "/"}`

/**
 * One probe from the host (a loaded TCG guest may take seconds to answer). The relay accepts
 * and then drops connections until the browser listens, so only an HTTP answer counts
 * (Firefox answers a plain GET with an HTTP error).
 */
export const answers = async (browser: BrowserType, hostPort: number): Promise<boolean> => {
  try {
    const response = await fetch(probeUrl(browser, hostPort), { signal: AbortSignal.timeout(20_000) })
    const body = await response.text()
    if (browser === "chromium") return response.ok && body.includes("webSocketDebuggerUrl")
    if (browser === "webkit") return response.ok && /"ready"\s*:\s*true/.test(body)
    return response.status > 0
  } catch {
    return false
  }
}

/** The last `max` bytes of a stream, for error messages. */
export class Tail {
  private text = ""
  private readonly decoder = new TextDecoder()
  constructor(private readonly max = 4096) {}
  push(chunk: Uint8Array): void {
    this.text = (this.text + this.decoder.decode(chunk, { stream: true })).slice(-this.max)
  }
  toString(): string {
    return this.text.trim()
  }
}

/** Polls the endpoint from the host until it answers, the browser exits, or `timeoutMs` runs out. */
export const waitForBrowser = async (
  browser: BrowserType,
  hostPort: number,
  exited: Promise<BrowserError>,
  timeoutMs: number,
  stderr: Tail
): Promise<void> => {
  let gone: BrowserError | undefined
  void exited.then((e) => (gone = e))
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (gone) throw gone
    if (await answers(browser, hostPort)) return
    if (gone) throw gone
    if (Date.now() > deadline) {
      throw new TimeoutError(`${browser} did not answer on ${endpointOf(browser, hostPort)} within ${timeoutMs} ms${stderr.toString() ? `\n--- ${browser} stderr (tail) ---\n${stderr}` : ""}`, timeoutMs)
    }
    await Promise.race([new Promise((r) => setTimeout(r, 500)), exited])
  }
}

/** The browser process in the box ended (at start or later); its exit status and stderr tail. */
export class BrowserError extends BoxliteError {
  override readonly _tag = "BrowserError" as const
  constructor(readonly browser: BrowserType, readonly exitCode: number | undefined, readonly stderrTail: string, problem?: string) {
    super({
      message: `${problem ?? `${browser} exited${exitCode === undefined ? "" : ` with code ${exitCode}`}`}` +
        (stderrTail ? `\n--- ${browser} stderr (tail) ---\n${stderrTail}` : "")
    })
  }
}

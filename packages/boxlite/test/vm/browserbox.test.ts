/**
 * BrowserBox end to end: the browsers run in boxes of images/out/browser, the automation
 * clients (playwright-core, puppeteer-core, plain WebDriver HTTP) run here on the host. Pages
 * come from inside the box and from a test host in a network namespace this file creates
 * (name and subnet unique to the run).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Boxlite, BrowserBox, BrowserError, InvalidOptions } from "boxlite"
import * as BoxliteEffect from "boxlite/effect"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { chromium } from "playwright-core"
import puppeteer from "puppeteer-core"
import { enterOwnNetworkNamespace } from "@boxlite/driver-testkit"
import { addTestHost, boxDirs, qemuProcessesUnder, removeTestHost, sh, tempHome, uniqueSubnet } from "./helpers.js"

const repo = new URL("../../../../", import.meta.url).pathname
const IMAGE = `oci:${path.join(repo, "images/out/browser")}:latest`

// This file's boxes, test host and servers live in a network namespace of its own: a page's
// probe of 10.0.2.2 (unmapped) goes nowhere, without a route added to the host's.
enterOwnNetworkNamespace()

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })

const ns = `blb${process.pid % 100000}`
const SUBNET = uniqueSubnet(4)
const TEST_HOST = `${SUBNET}.2`

const page = (title: string) =>
  `<!doctype html><html><head><title>${title}</title></head><body>` +
  `<form id="f" onsubmit="event.preventDefault(); document.getElementById('out').textContent = 'Hello, ' + document.getElementById('name').value">` +
  `<input id="name"><button id="go" type="submit">Go</button></form><p id="out"></p></body></html>`

let testHost: ChildProcess
let hostLoopback: http.Server
let loopbackPort = 0
const siteDir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-site-"))

beforeAll(async () => {
  fs.writeFileSync(path.join(siteDir, "index.html"), page("Test host page"))
  addTestHost(ns, SUBNET, { defaultRoute: true })
  testHost = spawn("ip", ["netns", "exec", ns, "python3", "-u", "-m", "http.server", "--bind", TEST_HOST, "--directory", siteDir, "80"], { stdio: ["ignore", "pipe", "ignore"] })
  await new Promise((r) => testHost.stdout!.once("data", r))
  // A service on the host's loopback that a page in a box must not reach.
  hostLoopback = http.createServer((_, res) => res.writeHead(200, { "Access-Control-Allow-Origin": "*" }).end("host-loopback secret"))
  await new Promise<void>((r) => hostLoopback.listen(0, "127.0.0.1", r))
  loopbackPort = (hostLoopback.address() as { port: number }).port
})

afterAll(async () => {
  await runtime.close()
  testHost?.kill()
  hostLoopback?.close()
  removeTestHost(ns)
  fs.rmSync(siteDir, { recursive: true, force: true })
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
})

describe("BrowserBox", () => {
  const boxes: Partial<Record<"chromium" | "firefox" | "webkit", BrowserBox>> = {}
  afterAll(async () => {
    for (const b of Object.values(boxes)) await b.stop()
  })

  it("three BrowserBoxes at once, one per engine, each answering on its own host port", async () => {
    for (const browser of ["chromium", "firefox", "webkit"] as const) boxes[browser] = new BrowserBox({ browser, image: IMAGE, runtime, startTimeoutMs: 480_000 })
    await Promise.all(Object.values(boxes).map((b) => b.start()))
    const endpoints = Object.values(boxes).map((b) => b.endpoint())
    for (const e of endpoints) expect(e).toMatch(/^(http|ws):\/\/127\.0\.0\.1:\d+/)
    expect(new Set(endpoints.map((e) => new URL(e).port)).size).toBe(3)
    // Chromium's DevTools answers through the endpoint and names the host side in its WebSocket URL.
    const version = await (await fetch(`${boxes.chromium!.endpoint()}/json/version`)).json() as { webSocketDebuggerUrl: string; Browser: string }
    expect(version.Browser).toMatch(/Chrome\/\d+/)
    expect(version.webSocketDebuggerUrl).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${new URL(boxes.chromium!.endpoint()).port}/devtools/browser/`))
    // The browsers run as the non-root user.
    const users = await sh(boxes.chromium!.box, "for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = chromium ] && stat -c %U $d; done | sort -u")
    expect(users.out).toBe("browser")
  }, 900_000)

  it("playwright-core over CDP: a page from inside the box and one from a test host; click, fill, evaluate, screenshot", async () => {
    const box = boxes.chromium!.box
    await sh(box, `cat > /tmp/page.html <<'EOF'\n${page("In-box page")}\nEOF\nprintf '%s\\n' '#!/bin/sh' 'while IFS= read -r l; do [ "$(printf %s "$l" | tr -d "\\r")" ] || break; done' "printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\n\\r\\n'" 'cat /tmp/page.html' > /tmp/serve.sh; chmod +x /tmp/serve.sh`)
    await box.exec("socat", ["TCP-LISTEN:8000,fork,reuseaddr", "EXEC:/tmp/serve.sh"], { user: "browser" })
    const browser = await chromium.connectOverCDP(boxes.chromium!.endpoint(), { timeout: 300_000 })
    try {
      const context = browser.contexts()[0] ?? await browser.newContext()
      const tab = await context.newPage()
      tab.setDefaultTimeout(180_000)
      await tab.goto("http://127.0.0.1:8000/")
      expect(await tab.title()).toBe("In-box page")
      await tab.fill("#name", "playwright")
      await tab.click("#go")
      expect(await tab.textContent("#out")).toBe("Hello, playwright")
      expect(await tab.evaluate(() => navigator.userAgent)).toMatch(/HeadlessChrome/)
      const png = await tab.screenshot()
      expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a")
      expect(png.length).toBeGreaterThan(1000)
      await tab.goto(`http://${TEST_HOST}/`)
      expect(await tab.title()).toBe("Test host page")
      await tab.close()
    } finally {
      await browser.close()
    }
  }, 600_000)

  it("puppeteer-core connect({ browserURL: endpoint }): the test host's page; fill, click, evaluate, screenshot", async () => {
    const browser = await puppeteer.connect({ browserURL: boxes.chromium!.endpoint(), protocolTimeout: 300_000 })
    try {
      const tab = await browser.newPage()
      tab.setDefaultTimeout(180_000)
      await tab.goto(`http://${TEST_HOST}/`)
      expect(await tab.title()).toBe("Test host page")
      await tab.type("#name", "puppeteer")
      await tab.click("#go")
      expect(await tab.$eval("#out", (e) => e.textContent)).toBe("Hello, puppeteer")
      expect(await tab.evaluate(() => 6 * 7)).toBe(42)
      const png = Buffer.from(await tab.screenshot())
      expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a")
      await tab.close()
    } finally {
      await browser.disconnect()
    }
  }, 600_000)

  it("a page cannot reach the host's loopback (10.0.2.2, 127.0.0.1), while the test host answers the same fetch", async () => {
    const browser = await puppeteer.connect({ browserURL: boxes.chromium!.endpoint(), protocolTimeout: 300_000 })
    try {
      const tab = await browser.newPage()
      tab.setDefaultTimeout(180_000)
      await tab.goto(`http://${TEST_HOST}/`)
      const fetchFrom = (url: string) =>
        tab.evaluate((u) => fetch(u, { signal: AbortSignal.timeout(20_000) }).then((r) => r.text(), (e: Error) => `failed: ${e.name}`), url)
      expect(await fetchFrom(`http://${TEST_HOST}/`)).toContain("Test host page")
      expect(await fetchFrom(`http://10.0.2.2:${loopbackPort}/`)).toMatch(/^failed/)
      expect(await fetchFrom(`http://127.0.0.1:${loopbackPort}/`)).toMatch(/^failed/)
      await tab.close()
    } finally {
      await browser.disconnect()
    }
    // The probe can succeed: the host's own fetch of the same service answers.
    expect(await (await fetch(`http://127.0.0.1:${loopbackPort}/`)).text()).toBe("host-loopback secret")
  }, 600_000)

  it("firefox: puppeteer-core over WebDriver BiDi loads the test host's page and reads its title", async () => {
    const browser = await puppeteer.connect({ browserWSEndpoint: boxes.firefox!.endpoint(), protocol: "webDriverBiDi", protocolTimeout: 300_000 })
    try {
      const tab = await browser.newPage()
      tab.setDefaultTimeout(180_000)
      await tab.goto(`http://${TEST_HOST}/`)
      expect(await tab.title()).toBe("Test host page")
      expect(await tab.evaluate(() => navigator.userAgent)).toMatch(/Firefox\//)
      await tab.close()
    } finally {
      await browser.disconnect()
    }
  }, 600_000)

  it("webkit: a WebDriver session navigates to the test host's page and reads its title", async () => {
    const endpoint = boxes.webkit!.endpoint()
    const call = async (method: string, url: string, body?: unknown) => {
      const response = await fetch(`${endpoint}${url}`, { method, ...(body ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } } : {}), signal: AbortSignal.timeout(300_000) })
      const json = await response.json() as { value: Record<string, unknown> & { sessionId?: string } }
      expect(response.status, JSON.stringify(json)).toBe(200)
      return json.value
    }
    const session = await call("POST", "/session", { capabilities: { alwaysMatch: {} } })
    const id = session.sessionId!
    try {
      await call("POST", `/session/${id}/url`, { url: `http://${TEST_HOST}/` })
      expect(await call("GET", `/session/${id}/title`)).toBe("Test host page")
    } finally {
      await call("DELETE", `/session/${id}`)
    }
  }, 600_000)

  it("a browser that dies after start: the next endpoint() throws BrowserError with its exit status", async () => {
    await sh(boxes.webkit!.box, "for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = WebKitWebDriver ] && kill -9 ${d#/proc/}; done")
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      try {
        boxes.webkit!.endpoint()
      } catch (e) {
        expect(e).toBeInstanceOf(BrowserError)
        expect((e as BrowserError).message).toMatch(/webkit exited/)
        return
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    throw new Error("endpoint() still answered 30 s after the browser was killed")
  }, 120_000)
})

describe("BrowserBox bad input and failures", () => {
  it("an unknown browser is InvalidOptions naming it; nothing is created", async () => {
    const browser = new BrowserBox({ browser: "opera" as never, image: IMAGE, runtime })
    const error = await browser.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidOptions)
    expect((error as InvalidOptions).field).toBe("browser")
    expect((error as Error).message).toMatch(/opera/)
    expect(boxDirs(home)).toEqual([])
    expect(() => browser.endpoint()).toThrow(/not started/)
    for (const [options, field] of [[{ startTimeoutMs: 0 }, "startTimeoutMs"], [{ memoryMib: 1 }, "memoryMib"]] as const) {
      const e = await new BrowserBox({ ...options, image: IMAGE, runtime }).start().catch((e: unknown) => e)
      expect(e).toBeInstanceOf(InvalidOptions)
      expect((e as InvalidOptions).field).toBe(field)
    }
    expect(boxDirs(home)).toEqual([])
  })

  it("a browser that fails to start: BrowserError with its stderr tail, and no box left (Promise and Effect faces)", async () => {
    // A PATH without the browser: the launch fails as a missing or broken browser would.
    const broken = { image: IMAGE, env: { PATH: "/nonexistent" }, memoryMib: 1024 }
    const browser = new BrowserBox({ ...broken, runtime })
    const error = await browser.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BrowserError)
    expect((error as BrowserError).exitCode).toBe(127)
    expect((error as BrowserError).stderrTail).toMatch(/chromium: not found/)
    expect(qemuProcessesUnder(home)).toEqual([])
    expect(boxDirs(home)).toEqual([])

    const exit = await Effect.runPromiseExit(
      Effect.scoped(BoxliteEffect.BrowserBox.scoped({ ...broken, browser: "firefox" })).pipe(Effect.provide(BoxliteEffect.layer({ homeDir: home })))
    )
    expect(exit._tag).toBe("Failure")
    expect(String(exit._tag === "Failure" ? exit.cause : "")).toMatch(/firefox-esr: not found/)
    expect(qemuProcessesUnder(home)).toEqual([])
    expect(boxDirs(home)).toEqual([])
  }, 600_000)
})

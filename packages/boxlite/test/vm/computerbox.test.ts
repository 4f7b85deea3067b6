// ComputerBox end to end: the desktop image under QEMU, driven by the 14 functions, checked
// through applications in the box (a Tk event logger, a Tk button, xterm writing a file) and
// through the noVNC viewer in headless Chromium on the host.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Boxlite, ComputerBox, ExecError, InvalidOptions } from "boxlite"
import { ComputerBox as ComputerBoxEffect, layer, SimpleBox } from "boxlite/effect"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import * as fs from "node:fs"
import * as path from "node:path"
import { inflateSync } from "node:zlib"
import { boxDirs, qemuProcessesUnder, tempHome } from "./helpers.js"

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
afterAll(() => runtime.close())

const expectNothingLeft = () => {
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
}

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what scrot and Chromium write). */
const decodePng = (png: Buffer) => {
  const width = png.readUInt32BE(16), height = png.readUInt32BE(20), depth = png[24], colorType = png[25], interlace = png[28]
  if (depth !== 8 || (colorType !== 2 && colorType !== 6) || interlace !== 0) throw new Error(`unsupported PNG: depth ${depth} color type ${colorType}`)
  const channels = colorType === 6 ? 4 : 3
  const idat: Array<Buffer> = []
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at), type = png.toString("latin1", at + 4, at + 8)
    if (type === "IDAT") idat.push(png.subarray(at + 8, at + 8 + length))
    at += length + 12
  }
  const raw = inflateSync(Buffer.concat(idat)), stride = width * channels
  const pixels = Buffer.alloc(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]!
      const a = x >= channels ? pixels[y * stride + x - channels]! : 0
      const b = y > 0 ? pixels[(y - 1) * stride + x]! : 0
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels]! : 0
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c)
      const predictor = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter]!
      pixels[y * stride + x] = (v + predictor) & 0xff
    }
  }
  /** The RGB pixels of rows [top, bottom) as one buffer, for comparisons. */
  const rows = (top: number, bottom: number) => {
    const out: Array<Buffer> = []
    for (let y = top; y < bottom; y++) for (let x = 0; x < width; x++) out.push(pixels.subarray(y * stride + x * channels, y * stride + x * channels + 3))
    return Buffer.concat(out)
  }
  return { width, height, rows }
}

const shot = async (desktop: ComputerBox) => Buffer.from((await desktop.screenshot()).data, "base64")
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("ComputerBox", () => {
  let desktop: ComputerBox
  /** A shell command in the box as the desktop user, on the desktop. */
  const sh = (script: string) => desktop.exec("bash", "-c", script, { user: "desktop", env: { DISPLAY: ":1" } })
  /** Starts an application in the background; its output is read as lines. */
  const launch = async (script: string) => {
    const box = await desktop.start()
    const execution = await box.exec("bash", ["-c", script], { user: "desktop", env: { DISPLAY: ":1" } })
    const lines = execution.stdout()[Symbol.asyncIterator]()
    const next = async () => {
      const line = await lines.next()
      if (line.done) throw new Error(`the application ended: ${await execution.stderr().text()}`)
      return line.value
    }
    return { execution, next }
  }
  /** Waits for a window of this title to be on screen (placed by the window manager) and returns its origin. */
  const windowAt = async (title: string): Promise<[number, number]> => {
    // Retried: xdotool dies of BadWindow when a window it inspects goes away meanwhile.
    let out = await sh(`xdotool search --sync --onlyvisible --name '^${title}$' getwindowgeometry --shell`)
    for (let i = 0; i < 20 && out.exitCode !== 0; i++) {
      await sleep(500)
      out = await sh(`xdotool search --sync --onlyvisible --name '^${title}$' getwindowgeometry --shell`)
    }
    expect(out.exitCode).toBe(0)
    return [Number(/^X=(\d+)/m.exec(out.stdout)![1]), Number(/^Y=(\d+)/m.exec(out.stdout)![1])]
  }

  beforeAll(async () => {
    desktop = new ComputerBox({ runtime })
    await desktop.waitUntilReady(240_000)
  }, 300_000)
  afterAll(async () => {
    await desktop.stop()
    expectNothingLeft()
  }, 120_000)

  it("screenshot is a PNG of the configured size, as getScreenSize says", async () => {
    const screenshot = await desktop.screenshot()
    expect(screenshot).toMatchObject({ width: 1024, height: 768, format: "png" })
    const png = decodePng(Buffer.from(screenshot.data, "base64"))
    expect([png.width, png.height]).toEqual([1024, 768])
    expect(await desktop.getScreenSize()).toEqual([1024, 768])
    expect(desktop.viewerUrl()).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/vnc\.html\?autoconnect=true&resize=scale$/)
  }, 120_000)

  it("mouseMove then cursorPosition returns the point; coordinates off the screen are InvalidOptions and move nothing", async () => {
    await desktop.mouseMove(321, 234)
    expect(await desktop.cursorPosition()).toEqual([321, 234])
    for (const [x, y, field] of [[-1, 10, "x"], [1024, 10, "x"], [10, 768, "y"], [10.5, 10, "x"]] as const) {
      await expect(desktop.mouseMove(x, y)).rejects.toMatchObject({ _tag: "InvalidOptions", field })
    }
    await expect(desktop.leftClickDrag(0, 0, 5000, 10)).rejects.toMatchObject({ _tag: "InvalidOptions", field: "endX" })
    await expect(desktop.scroll(10, 10, "sideways" as "up")).rejects.toMatchObject({ _tag: "InvalidOptions", field: "direction" })
    await expect(desktop.scroll(10, 10, "up", 0)).rejects.toMatchObject({ _tag: "InvalidOptions", field: "amount" })
    await expect(desktop.scroll(-5, 10, "up")).rejects.toMatchObject({ _tag: "InvalidOptions", field: "x" })
    expect(await desktop.cursorPosition()).toEqual([321, 234])
  }, 120_000)

  it("a click on a known button changes its state: the button's action runs", async () => {
    const app = await launch(`exec wish <<'TCL'
wm title . boxlite-button
wm geometry . 300x150+200+200
pack [button .b -text "Press me" -command {puts clicked; exit 7}] -fill both -expand 1
update
puts ready
TCL`)
    expect(await app.next()).toBe("ready")
    const [x, y] = await windowAt("boxlite-button")
    await desktop.mouseMove(x + 150, y + 75)
    await desktop.leftClick()
    expect(await app.next()).toBe("clicked")
    expect(await app.execution.wait()).toMatchObject({ exitCode: 7 })
  }, 120_000)

  it("all buttons, double and triple clicks, the wheel, a drag and keys reach the application", async () => {
    const app = await launch(`exec wish <<'TCL'
fconfigure stdout -buffering line
wm title . boxlite-events
wm geometry . 400x300+100+100
pack [canvas .c -background white] -fill both -expand 1
bind .c <ButtonPress> {puts "press %b %X %Y"}
bind .c <ButtonRelease-1> {puts "release 1 %X %Y"}
bind .c <Double-ButtonPress-1> {puts double}
bind .c <Triple-ButtonPress-1> {puts triple}
bind . <KeyPress> {puts "key %K"}
bind . <Escape> {exit 0}
update
puts ready
TCL`)
    expect(await app.next()).toBe("ready")
    const [x0, y0] = await windowAt("boxlite-events")
    const [x, y] = [x0 + 100, y0 + 100]
    await desktop.mouseMove(x, y)
    await desktop.leftClick()
    await desktop.rightClick()
    await desktop.middleClick()
    await sleep(600) // past the double-click interval: the next clicks start a new sequence
    await desktop.doubleClick()
    await sleep(600)
    await desktop.tripleClick()
    await desktop.scroll(x, y, "down", 2)
    await desktop.scroll(x, y, "up", 1)
    await desktop.leftClickDrag(x, y, x + 150, y + 100)
    expect(await desktop.cursorPosition()).toEqual([x + 150, y + 100])
    await expect(desktop.key("ctrl+nosuchkey")).rejects.toMatchObject({ _tag: "InvalidOptions", field: "keys" })
    await desktop.key("ctrl+a")
    await desktop.key("Escape")
    const lines: Array<string> = []
    for (let line = await app.next().catch(() => undefined); line !== undefined; line = await app.next().catch(() => undefined)) lines.push(line)
    expect(await app.execution.wait()).toMatchObject({ exitCode: 0 })
    const at = `${x} ${y}`
    expect(lines).toEqual([
      `press 1 ${at}`, `release 1 ${at}`,
      `press 3 ${at}`,
      `press 2 ${at}`,
      `press 1 ${at}`, `release 1 ${at}`, "double", `release 1 ${at}`,
      `press 1 ${at}`, `release 1 ${at}`, "double", `release 1 ${at}`, "triple", `release 1 ${at}`,
      `press 5 ${at}`, `press 5 ${at}`, `press 4 ${at}`,
      `press 1 ${at}`, `release 1 ${x + 150} ${y + 100}`,
      "key Control_L", "key a"
    ])
  }, 180_000)

  it("type writes any Unicode text (and text starting with -) into a terminal; key combos edit it", async () => {
    await sh("setsid -f xterm -T boxlite-type -e sh -c 'cat > /tmp/typed.txt' >/dev/null 2>&1")
    await windowAt("boxlite-type")
    await sleep(1000)
    expect((await sh("xdotool getactivewindow getwindowname")).stdout).toBe("boxlite-type\n")
    // An unknown key among known ones: rejected before anything is sent (no "a" arrives).
    await expect(desktop.key("a bogus_key")).rejects.toMatchObject({ _tag: "InvalidOptions", field: "keys" })
    const text = "-n héllo wörld €✓ 日本語 ß 😀 Ωμέγα\n"
    await desktop.type(text)
    await desktop.type("keep drop")
    await desktop.key("ctrl+w") // the terminal's word erase
    await desktop.type("kept\n")
    await desktop.key("ctrl+d")
    let written = ""
    for (let i = 0; i < 60 && written !== `${text}keep kept\n`; i++) {
      await sleep(500)
      written = (await desktop.exec("cat", "/tmp/typed.txt")).stdout
    }
    expect(written).toBe(`${text}keep kept\n`)
  }, 180_000)

  it("scroll changes what a scrollable window shows, and scrolling back restores it", async () => {
    await sh("setsid -f xterm -T boxlite-scroll -geometry 80x30+20+20 -e sh -c 'seq 1 400; sleep 600' >/dev/null 2>&1")
    const [x, y] = await windowAt("boxlite-scroll")
    await sleep(1000)
    // The window's rows only (the panel's clock may tick between shots). A slow guest may take
    // a while to draw: each state is awaited by polling.
    const region = async () => decodePng(await shot(desktop)).rows(y, y + 300)
    const until = async (done: (pixels: Buffer) => boolean) => {
      let pixels = await region()
      for (let i = 0; i < 30 && !done(pixels); i++) {
        await sleep(500)
        pixels = await region()
      }
      return pixels
    }
    // Settled: two shots in a row alike.
    let before = await region()
    for (let i = 0; i < 30; i++) {
      await sleep(500)
      const next = await region()
      if (next.equals(before)) break
      before = next
    }
    // Fraction of pixels that differ: scrolled lines change the digits' glyphs (~0.2% of the
    // region); back at the bottom at most the text cursor (~90 pixels, 0.03%) may be drawn differently.
    const changed = (a: Buffer, b: Buffer) => {
      let n = 0
      for (let i = 0; i < a.length; i += 3) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) n++
      return n / (a.length / 3)
    }
    await desktop.scroll(x + 100, y + 100, "up", 5)
    expect(changed(await until((pixels) => changed(pixels, before) > 0.0005), before)).toBeGreaterThan(0.0005)
    await desktop.scroll(x + 100, y + 100, "down", 5)
    expect(changed(await until((pixels) => changed(pixels, before) < 0.0003), before)).toBeLessThan(0.0003)
  }, 120_000)

  it("viewerUrl opens the live desktop in headless Chromium on the host, and the browser's mouse drives it", async () => {
    const browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    })
    try {
      const page = await browser.newPage({ viewport: { width: 1024, height: 768 } })
      await page.goto(desktop.viewerUrl())
      // Connected: noVNC sizes its canvas to the remote screen.
      await page.waitForFunction(() => {
        const canvas = document.querySelector("#noVNC_container canvas") as HTMLCanvasElement | null
        return canvas !== null && canvas.width === 1024 && canvas.height === 768
      }, undefined, { timeout: 60_000 })
      await sleep(3000) // the first frame
      const png = await page.locator("#noVNC_container canvas").screenshot()
      const dir = path.join(home, "examples")
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, "computerbox-viewer.png"), png)
      const image = decodePng(png)
      const pixels = image.rows(0, image.height)
      const colors = new Set<number>()
      for (let i = 0; i < pixels.length; i += 3) colors.add(pixels.readUIntBE(i, 3))
      // A blank page or an error page has a handful of colors; the desktop's windows and panel many more.
      expect(colors.size).toBeGreaterThan(50)
      // Taking over: the person's mouse in the browser moves the desktop's pointer.
      const canvas = (await page.locator("#noVNC_container canvas").boundingBox())!
      await page.mouse.move(canvas.x + (600 * canvas.width) / 1024, canvas.y + (500 * canvas.height) / 768)
      let position: readonly [number, number] = [0, 0]
      for (let i = 0; i < 20 && (Math.abs(position[0] - 600) > 2 || Math.abs(position[1] - 500) > 2); i++) {
        await sleep(500)
        position = await desktop.cursorPosition()
      }
      expect(Math.abs(position[0] - 600)).toBeLessThanOrEqual(2)
      expect(Math.abs(position[1] - 500)).toBeLessThanOrEqual(2)
    } finally {
      await browser.close()
    }
  }, 180_000)
})

describe("ComputerBox, Effect face", () => {
  it("a scoped desktop of a chosen size; a session that dies is reported by the next call", async () => {
    const program = Effect.gen(function*() {
      const desktop = yield* ComputerBoxEffect.scoped({ width: 800, height: 600 })
      yield* desktop.waitUntilReady(240_000)
      expect(yield* desktop.getScreenSize).toEqual([800, 600])
      expect(yield* desktop.screenshot).toMatchObject({ width: 800, height: 600, format: "png" })
      yield* Effect.flip(desktop.mouseMove(800, 0)).pipe(Effect.map((e) => expect(e).toMatchObject({ _tag: "InvalidOptions", field: "x" })))
      yield* SimpleBox.run(desktop.box, "pkill", ["-x", "Xvfb"])
      // The session script notices, stops the rest and exits; then calls fail with its account.
      let error: unknown
      for (let i = 0; i < 60 && error === undefined; i++) {
        yield* Effect.sleep(500)
        error = yield* Effect.flip(desktop.cursorPosition).pipe(Effect.catch(() => Effect.succeed(undefined)))
        if (error !== undefined && !String((error as Error).message).includes("session has ended")) error = undefined
      }
      expect(error).toBeInstanceOf(ExecError)
      // Whichever of the session's processes noticed first: the session script names it.
      expect((error as Error).message).toMatch(/boxlite-desktop: (Xvfb|openbox|tint2|x11vnc|websockify) exited/)
    }).pipe(Effect.scoped, Effect.provide(layer({ homeDir: home })))
    await Effect.runPromise(program)
    expectNothingLeft()
  }, 400_000)

  it("bad options are InvalidOptions naming the field, and nothing is created", async () => {
    expect(() => new ComputerBox({ runtime, width: 100 })).toThrow(InvalidOptions)
    const thrown = (make: () => unknown): unknown => {
      try {
        make()
      } catch (e) {
        return e
      }
    }
    expect(thrown(() => new ComputerBox({ runtime, height: 1.5 }))).toMatchObject({ _tag: "InvalidOptions", field: "height" })
    await expect(Effect.runPromise(ComputerBoxEffect.scoped({ width: 99_999 }).pipe(Effect.scoped, Effect.provide(layer({ homeDir: home })))))
      .rejects.toMatchObject({ field: "width" })
    const desktop = new ComputerBox({ runtime })
    expect(() => desktop.viewerUrl()).toThrow(/not started/)
    await desktop.stop()
    expectNothingLeft()
  }, 60_000)
})

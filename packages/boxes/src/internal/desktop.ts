/**
 * The desktop of a ComputerBox, over any way of running a command in the box: the session
 * (images/desktop/boxlite-desktop: Xvfb, openbox, tint2, x11vnc, websockify + noVNC) runs as a
 * supervised background command; every action is one xdotool (or scrot) command in the box.
 * Arguments are validated here, before anything is sent to the desktop.
 */
import { type ExecOptions, ExecError, InvalidOptions, ParseError, TimeoutError } from "@boxlite/core"
import { Effect, Scope } from "effect"
import type { ExecOutput } from "../SimpleBox.js"
import { keysymNames } from "./keysyms.js"

/** Runs a command in the box to completion, collecting its output. */
export type Run<E> = (command: string, args: ReadonlyArray<string>, options?: ExecOptions) => Effect.Effect<ExecOutput, E>

export interface Screenshot {
  /** The PNG file, base64-encoded. */
  readonly data: string
  readonly width: number
  readonly height: number
  readonly format: "png"
}

export type ScrollDirection = "up" | "down" | "left" | "right"

/** The 14 functions, plus readiness and the viewer (Effect face). */
export interface Desktop<E> {
  readonly width: number
  readonly height: number
  /** noVNC in a browser on the host: watch the desktop and take it over. */
  readonly viewerUrl: string
  /** Waits until the X server, window manager and viewer are up (default 60 s): TimeoutError. */
  readonly waitUntilReady: (timeoutMs?: number) => Effect.Effect<void, DesktopError<E>>
  readonly screenshot: Effect.Effect<Screenshot, DesktopError<E>>
  readonly mouseMove: (x: number, y: number) => Effect.Effect<void, DesktopError<E>>
  readonly leftClick: Effect.Effect<void, DesktopError<E>>
  readonly rightClick: Effect.Effect<void, DesktopError<E>>
  readonly middleClick: Effect.Effect<void, DesktopError<E>>
  readonly doubleClick: Effect.Effect<void, DesktopError<E>>
  readonly tripleClick: Effect.Effect<void, DesktopError<E>>
  readonly leftClickDrag: (startX: number, startY: number, endX: number, endY: number) => Effect.Effect<void, DesktopError<E>>
  readonly cursorPosition: Effect.Effect<readonly [number, number], DesktopError<E>>
  /** Any Unicode text, typed as keystrokes (newlines press Return). */
  readonly type: (text: string) => Effect.Effect<void, DesktopError<E>>
  /** xdotool key syntax: `Return`, `ctrl+a`, `ctrl+shift+t`, several separated by spaces. */
  readonly key: (keys: string) => Effect.Effect<void, DesktopError<E>>
  readonly scroll: (x: number, y: number, direction: ScrollDirection, amount?: number) => Effect.Effect<void, DesktopError<E>>
  readonly getScreenSize: Effect.Effect<readonly [number, number], DesktopError<E>>
}

export type DesktopError<E> = E | ExecError | InvalidOptions | ParseError | TimeoutError

/** The guest port websockify serves noVNC on (forwarded from a free host port). */
export const viewerGuestPort = 6080
export const defaultWidth = 1024
export const defaultHeight = 768
const defaultReadyTimeoutMs = 60_000
const actionTimeoutMs = 60_000
const desktopUser = "desktop"
const env = { DISPLAY: ":1" }

/** width / height: the Xvfb screen size. */
export const validateSize = (field: "width" | "height", value: number | undefined, fallback: number): number => {
  const size = value ?? fallback
  if (!Number.isInteger(size) || size < 320 || size > 4096) throw new InvalidOptions(field, `must be an integer from 320 to 4096, got ${String(value)}`)
  return size
}

const modifierAliases = new Set(["ctrl", "control", "alt", "shift", "super", "meta"])
const lowerCaseKeysyms = new Map<string, string | null>()
for (const name of keysymNames) {
  const lower = name.toLowerCase()
  // null: two keysyms differ only in case (a / A), so a lower-case spelling names neither.
  lowerCaseKeysyms.set(lower, lowerCaseKeysyms.has(lower) ? null : name)
}

/** One key of a combination as xdotool knows it, or undefined. */
const keysym = (part: string): string | undefined => {
  if (keysymNames.has(part) || modifierAliases.has(part)) return part
  if (/^U[0-9A-Fa-f]{4,6}$/.test(part) || /^0x[0-9A-Fa-f]{1,8}$/.test(part)) return part
  const chars = [...part]
  // A single character that is no keysym name (é, €, ß): its Unicode keysym.
  if (chars.length === 1) return `U${part.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`
  return lowerCaseKeysyms.get(part.toLowerCase()) ?? (modifierAliases.has(part.toLowerCase()) ? part.toLowerCase() : undefined)
}

/** `ctrl+a Return` -> ["ctrl+a", "Return"], every name checked against the known keysyms. */
export const parseKeys = (keys: string): Array<string> => {
  if (typeof keys !== "string" || keys.trim() === "") throw new InvalidOptions("keys", "must name at least one key, e.g. \"Return\" or \"ctrl+a\"")
  return keys.trim().split(/\s+/).map((combo) => {
    // "ctrl++" is ctrl and plus, a lone "+" is plus.
    const parts = combo === "+" ? ["plus"] : combo.endsWith("++") ? [...combo.slice(0, -2).split("+"), "plus"] : combo.split("+")
    return parts.map((part) => {
      const known = part === "" ? undefined : keysym(part)
      if (known === undefined) throw new InvalidOptions("keys", `unknown key ${JSON.stringify(part)} in ${JSON.stringify(combo)} (X keysym names: Return, Escape, ctrl, alt, shift, super, F1, Left, a...)`)
      return known
    }).join("+")
  })
}

/** Reads the size from a PNG's IHDR chunk (and checks that it is a PNG). */
export const pngSize = (png: Uint8Array): readonly [number, number] => {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
  if (png.length < 24 || signature.some((b, i) => png[i] !== b)) throw new ParseError("the screenshot is not a PNG image")
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength)
  return [view.getUint32(16), view.getUint32(20)]
}

const buttons: Record<ScrollDirection, string> = { up: "4", down: "5", left: "6", right: "7" }

// Takes the shot in the box and prints it as base64 (the exec protocol carries text here).
const screenshotScript = 'f=$(mktemp --suffix=.png) && scrot --overwrite "$f" && base64 -w0 "$f"; rc=$?; rm -f "$f"; exit $rc'
// Ready: the X server answers, a window manager runs (openbox sets _NET_SUPPORTING_WM_CHECK on
// the root window) and websockify accepts connections.
const readyScript = "xdotool getdisplaygeometry >/dev/null && xprop -root _NET_SUPPORTING_WM_CHECK | grep -q 'window id' && (exec 3<>/dev/tcp/127.0.0.1/" + viewerGuestPort + ")"

// xdotool types a character missing from the keymap by remapping a spare keycode for each key
// press and reverting it at once; an application that reads the keymap after the revert sees the
// wrong key (non-ASCII text arrives with holes). So the text's non-ASCII characters are first
// mapped onto spare keycodes with xmodmap and left there while xdotool types: every character is
// then in the keymap. The spare keycodes are those without keysyms at the first call. "--": text
// starting with "-" is text, not an option.
const typeScript = `set -e
spare=/tmp/boxlite-spare-keycodes
[ -s "$spare" ] || xmodmap -pke | awk 'NF == 3 { print $2 }' > "$spare"
mapfile -t codes < "$spare"
text=$1; shift
[ $# -le \${#codes[@]} ] || { echo "only \${#codes[@]} spare keycodes" >&2; exit 1; }
if [ $# -gt 0 ]; then
  map=(); i=0
  for keysym in "$@"; do map+=(-e "keycode \${codes[i]} = $keysym $keysym"); i=$((i + 1)); done
  xmodmap "\${map[@]}"
fi
exec xdotool type --delay 20 -- "$text"`
// Distinct non-ASCII characters per xdotool run (Xvfb's keymap has 19 spare keycodes).
const keysymsPerChunk = 16

/** Splits text into runs of at most `keysymsPerChunk` distinct non-ASCII characters, with their keysyms. */
export const typeChunks = (text: string): Array<{ readonly text: string; readonly keysyms: ReadonlyArray<string> }> => {
  const chunks: Array<{ text: string; keysyms: Array<string> }> = []
  let current = { text: "", keysyms: [] as Array<string> }
  const seen = new Set<string>()
  for (const char of text) {
    const code = char.codePointAt(0)!
    if (code > 0x7e && !seen.has(char)) {
      if (seen.size === keysymsPerChunk) {
        chunks.push(current)
        current = { text: "", keysyms: [] }
        seen.clear()
      }
      seen.add(char)
      current.keysyms.push(`U${code.toString(16).toUpperCase().padStart(4, "0")}`)
    }
    current.text += char
  }
  if (current.text !== "") chunks.push(current)
  return chunks
}

/**
 * Starts the desktop session in the background (it stops when `Scope` closes) and returns the
 * functions. If the session ends, every later call fails with its stderr tail.
 */
export const make = <E>(run: Run<E>, options: { readonly width: number; readonly height: number; readonly viewerUrl: string }): Effect.Effect<Desktop<E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { width, height } = options
    let ended: string | undefined
    yield* run("boxlite-desktop", [String(width), String(height)], { user: desktopUser }).pipe(
      Effect.exit,
      Effect.flatMap((exit) => Effect.sync(() => {
        // The log's tail, without the color codes some of the programs write.
        ended = exit._tag === "Success" ? `${exit.value.stderr.replace(/\x1b\[[0-9;]*m/g, "").trim()} (exit code ${exit.value.exitCode})` : String(exit.cause)
      })),
      Effect.forkScoped
    )
    const alive = Effect.suspend(() => ended === undefined ? Effect.void : Effect.fail(new ExecError(`the desktop session has ended: ${ended}`)))

    const exec = (command: string, args: ReadonlyArray<string>) =>
      alive.pipe(
        Effect.andThen(run(command, args, { user: desktopUser, env, timeoutMs: actionTimeoutMs })),
        Effect.flatMap((out) => out.exitCode === 0 ? Effect.succeed(out.stdout) : Effect.fail(new ExecError(`${command} failed (exit code ${out.exitCode}): ${out.stderr.trim()}`, [command, ...args])))
      )
    const xdotool = (...args: Array<string>) => exec("xdotool", args).pipe(Effect.asVoid)
    const validated = <A>(check: () => A) => Effect.try({ try: check, catch: (e) => e as InvalidOptions })
    const point = (fieldX: string, x: number, fieldY: string, y: number) =>
      validated(() => {
        if (!Number.isInteger(x) || x < 0 || x >= width) throw new InvalidOptions(fieldX, `must be an integer from 0 to ${width - 1} (the screen is ${width}x${height}), got ${String(x)}`)
        if (!Number.isInteger(y) || y < 0 || y >= height) throw new InvalidOptions(fieldY, `must be an integer from 0 to ${height - 1} (the screen is ${width}x${height}), got ${String(y)}`)
        return [String(x), String(y)] as const
      })
    const click = (repeat: number, button: string) => xdotool("click", "--repeat", String(repeat), "--delay", "80", button)

    const waitUntilReady = (timeoutMs = defaultReadyTimeoutMs) =>
      Effect.gen(function*() {
        if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) return yield* new InvalidOptions("timeoutMs", `must be a positive integer, got ${String(timeoutMs)}`)
        const deadline = Date.now() + timeoutMs
        while (true) {
          yield* alive
          const probe = yield* run("bash", ["-c", readyScript], { user: desktopUser, env, timeoutMs: actionTimeoutMs })
          if (probe.exitCode === 0) return
          if (Date.now() >= deadline) return yield* new TimeoutError(`the desktop was not ready within ${timeoutMs} ms`, timeoutMs)
          yield* Effect.sleep(500)
        }
      })

    const cursorPosition = exec("xdotool", ["getmouselocation", "--shell"]).pipe(
      Effect.flatMap((out) => {
        const x = /^X=(\d+)$/m.exec(out)?.[1], y = /^Y=(\d+)$/m.exec(out)?.[1]
        return x === undefined || y === undefined ? Effect.fail(new ParseError(`unexpected xdotool getmouselocation output: ${out}`)) : Effect.succeed([Number(x), Number(y)] as const)
      })
    )

    return {
      width,
      height,
      viewerUrl: options.viewerUrl,
      waitUntilReady,
      screenshot: exec("sh", ["-c", screenshotScript]).pipe(
        Effect.flatMap((out) => Effect.try({
          try: () => {
            const data = out.trim()
            const [w, h] = pngSize(Buffer.from(data, "base64"))
            return { data, width: w, height: h, format: "png" as const }
          },
          catch: (e) => e instanceof ParseError ? e : new ParseError(String(e))
        }))
      ),
      mouseMove: (x, y) => point("x", x, "y", y).pipe(Effect.flatMap(([px, py]) => xdotool("mousemove", px, py))),
      leftClick: click(1, "1"),
      rightClick: click(1, "3"),
      middleClick: click(1, "2"),
      doubleClick: click(2, "1"),
      tripleClick: click(3, "1"),
      leftClickDrag: (startX, startY, endX, endY) =>
        Effect.all([point("startX", startX, "startY", startY), point("endX", endX, "endY", endY)]).pipe(
          // Pauses let the application see a press, a motion and a release, not one jump.
          Effect.flatMap(([[sx, sy], [ex, ey]]) => xdotool("mousemove", sx, sy, "mousedown", "1", "sleep", "0.2", "mousemove", ex, ey, "sleep", "0.2", "mouseup", "1"))
        ),
      cursorPosition,
      type: (text) =>
        validated(() => {
          if (typeof text !== "string") throw new InvalidOptions("text", "must be a string")
          if (text.includes("\0")) throw new InvalidOptions("text", "must not contain NUL characters")
          return typeChunks(text)
        }).pipe(Effect.flatMap((chunks) => Effect.forEach(chunks, ({ text, keysyms }) => exec("bash", ["-c", typeScript, "bash", text, ...keysyms]), { discard: true }))),
      key: (keys) => validated(() => parseKeys(keys)).pipe(Effect.flatMap((combos) => xdotool("key", "--delay", "50", "--", ...combos))),
      scroll: (x, y, direction, amount = 3) =>
        Effect.all([
          point("x", x, "y", y),
          validated(() => {
            if (!Object.hasOwn(buttons, direction)) throw new InvalidOptions("direction", `must be "up", "down", "left" or "right", got ${JSON.stringify(direction)}`)
            if (!Number.isInteger(amount) || amount < 1 || amount > 100) throw new InvalidOptions("amount", `must be an integer from 1 to 100, got ${String(amount)}`)
            return buttons[direction]
          })
        ]).pipe(Effect.flatMap(([[px, py], button]) => xdotool("mousemove", px, py, "click", "--repeat", String(amount), "--delay", "50", button))),
      getScreenSize: exec("xdotool", ["getdisplaygeometry"]).pipe(
        Effect.flatMap((out) => {
          const m = /^(\d+) (\d+)$/.exec(out.trim())
          return m ? Effect.succeed([Number(m[1]), Number(m[2])] as const) : Effect.fail(new ParseError(`unexpected xdotool getdisplaygeometry output: ${out}`))
        })
      )
    } satisfies Desktop<E>
  })

// Terminals: tty execs on a pseudo-terminal in the guest, resize, and InteractiveBox.
import { afterAll, describe, expect, it } from "vitest"
import { Boxlite, InteractiveBox, InvalidOptions } from "boxlite"
import { PassThrough } from "node:stream"
import { BUSYBOX, tempHome } from "./helpers.js"

const runtime = new Boxlite({ homeDir: tempHome() })
afterAll(() => runtime.close())

describe("tty execs", () => {
  it("run on a terminal of the asked size, with stderr on it too, and follow resizes", async () => {
    const box = await runtime.create({ image: BUSYBOX, memoryMib: 128 })
    try {
      const sized = await box.exec("sh", ["-c", "tty; stty size; echo to-stderr >&2"], { tty: { rows: 30, cols: 100 } })
      const [out, err, result] = await Promise.all([sized.stdout().text(), sized.stderr().text(), sized.wait()])
      expect(result.exitCode).toBe(0)
      expect(out).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r\nto-stderr\r\n$/)
      expect(err).toBe("")

      const resized = await box.exec("sh", ["-c", "read line; stty size"], { tty: true })
      const output = resized.stdout().text()
      await resized.resize(50, 132)
      await resized.stdin().write("go\n")
      expect(await output).toContain("50 132")

      // Closing a terminal's stdin is end of input (^D), as a piped session needs.
      // (Typed once the shell shows its prompt: a ^D typed ahead of a program that then switches
      // its terminal to raw mode is lost, as on any terminal.)
      const piped = await box.exec("sh", [], { tty: true })
      let screen = ""
      const session = (async () => {
        for await (const chunk of piped.stdout().bytes()) screen += Buffer.from(chunk).toString()
      })()
      await expect.poll(() => screen, { timeout: 20_000 }).toContain("# ")
      await piped.stdin().write("echo from-the-pipe\n")
      await piped.stdin().close()
      expect((await piped.wait()).exitCode).toBe(0)
      await session
      expect(screen).toContain("\r\nfrom-the-pipe\r\n")

      const plain = await box.exec("sh", ["-c", "tty"])
      expect((await plain.stdout().text()).trim()).toBe("not a tty")
      await plain.wait()

      const bad = await box.exec("true", [], { tty: { rows: 0, cols: 80 } }).catch((e: unknown) => e)
      expect(bad).toBeInstanceOf(InvalidOptions)
      expect((bad as InvalidOptions).field).toBe("exec.tty")
    } finally {
      await box.remove()
    }
  }, 120_000)
})

describe("InteractiveBox", () => {
  it("wires a shell on a terminal to local streams and returns its exit code", async () => {
    const input = new PassThrough()
    const output = new PassThrough()
    let screen = ""
    output.on("data", (d: Buffer) => (screen += d.toString()))
    await using box = new InteractiveBox({ image: BUSYBOX, memoryMib: 128, runtime })
    const exited = box.attach({ input, output, size: { rows: 40, cols: 120 } })
    input.write("echo answer=$((6*7)); stty size\n")
    input.write("exit 3\n")
    expect(await exited).toBe(3)
    expect(screen).toContain("answer=42")
    expect(screen).toContain("40 120")
  }, 120_000)
})

// attachTerminal's terminal size, with a fake box: what it asks the guest for is the point.
import type { Box } from "@boxlite/core/promise"
import { PassThrough } from "node:stream"
import { describe, expect, it } from "vitest"
import { attachTerminal } from "../src/InteractiveBox.js"

/** A box whose exec records the tty it was asked for and ends at once with exit code 0. */
const fakeBox = () => {
  const asked: Array<unknown> = []
  const resized: Array<[number, number]> = []
  const box = {
    exec: async (_command: string, _args: ReadonlyArray<string>, options: { tty?: unknown }) => {
      asked.push(options.tty)
      return {
        stdin: () => ({ write: async () => {}, close: async () => {} }),
        stdout: () => ({ bytes: async function*() {} }),
        wait: async () => ({ exitCode: 0 }),
        resize: async (rows: number, cols: number) => void resized.push([rows, cols])
      }
    }
  } as unknown as Box
  return { box, asked, resized }
}

/** A writable that says it is a terminal of the given size. */
const terminal = (rows: number, columns: number) => Object.assign(new PassThrough(), { isTTY: true, rows, columns })

describe("attachTerminal: the terminal size", () => {
  it("a terminal's own size", async () => {
    const { box, asked } = fakeBox()
    expect(await attachTerminal(box, { input: new PassThrough(), output: terminal(50, 132) })).toBe(0)
    expect(asked).toEqual([{ rows: 50, cols: 132 }])
  })

  it("a terminal that reports 0x0 (as some CI pseudo-terminals do) gets 24x80", async () => {
    const { box, asked } = fakeBox()
    await attachTerminal(box, { input: new PassThrough(), output: terminal(0, 0) })
    expect(asked).toEqual([{ rows: 24, cols: 80 }])
  })

  it("not a terminal: the size asked for, else 24x80", async () => {
    const { box, asked } = fakeBox()
    await attachTerminal(box, { input: new PassThrough(), output: new PassThrough(), size: { rows: 10, cols: 40 } })
    await attachTerminal(box, { input: new PassThrough(), output: new PassThrough() })
    expect(asked).toEqual([{ rows: 10, cols: 40 }, { rows: 24, cols: 80 }])
  })
})

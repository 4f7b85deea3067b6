// The tail of a child's stderr that error messages quote.
import { PassThrough } from "node:stream"
import { describe, expect, it } from "vitest"
import { outputTail } from "../src/OutputTail.js"

describe("outputTail", () => {
  it("keeps the last characters written, trimmed, and the caller's notes", async () => {
    const stream = new PassThrough()
    const tail = outputTail(stream, 10)
    stream.write("  0123456789")
    stream.write("abc\n")
    await new Promise((r) => setImmediate(r))
    expect(tail.text()).toBe("456789abc")
    tail.note("!!")
    expect(tail.text()).toBe("6789abc\n!!")
  })

  it("with no stream, holds only notes", () => {
    const tail = outputTail(undefined)
    expect(tail.text()).toBe("")
    tail.note("cannot start: ENOENT")
    expect(tail.text()).toBe("cannot start: ENOENT")
  })
})

import { describe, expect, it } from "vitest"
import { decodeCredit, decodeJson, encodeCredit, encodeJson, ExecRequest, ExitStatus } from "../src/index.js"

describe("messages", () => {
  it("decodes an ExecRequest and rejects an empty argv", () => {
    const ok = decodeJson(ExecRequest, encodeJson({ argv: ["true"], env: [["A", "B"]], cwd: "/", extra: 1 }))
    expect(ok?.argv).toEqual(["true"])
    expect(decodeJson(ExecRequest, encodeJson({ argv: [], env: [] }))).toBeUndefined()
    expect(decodeJson(ExecRequest, Buffer.from("{not json"))).toBeUndefined()
  })

  it("decodes exit statuses with and without a signal", () => {
    expect(decodeJson(ExitStatus, encodeJson({ exitCode: 137, signal: 9, timedOut: true }))).toEqual({ exitCode: 137, signal: 9, timedOut: true })
    expect(decodeJson(ExitStatus, encodeJson({ exitCode: "0" }))).toBeUndefined()
  })

  it("round-trips credits and rejects a bad length", () => {
    expect(decodeCredit(encodeCredit(2, 65536))).toEqual({ channel: 2, bytes: 65536 })
    expect(decodeCredit(Uint8Array.of(1, 2))).toBeUndefined()
  })
})

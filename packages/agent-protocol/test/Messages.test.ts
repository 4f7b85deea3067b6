import { describe, expect, it } from "vitest"
import { CopyRequest, decodeCredit, decodeJson, encodeCredit, encodeJson, ExecRequest, ExitStatus, GuestConfig } from "../src/index.js"

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

  it("decodes a GuestConfig with and without a network", () => {
    const full = {
      network: { address: "10.0.2.15", prefixLength: 24, gateway: "10.0.2.2", dns: ["10.0.2.3"] },
      mounts: [{ tag: "v0", path: "/mnt/data", readOnly: true }, { tag: "v1", path: "/etc/app.conf", readOnly: false, file: "app.conf" }]
    }
    expect(decodeJson(GuestConfig, encodeJson(full))).toEqual(full)
    expect(decodeJson(GuestConfig, encodeJson({ mounts: [] }))).toEqual({ mounts: [] })
    expect(decodeJson(GuestConfig, encodeJson({ mounts: [{ tag: "v0", path: "/x" }] }))).toBeUndefined()
    expect(decodeJson(GuestConfig, encodeJson({ network: { address: "10.0.2.15" }, mounts: [] }))).toBeUndefined()
  })

  it("round-trips credits and rejects a bad length", () => {
    expect(decodeCredit(encodeCredit(2, 65536))).toEqual({ channel: 2, bytes: 65536 })
    expect(decodeCredit(Uint8Array.of(1, 2))).toBeUndefined()
  })

  it("decodes a CopyRequest, its flags optional", () => {
    expect(decodeJson(CopyRequest, encodeJson({ path: "/a", exact: true }))).toEqual({ path: "/a", exact: true })
    expect(decodeJson(CopyRequest, encodeJson({ path: "/a" }))).toEqual({ path: "/a" })
    expect(decodeJson(CopyRequest, encodeJson({ path: 1 }))).toBeUndefined()
  })
})

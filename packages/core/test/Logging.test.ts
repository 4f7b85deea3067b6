import { describe, expect, it } from "vitest"
import { Logging } from "@boxlite/core"

describe("log level from BOXLITE_LOG / RUST_LOG", () => {
  it.each([
    ["debug", "Debug"],
    ["TRACE", "Trace"],
    ["warn", "Warn"],
    ["off", "None"],
    ["info,boxlite=trace", "Trace"],
    ["boxlite_core=error,debug", "Error"],
    ["hyper=trace,info", "Info"],
    ["nonsense", undefined],
    ["", undefined]
  ])("%j -> %s", (value, level) => {
    expect(Logging.logLevelOf(value)).toBe(level)
  })
})

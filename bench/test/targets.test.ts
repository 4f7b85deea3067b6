import * as fs from "node:fs"
import { describe, expect, it } from "vitest"
// @ts-expect-error: plain JavaScript, no declarations (the benchmarks are scripts)
import { describeTarget, evaluate, missed, table, TARGETS } from "../targets.js"

const cold = { name: "cold start", value: 2100, unit: "ms", floor: 1500, floorName: "bare boot", target: TARGETS.coldStart }

describe("benchmark targets", () => {
  it("a ratio target is met at or under its limit and missed over it", () => {
    expect(evaluate(cold)).toMatchObject({ ratio: 1.4, met: true })
    expect(evaluate({ ...cold, value: 2250 })).toMatchObject({ ratio: 1.5, met: true })
    expect(evaluate({ ...cold, value: 2251 }).met).toBe(false)
  })

  it("an absolute target checks the value, whatever its floor", () => {
    const exec = { name: "exec p50", value: 19, unit: "ms", floor: 0.5, floorName: "ping", target: TARGETS.execRoundTrip }
    expect(evaluate(exec)).toMatchObject({ ratio: 38, met: true })
    expect(evaluate({ ...exec, value: 21 }).met).toBe(false)
    expect(evaluate({ name: "pss", value: 212, unit: "MiB", target: TARGETS.idlePss })).toMatchObject({ ratio: undefined, met: false })
  })

  it("a broken measurement misses: no number, no floor for a ratio target, a unit that does not match", () => {
    expect(evaluate({ ...cold, value: Number.NaN }).met).toBe(false)
    expect(evaluate({ ...cold, value: null }).met).toBe(false) // NaN after a JSON round trip
    expect(evaluate({ ...cold, floor: undefined }).met).toBe(false)
    expect(evaluate({ ...cold, floor: 0 }).met).toBe(false)
    expect(() => evaluate({ name: "exec", value: 0.01, unit: "s", target: TARGETS.execRoundTrip })).toThrow(/target in ms/)
  })

  it("a row without a target is neither met nor missed", () => {
    const row = { name: "io", value: 384, unit: "MB/s", floor: 7515, floorName: "dd" }
    expect(evaluate(row).met).toBeUndefined()
    expect(missed([row])).toEqual([])
  })

  it("missed lists only the rows over their target", () => {
    const over = { ...cold, name: "slow", value: 3000 }
    expect(missed([cold, over]).map((r: { name: string }) => r.name)).toEqual(["slow"])
  })

  it("prints value, floor, ratio, target and the verdict of each row", () => {
    const lines = table([cold, { ...cold, name: "slow", value: 3000 }, { name: "io", value: 384, unit: "MB/s" }]).split("\n")
    expect(lines[0].split("|").map((c: string) => c.trim())).toEqual(["benchmark", "value", "floor", "ratio", "target", "result"])
    expect(lines[2].split("|").map((c: string) => c.trim())).toEqual(["cold start", "2100 ms", "1500 ms (bare boot)", "1.40x", "<= 1.5x floor", "ok"])
    expect(lines[3]).toMatch(/2\.00x \| <= 1\.5x floor \| MISSED$/)
    // Three significant digits: 0.303x, not a rounded 0.30x beside a target of 0.3x.
    expect(table([{ ...cold, value: 558, floor: 1842, target: TARGETS.warmStart }])).toMatch(/0\.303x \| <= 0\.3x floor \| MISSED/)
    expect(lines[4].split("|").map((c: string) => c.trim())).toEqual(["io", "384 MB/s", "-", "-", "(none)", "-"])
  })

  it("the README's Targets table lists exactly the targets enforced", () => {
    const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const section = readme.slice(readme.indexOf("## Targets"))
    const documented = [...section.matchAll(/^\| `(\w+)` \| [^|]+ \| ([^|]+?) \|$/gm)].map(([, key, target]) => [key, target])
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(Object.entries(TARGETS).map(([key, t]) => [key, describeTarget(t)])))
  })
})

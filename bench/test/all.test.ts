// bench/all.js (`npm run bench`) over stand-in benchmarks: the exit code and the summary table.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"

const bench = path.resolve(import.meta.dirname, "..")
let dir: string

/** bench/all.js and bench/targets.js beside stand-ins for run.js and images.js. */
const runAll = (scripts: { run: string; images: string }) => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-test-"))
  for (const f of ["all.js", "targets.js"]) fs.copyFileSync(path.join(bench, f), path.join(dir, f))
  for (const [name, body] of Object.entries(scripts)) {
    fs.writeFileSync(path.join(dir, `${name}.js`), `import { report, TARGETS } from "./targets.js"\n${body}\n`)
  }
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "BENCH_RESULTS"))
  const r = spawnSync(process.execPath, [path.join(dir, "all.js"), "run", "images"], { encoding: "utf8", env })
  return { status: r.status, out: r.stdout, summary: r.stdout.slice(r.stdout.indexOf("== all benchmarks")) }
}
const row = (name: string, value: number) =>
  `report([{ name: "${name}", value: ${value}, unit: "ms", floor: 1000, floorName: "boot", target: TARGETS.coldStart }])`

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

describe("npm run bench", () => {
  it("exits 0 when every target is met, with one table of all rows", () => {
    const r = runAll({ run: row("cold", 1400), images: row("pull", 900) })
    expect(r.status).toBe(0)
    expect(r.summary).toMatch(/cold +\| 1400 ms \| 1000 ms \(boot\) \| 1\.40x +\| <= 1\.5x floor \| ok/)
    expect(r.summary).toMatch(/pull .*\| 0\.900x .*\| ok/)
  })

  it("exits non-zero when one row misses, and still runs the benchmarks after it", () => {
    const r = runAll({ run: row("cold", 1600), images: row("pull", 900) })
    expect(r.status).toBe(1)
    expect(r.summary).toMatch(/cold .*\| 1\.60x .*\| MISSED/)
    expect(r.summary).toMatch(/pull .*\| ok/)
    expect(r.summary).toContain("target missed: cold")
    expect(r.summary).not.toContain("benchmarks that failed")
  })

  it("exits non-zero when a benchmark fails without a row, naming it", () => {
    const r = runAll({ run: `throw new Error("no VM")`, images: row("pull", 900) })
    expect(r.status).toBe(1)
    expect(r.summary).toContain("benchmarks that failed: run (exit 1)")
    expect(r.summary).toMatch(/pull .*\| ok/)
  })

  it("names a benchmark that failed after a miss of its own in another way (exit code 2)", () => {
    const r = runAll({ run: `${row("cold", 1600)}\nprocess.exitCode = 2`, images: row("pull", 900) })
    expect(r.status).toBe(1)
    expect(r.summary).toContain("benchmarks that failed: run (exit 2)")
  })
})

// The benchmarks' targets, and the table every benchmark prints: value, floor, ratio, target.
// One place for the targets: bench/README.md's "Targets" table lists the same (a unit test keeps
// them equal), and a run that misses one exits non-zero.
import * as fs from "node:fs"

/**
 * `of: "ratio"`: the value divided by its floor, measured in the same run, at most `max`.
 * `of: "value"`: the value itself, in the row's unit, at most `max` (an absolute target).
 */
export const TARGETS = {
  coldStart: { of: "ratio", max: 1.5 },
  execRoundTrip: { of: "value", max: 20, unit: "ms" },
  pullPrepare: { of: "ratio", max: 1.0 },
  createCached: { of: "value", max: 50, unit: "ms" },
  idlePss: { of: "value", max: 80, unit: "MiB" },
  warmStart: { of: "ratio", max: 0.3 },
  codeboxCell: { of: "ratio", max: 0.2 },
  serveExec: { of: "ratio", max: 2 }
}

export const describeTarget = (target) =>
  target === undefined ? "(none)" : target.of === "ratio" ? `<= ${target.max}x floor` : `<= ${target.max} ${target.unit}`

/**
 * A measured row: `{ name, value, unit, floor?, floorName?, target? }`. `ratio` is value / floor
 * (undefined without a floor); `met` is undefined without a target. A target on the ratio of a
 * row without a floor, or a value that is not a finite number, is a miss: a broken measurement
 * must not pass.
 */
export const evaluate = (row) => {
  const ratio = row.floor === undefined ? undefined : row.value / row.floor
  const t = row.target
  if (t === undefined) return { ...row, ratio, met: undefined }
  if (t.unit !== undefined && t.unit !== row.unit) throw new Error(`${row.name}: target in ${t.unit}, value in ${row.unit}`)
  const checked = t.of === "ratio" ? ratio : row.value
  const measured = Number.isFinite(row.value) && Number.isFinite(checked) // null: NaN after JSON
  return { ...row, ratio, met: measured && checked <= t.max }
}

const number = (x) => (!Number.isFinite(x) ? String(x) : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2))
const quantity = (x, unit) => `${number(x)} ${unit}`

/** The rows as a fixed-width text table, one line each, with a verdict column. */
export const table = (rows) => {
  const lines = [["benchmark", "value", "floor", "ratio", "target", "result"]]
  for (const r of rows.map(evaluate)) {
    lines.push([
      r.name,
      quantity(r.value, r.unit),
      r.floor === undefined ? "-" : `${quantity(r.floor, r.unit)} (${r.floorName})`,
      r.ratio === undefined ? "-" : `${r.ratio.toPrecision(3)}x`,
      describeTarget(r.target),
      r.met === undefined ? "-" : r.met ? "ok" : "MISSED"
    ])
  }
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)))
  const format = (l) => l.map((cell, i) => cell.padEnd(widths[i])).join(" | ").trimEnd()
  return [format(lines[0]), widths.map((w) => "-".repeat(w)).join("-|-"), ...lines.slice(1).map(format)].join("\n")
}

export const missed = (rows) => rows.map(evaluate).filter((r) => r.met === false)

/**
 * Prints the rows' table; a missed target sets a failing exit code. With BENCH_RESULTS set (by
 * bench/all.js), also appends the rows to that file, one JSON line each, for the summary.
 */
export const report = (rows) => {
  console.log(`\n${table(rows)}`)
  const misses = missed(rows)
  for (const r of misses) console.log(`target missed: ${r.name}: ${describeTarget(r.target)}`)
  if (misses.length > 0) process.exitCode = 1
  if (process.env.BENCH_RESULTS) fs.appendFileSync(process.env.BENCH_RESULTS, rows.map((r) => `${JSON.stringify(r)}\n`).join(""))
}

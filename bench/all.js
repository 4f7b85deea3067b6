// `npm run bench`: every benchmark in turn (each prints its own table as it ends), then one table
// of all their rows. Exits non-zero when a row misses its target (bench/targets.js) or a
// benchmark fails; the others still run, so one failure does not hide the rest.
//   node bench/all.js [name...]     (names of bench/*.js without .js: only those)
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { missed, table } from "./targets.js"

const ALL = ["run", "images", "io", "files", "codebox", "cli", "serve", "python-client", "mcp", "browserbox", "snapshot", "density"]
// computerbox only when named: a desktop boot per round.
const KNOWN = [...ALL, "computerbox"]
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ALL
const unknown = names.filter((n) => !KNOWN.includes(n))
if (unknown.length > 0) {
  console.error(`unknown benchmark: ${unknown.join(", ")} (known: ${KNOWN.join(", ")})`)
  process.exit(2)
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-all-"))
const results = path.join(work, "rows.jsonl")
const readRows = () => (fs.existsSync(results) ? fs.readFileSync(results, "utf8").trim().split("\n").map((l) => JSON.parse(l)) : [])
const broken = []
try {
  for (const name of names) {
    console.log(`\n== bench/${name}.js`)
    const before = readRows().length
    const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url))
    const run = spawnSync(process.execPath, [script], { stdio: "inherit", env: { ...process.env, BENCH_RESULTS: results } })
    // A missed target exits 1 (its table says which); any other failure is a broken benchmark.
    if (run.status !== 0 && (run.status !== 1 || missed(readRows().slice(before)).length === 0)) broken.push(`${name} (exit ${run.status ?? run.signal})`)
  }
  const rows = readRows()
  console.log(`\n== all benchmarks\n${table(rows)}`)
  const misses = missed(rows)
  for (const r of misses) console.log(`target missed: ${r.name}`)
  if (broken.length > 0) console.log(`benchmarks that failed: ${broken.join(", ")}`)
  if (misses.length > 0 || broken.length > 0) process.exitCode = 1
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}

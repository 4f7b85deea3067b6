// The state store on each SQLite binding: medians of opening a home and of a start's record
// traffic (claim, compare-and-set, find). This Node's binding (better-sqlite3 on Node 20), and
// with BOXLITE_NODE24 set (bash scripts/node24.sh -p process.execPath), node:sqlite on Node 24 in a
// child process: the ratio says what moving to Node's own SQLite costs.
//   node bench/statestore.js
import { layerSqlite, resolveBoxOptions, StateStore } from "@boxlite/core"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const opens = Number(process.env.BENCH_ROUNDS ?? 30)
const cycles = Number(process.env.BENCH_EXEC_ROUNDS ?? 2000)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const measure = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-store-"))
  try {
    const open = []
    for (let i = 0; i < opens; i++) {
      const start = performance.now()
      await Effect.runPromise(Effect.provide(StateStore.use(() => Effect.void), layerSqlite(home)))
      open.push(performance.now() - start)
    }
    const options = await Effect.runPromise(resolveBoxOptions({ image: "busybox" }))
    const cycle = await Effect.runPromise(Effect.provide(StateStore.use((store) =>
      Effect.gen(function*() {
        yield* store.insert({
          id: "BENCH", name: undefined, status: "configured", image: "busybox", options, runConfig: {}, base: "/base",
          createdAt: new Date(), pid: undefined, supervisor: undefined, ports: [], booted: false, reason: undefined,
          layers: [], snapshot: undefined, restore: undefined, driver: "qemu", diskFormat: "qcow2"
        })
        const times = []
        for (let i = 0; i < cycles; i++) {
          const me = { pid: process.pid, startTime: String(i) }
          const start = performance.now()
          yield* store.claimStart("BENCH", me)
          yield* store.updateIfSupervisor("BENCH", me, { status: "stopped", supervisor: undefined })
          yield* store.find("BENCH")
          times.push(performance.now() - start)
        }
        return times
      })), layerSqlite(home)))
    const binding = process.getBuiltinModule?.("node:sqlite") ? "node:sqlite" : "better-sqlite3"
    return { node: process.versions.node, binding, openMs: median(open), cycleMs: median(cycle) }
  } finally {
    fs.rmSync(home, { recursive: true, force: true })
  }
}

if (process.argv[2] === "--json") {
  console.log(JSON.stringify(await measure()))
} else {
  const rows = [await measure()]
  const node24 = process.env.BOXLITE_NODE24
  if (node24) rows.push(JSON.parse(execFileSync(node24, [fileURLToPath(import.meta.url), "--json"], { encoding: "utf8" })))
  else console.log("(set BOXLITE_NODE24=$(bash scripts/node24.sh -p process.execPath) to compare with node:sqlite on Node 24)")
  for (const r of rows) {
    console.log(`Node ${r.node} on ${r.binding}: open a home ${r.openMs.toFixed(2)} ms, start's record traffic (claim + CAS + find) ${(r.cycleMs * 1000).toFixed(0)} µs (medians of ${opens} and ${cycles})`)
  }
  if (rows.length === 2) {
    console.log(`ratio Node ${rows[1].node}/${rows[0].node}: open ${(rows[1].openMs / rows[0].openMs).toFixed(2)}x, record traffic ${(rows[1].cycleMs / rows[0].cycleMs).toFixed(2)}x`)
  }
}

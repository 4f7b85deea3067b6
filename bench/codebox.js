// CodeBox's stateful interpreter against a fresh Python per call, in the same box and run:
//   runCode("1+1") round trip p50 in a warm CodeBox, vs exec("python3", "-c", "1") p50.
// Target: the interpreter at most 0.2x of a fresh `python3 -c` (see bench/README.md).
import { Boxlite, CodeBox } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { report, TARGETS } from "./targets.js"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`
const rounds = Number(process.env.BENCH_ROUNDS ?? 50)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const time = async (f) => {
  const start = performance.now()
  await f()
  return performance.now() - start
}

const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-"))
const runtime = new Boxlite({ homeDir: home })
const codebox = new CodeBox({ image, runtime })
try {
  // Warm: the box booted, the interpreter started, python3's own files in the page cache.
  await codebox.runCode("1+1")
  await codebox.exec("python3", "-c", "1")
  const cells = []
  const fresh = []
  for (let i = 0; i < rounds; i++) {
    cells.push(await time(async () => {
      const r = await codebox.runCode("1+1")
      if (r.text !== "2") throw new Error(`runCode gave ${JSON.stringify(r)}`)
    }))
    fresh.push(await time(async () => {
      const r = await codebox.exec("python3", "-c", "1")
      if (r.exitCode !== 0) throw new Error(`python3 -c 1 exited ${r.exitCode}`)
    }))
  }
  const [cell, floor] = [median(cells), median(fresh)]
  console.log(`${rounds} rounds each, accelerator ${(await runtime.info()).hypervisor.accelerator}`)
  report([{ name: 'runCode("1+1") round trip p50', value: cell, unit: "ms", floor, floorName: 'exec("python3", "-c", "1") p50', target: TARGETS.codeboxCell }])
} finally {
  await codebox.stop()
  await runtime.close()
  fs.rmSync(home, { recursive: true, force: true })
}

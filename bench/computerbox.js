// ComputerBox: `new ComputerBox()` -> `waitUntilReady()` (a desktop boot), and the round trips an
// agent makes in a ready desktop: screenshot() p50 and leftClick() p50, each beside the exec round
// trip p50 of `true` in the same box (the floor of any call into the box).
//   node bench/computerbox.js        (BENCH_ROUNDS boots, default 3; BENCH_CALLS per function, default 30)
import { Boxlite, ComputerBox } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { report } from "./targets.js"

const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const calls = Number(process.env.BENCH_CALLS ?? 30)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (ms) => `${ms.toFixed(ms < 10 ? 2 : 0)} ms`
const time = async (f) => {
  const start = performance.now()
  await f()
  return performance.now() - start
}

const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-"))
const runtime = new Boxlite({ homeDir: home })
try {
  const ready = []
  const screenshot = [], click = [], exec = []
  for (let round = 0; round < rounds; round++) {
    const desktop = new ComputerBox({ runtime })
    try {
      ready.push(await time(() => desktop.waitUntilReady(300_000)))
      if (round > 0) continue
      const box = await desktop.start()
      await desktop.mouseMove(512, 384)
      for (let i = 0; i < calls; i++) {
        exec.push(await time(async () => (await box.exec("true")).wait()))
        screenshot.push(await time(() => desktop.screenshot()))
        click.push(await time(() => desktop.leftClick()))
      }
    } finally {
      await desktop.stop()
    }
  }
  console.log(`new ComputerBox() -> waitUntilReady(): median ${fmt(median(ready))} (${ready.map(fmt).join(", ")})`)
  report([
    { name: "new ComputerBox() -> waitUntilReady(), median", value: median(ready), unit: "ms" },
    { name: "screenshot() p50", value: median(screenshot), unit: "ms", floor: median(exec), floorName: 'exec("true") round trip p50' },
    { name: "leftClick() p50", value: median(click), unit: "ms", floor: median(exec), floorName: 'exec("true") round trip p50' }
  ])
} finally {
  await runtime.close()
  fs.rmSync(home, { recursive: true, force: true })
}

// BrowserBox start, beside its floor, measured in the same run:
//   browserbox: new BrowserBox().start() -> first CDP command (Browser.getVersion) answered
//   in a running box: the same Chromium, same launch, started by exec inside an already-running
//     box with the same forward -> the same first CDP command answered
// The ratio is what the box costs on top of the browser's own start (boot, image, forward).
//   node bench/browserbox.js        (BENCH_ROUNDS, default 3: each start is 10-60 s under TCG)
import { Boxlite, BrowserBox } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import puppeteer from "puppeteer-core"
import { report } from "./targets.js"
// The exact launch BrowserBox uses (internal to @boxlite/boxes; this script lives in the repo).
import { defaultImage } from "../packages/boxes/dist/BrowserBox.js"
import { endpointOf, GUEST_PORT, launchCommand } from "../packages/boxes/dist/internal/Browsers.js"

const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (ms) => `${(ms / 1000).toFixed(1)} s`

/** The first CDP command answered through `endpoint`. */
const firstCommand = async (endpoint) => {
  const browser = await puppeteer.connect({ browserURL: endpoint, protocolTimeout: 300_000 })
  await browser.version()
  await browser.disconnect()
}

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-"))
  const runtime = new Boxlite({ homeDir: home })
  try {
    const boxed = []
    const direct = []
    for (let i = 0; i < rounds; i++) {
      {
        const t0 = performance.now()
        const browser = new BrowserBox({ runtime })
        try {
          await browser.start()
          await firstCommand(browser.endpoint())
          boxed.push(performance.now() - t0)
        } finally {
          await browser.stop()
        }
      }
      {
        // The already-running box: same image, resources and forward as a BrowserBox, booted first.
        const box = await runtime.create({ image: defaultImage(), cpus: Math.min(2, os.cpus().length), memoryMib: 2048, ports: [{ hostPort: 0, guestPort: GUEST_PORT.chromium }] })
        try {
          await box.start()
          const hostPort = (await box.info()).ports[0].hostPort
          const { command, args, options } = launchCommand("chromium", hostPort)
          const t0 = performance.now()
          await box.exec(command, args, options)
          for (;;) {
            try {
              await firstCommand(endpointOf("chromium", hostPort))
              break
            } catch {
              await new Promise((r) => setTimeout(r, 500))
            }
          }
          direct.push(performance.now() - t0)
        } finally {
          await box.remove()
        }
      }
      console.log(`round ${i + 1}: browserbox ${fmt(boxed.at(-1))}, in a running box ${fmt(direct.at(-1))}`)
    }
    const b = median(boxed)
    const d = median(direct)
    report([{ name: `BrowserBox start() -> first CDP command, median of ${rounds}`, value: b / 1000, unit: "s", floor: d / 1000, floorName: "the same Chromium started in a running box" }])
  } finally {
    await runtime.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

await main()

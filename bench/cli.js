// What the CLI costs on top of the API (medians):
//   start-up: `npx boxlite version` (npx + Node + the CLI's modules), vs `node -e ""`
//   run: `npx boxlite run IMAGE true` (a process: open the home, create, boot, exec, remove),
//   vs the same in this process through the API; the ratio is the CLI's overhead.
import { Boxlite } from "boxlite"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { report } from "./targets.js"

const repo = fileURLToPath(new URL("..", import.meta.url))
const image = `oci:${path.join(repo, "images/out/busybox")}:latest`
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const time = (f) => {
  const start = performance.now()
  f()
  return performance.now() - start
}
const timeAsync = async (f) => {
  const start = performance.now()
  await f()
  return performance.now() - start
}

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-cli-"))
  const env = { ...process.env, BOXLITE_HOME: home }
  const cli = (...args) => execFileSync("npx", ["boxlite", ...args], { cwd: repo, env, stdio: ["ignore", "pipe", "inherit"] })
  try {
    const node = [], version = [], cliRun = [], apiRun = []
    for (let i = 0; i < rounds; i++) {
      node.push(time(() => execFileSync(process.execPath, ["-e", ""])))
      version.push(time(() => cli("version")))
    }
    // The base of the image is built once, before any timing.
    cli("run", "-m", "128", image, "true")
    const runtime = new Boxlite({ homeDir: home })
    try {
      for (let i = 0; i < rounds; i++) {
        cliRun.push(time(() => cli("run", "-m", "128", image, "true")))
        apiRun.push(await timeAsync(async () => {
          const box = await runtime.create({ image, memoryMib: 128 })
          try {
            await (await box.exec("true")).wait()
          } finally {
            await box.stop()
          }
        }))
      }
    } finally {
      await runtime.close()
    }
    report([
      { name: "start-up: `npx boxlite version`, median", value: median(version), unit: "ms", floor: median(node), floorName: 'node -e ""' },
      { name: "`npx boxlite run IMAGE true`, median", value: median(cliRun), unit: "ms", floor: median(apiRun), floorName: "the same through the API in process" }
    ])
  } finally {
    fs.rmSync(home, { recursive: true, force: true })
  }
}

await main()

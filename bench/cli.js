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

const repo = fileURLToPath(new URL("..", import.meta.url))
const image = `oci:${path.join(repo, "images/out/busybox")}:latest`
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (ms) => `${ms.toFixed(0)} ms`
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
    console.log(`start-up: npx boxlite version ${fmt(median(version))}, node -e "" ${fmt(median(node))}`)
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
    console.log(`run true: CLI ${fmt(median(cliRun))}, API in process ${fmt(median(apiRun))}, ratio ${(median(cliRun) / median(apiRun)).toFixed(2)}`)
  } finally {
    fs.rmSync(home, { recursive: true, force: true })
  }
}

await main()

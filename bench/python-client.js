// The Python client's exec round trip (clients/python, see bench/README.md): `await (await
// box.exec("true")).wait()` through `boxlite serve` on its unix socket, against the same round
// trip through the in-process API (`exec("true")` + `wait()`), on the same running box, rounds
// interleaved: this script tells the Python process when to run its next round.
import { Boxlite } from "boxlite"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import { report, TARGETS } from "./targets.js"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`
const client = fileURLToPath(new URL("../clients/python/src", import.meta.url))
const rounds = Number(process.env.BENCH_EXEC_ROUNDS ?? 100)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

// One round per line read on stdin; prints its time in ms. The client starts the home's server.
const PYTHON_LEG = `
import asyncio, sys, time, boxlite
async def main():
    runtime = boxlite.Boxlite(boxlite.Options(home_dir=sys.argv[1]))
    box = runtime.create(boxlite.BoxOptions(image=sys.argv[2], memory_mib=256))
    await box.start()
    print(box.id, flush=True)
    try:
        while sys.stdin.readline().strip() == "go":
            start = time.perf_counter()
            result = await (await box.exec("true")).wait()
            assert result.exit_code == 0
            print((time.perf_counter() - start) * 1000, flush=True)
    finally:
        await box.remove(force=True)
        runtime.close()
asyncio.run(main())
`

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-py-"))
  const python = spawn(process.env.PYTHON ?? "/usr/bin/python3", ["-c", PYTHON_LEG, home, image], {
    env: { ...process.env, PYTHONPATH: client, BOXLITE_URL: "" },
    stdio: ["pipe", "pipe", "inherit"]
  })
  const lines = readline.createInterface({ input: python.stdout })[Symbol.asyncIterator]()
  const next = async () => {
    const { value, done } = await lines.next()
    if (done) throw new Error("the Python client ended early")
    return value
  }
  const runtime = new Boxlite({ homeDir: home })
  try {
    const id = await next()
    const box = await runtime.get(id)
    const viaPython = async () => {
      python.stdin.write("go\n")
      return Number(await next())
    }
    const inProcess = async () => {
      const start = performance.now()
      const result = await (await box.exec("true")).wait()
      if (result.exitCode !== 0) throw new Error("true failed")
      return performance.now() - start
    }
    // Warm both paths (the server's first requests load its modules), then alternate.
    for (let i = 0; i < 5; i++) await viaPython(), await inProcess()
    const py = []
    const local = []
    for (let i = 0; i < rounds; i++) {
      py.push(await viaPython())
      local.push(await inProcess())
    }
    console.log(`${rounds} round trips each`)
    report([
      { name: "exec round trip via the Python client (boxlite serve, unix socket) p50", value: median(py), unit: "ms", floor: median(local), floorName: "in-process exec p50", target: TARGETS.serveExec }
    ])
  } finally {
    python.stdin.end() // the Python leg removes its box and stops the server it started
    await new Promise((resolve) => (python.exitCode !== null ? resolve() : python.once("exit", resolve)))
    await runtime.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

await main()

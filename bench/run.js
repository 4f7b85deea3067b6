// Benchmarks with their floors, measured in the same run (see bench/README.md).
//   cold start: create -> result of `true`, vs a bare QEMU boot of the same kernel+initramfs to /init
//   exec round trip: `true` in a running box, vs a protocol ping through the same agent
//   reattach: another process opens the home, gets the running box by id and runs `true`
//   (timed inside that process, without Node's own start), vs the exec round trip
import { Boxlite } from "boxlite"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bareBoot } from "./floor.js"
import { report, TARGETS } from "./targets.js"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`
const rounds = Number(process.env.BENCH_ROUNDS ?? 7)
const execRounds = Number(process.env.BENCH_EXEC_ROUNDS ?? 100)

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}
const median = (xs) => quantile(xs, 0.5)
const fmt = (ms) => `${ms.toFixed(ms < 10 ? 2 : 0)} ms`

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-"))
  const runtime = new Boxlite({ homeDir: home })
  const info = await runtime.info()
  console.log(`host: ${os.cpus().length} CPUs, accelerator ${info.hypervisor.accelerator} (${info.hypervisor.reason})`)

  // Warm the image cache so cold start measures booting, not the one-time rootfs build.
  await (await runtime.create({ image })).remove()

  const floorBoot = []
  const coldStart = []
  for (let i = 0; i < rounds; i++) {
    floorBoot.push(await bareBoot(fs.mkdtempSync(path.join(home, "bare-"))))
    const start = performance.now()
    const box = await runtime.create({ image })
    const result = await (await box.exec("true")).wait()
    coldStart.push(performance.now() - start)
    if (result.exitCode !== 0) throw new Error("true failed")
    await box.remove()
  }

  const box = await runtime.create({ image })
  await box.start()
  const pings = []
  const execs = []
  for (let i = 0; i < execRounds; i++) {
    pings.push(await box.ping())
    const start = performance.now()
    await (await box.exec("true")).wait()
    execs.push(performance.now() - start)
  }
  const reattach = []
  const client = `import { Boxlite } from "boxlite"
const start = performance.now()
const runtime = new Boxlite({ homeDir: process.argv[1] })
await (await (await runtime.get(process.argv[2])).exec("true")).wait()
console.log(performance.now() - start)
await runtime.close()`
  for (let i = 0; i < rounds; i++) {
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", client, home, box.id], { cwd: fileURLToPath(new URL(".", import.meta.url)) })
    reattach.push(Number(out.toString().trim()))
  }
  await box.remove()
  await runtime.close()
  fs.rmSync(home, { recursive: true, force: true })

  console.log(`\n${rounds} cold starts, ${execRounds} execs`)
  console.log(`exec round trip p90 ${fmt(quantile(execs, 0.9))}, ping p90 ${fmt(quantile(pings, 0.9))}`)
  report([
    { name: "cold start (create -> `true` result), median", value: median(coldStart), unit: "ms", floor: median(floorBoot), floorName: "bare QEMU boot to /init", target: TARGETS.coldStart },
    { name: "exec round trip p50 (`true`)", value: median(execs), unit: "ms", floor: median(pings), floorName: "agent ping p50", target: TARGETS.execRoundTrip },
    { name: "reattach from another process (open home, get, `true`), median", value: median(reattach), unit: "ms", floor: median(execs), floorName: "exec round trip p50" }
  ])
}

await main()

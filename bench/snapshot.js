// Snapshots against their floor, a bare QEMU boot of the same kernel+initramfs (bench/floor.js),
// measured in the same run:
//   warm start: create({ fromSnapshot }) -> result of `true` (target <= 0.3x the floor)
//   resume from suspend: exec `true` on a suspended box -> its result
//   snapshot (box runs on), suspend, pause + resume; the state's size
import { Boxlite } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bareBoot } from "./floor.js"
import { report, TARGETS } from "./targets.js"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`
const rounds = Number(process.env.BENCH_ROUNDS ?? 7)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const timed = async (f) => {
  const start = performance.now()
  await f()
  return performance.now() - start
}
const runTrue = async (box) => {
  const result = await (await box.exec("true")).wait()
  if (result.exitCode !== 0) throw new Error("true failed")
}

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-"))
  const runtime = new Boxlite({ homeDir: home })
  const info = await runtime.info()
  console.log(`host: ${os.cpus().length} CPUs, accelerator ${info.hypervisor.accelerator} (${info.hypervisor.reason})`)

  const source = await runtime.create({ image, autoRemove: false })
  await runTrue(source)
  const snapshotTimes = []
  let snapshot
  for (let i = 0; i < 3; i++) {
    snapshotTimes.push(await timed(async () => (snapshot = await source.snapshot())))
    if (i < 2) await runtime.snapshots.remove(snapshot.id)
  }
  const pauseResume = []
  for (let i = 0; i < rounds; i++) pauseResume.push(await timed(async () => {
    await source.pause()
    await source.resume()
  }))

  const floorBoot = []
  const warmStart = []
  for (let i = 0; i < rounds; i++) {
    floorBoot.push(await bareBoot(fs.mkdtempSync(path.join(home, "bare-"))))
    let clone
    warmStart.push(await timed(async () => {
      clone = await runtime.create({ fromSnapshot: snapshot.id })
      await runTrue(clone)
    }))
    await clone.remove()
  }

  const suspendTimes = []
  const resumeTimes = []
  for (let i = 0; i < rounds; i++) {
    suspendTimes.push(await timed(() => source.suspend()))
    resumeTimes.push(await timed(() => runTrue(source)))
  }
  await source.remove()
  await runtime.snapshots.remove(snapshot.id)
  await runtime.close()
  fs.rmSync(home, { recursive: true, force: true })

  const floor = median(floorBoot)
  console.log(`\n${rounds} rounds; snapshot of an idle ${snapshot.memoryMib} MiB busybox box: state ${(snapshot.stateBytes / 2 ** 20).toFixed(1)} MiB, ${(snapshot.sizeBytes / 2 ** 20).toFixed(1)} MiB on disk`)
  const floorName = "bare QEMU boot to /init"
  report([
    { name: "warm start (create fromSnapshot -> `true` result), median", value: median(warmStart), unit: "ms", floor, floorName, target: TARGETS.warmStart },
    { name: "resume from suspend (exec `true` on a suspended box -> result), median", value: median(resumeTimes), unit: "ms", floor, floorName },
    { name: "snapshot (box runs on), median", value: median(snapshotTimes), unit: "ms" },
    { name: "suspend, median", value: median(suspendTimes), unit: "ms" },
    { name: "pause + resume, median", value: median(pauseResume), unit: "ms" }
  ])
}

await main()

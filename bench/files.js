// Copies between host and box beside their floor, measured in the same run (see bench/README.md).
//   copyIn / copyOut of a 64 MiB file vs the same bytes through the same channel as an exec's
//   stdin (`cat > file`) and stdout (`cat file`): the copy adds tar framing and the files on
//   each side, nothing else. Also writeFile/readFile of 4 KiB vs the agent's ping, and the
//   host's peak RSS growth during a copyOut (the copy is streamed, not buffered).
import { Boxlite } from "boxlite"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { report } from "./targets.js"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const smallRounds = Number(process.env.BENCH_SMALL_ROUNDS ?? 30)
const SIZE = 64 * 1024 * 1024
const MB = 1e6
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const timed = async (f) => {
  const start = performance.now()
  await f()
  return performance.now() - start
}

const main = async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-files-"))
  const file = path.join(work, "big")
  const data = randomBytes(SIZE)
  fs.writeFileSync(file, data)
  const digest = createHash("sha256").update(data).digest("hex")
  const runtime = new Boxlite({ homeDir: path.join(work, "home") })
  const box = await runtime.create({ image, memoryMib: 512 })
  await box.start()
  const result = { copyIn: [], copyOut: [], stdin: [], stdout: [], write: [], read: [], ping: [] }
  let peak = 0
  try {
    for (let i = 0; i < rounds; i++) {
      result.copyIn.push(SIZE / MB / ((await timed(() => box.copyIn(file, "/root/big"))) / 1000))
      const base = process.memoryUsage().rss
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - base)), 10)
      const out = path.join(work, `out${i}`)
      result.copyOut.push(SIZE / MB / ((await timed(() => box.copyOut("/root/big", out))) / 1000))
      clearInterval(sampler)
      if (createHash("sha256").update(fs.readFileSync(out)).digest("hex") !== digest) throw new Error("copyOut changed the file")
      fs.rmSync(out)
      result.stdin.push(SIZE / MB / ((await timed(async () => {
        const cat = await box.exec("sh", ["-c", "cat > /root/viastdin"])
        await cat.stdin().write(data)
        await cat.stdin().close()
        await cat.wait()
      })) / 1000))
      result.stdout.push(SIZE / MB / ((await timed(async () => {
        const cat = await box.exec("cat", ["/root/big"])
        for await (const _ of cat.stdout().bytes()) void _
        await cat.wait()
      })) / 1000))
    }
    const small = randomBytes(4096)
    for (let i = 0; i < smallRounds; i++) {
      result.write.push(await timed(() => box.writeFile("/root/small", small)))
      result.read.push(await timed(() => box.readFile("/root/small")))
      result.ping.push(await box.ping())
    }
  } finally {
    await box.remove()
    await runtime.close()
    fs.rmSync(work, { recursive: true, force: true })
  }
  console.log(`${rounds} rounds of 64 MiB, ${smallRounds} of 4 KiB`)
  report([
    { name: "copyIn of a 64 MiB file, median", value: median(result.copyIn), unit: "MB/s", floor: median(result.stdin), floorName: "the same bytes to an exec's stdin" },
    { name: "copyOut of a 64 MiB file, median", value: median(result.copyOut), unit: "MB/s", floor: median(result.stdout), floorName: "the same bytes from an exec's stdout" },
    { name: "writeFile 4 KiB p50", value: median(result.write), unit: "ms", floor: median(result.ping), floorName: "ping p50" },
    { name: "readFile 4 KiB p50", value: median(result.read), unit: "ms", floor: median(result.ping), floorName: "ping p50" },
    { name: "host peak RSS growth during a 64 MiB copyOut", value: peak / 1024 / 1024, unit: "MiB" }
  ])
}

await main()

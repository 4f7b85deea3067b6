// The runtime API: create a box, stream a command's output live, feed stdin, kill, inspect.
//   node examples/streaming.mjs
import { Boxlite } from "boxlite"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`
const runtime = new Boxlite() // ~/.boxlite, or $BOXLITE_HOME
try {
  const box = await runtime.create({ image, cpus: 1, memoryMib: 512 })
  console.log("created", box.id, (await box.info()).status)

  const ticker = await box.exec("python", ["-u", "-c", "import time\nfor i in range(5):\n    print('tick', i)\n    time.sleep(0.3)"])
  for await (const line of ticker.stdout()) console.log(`[${new Date().toISOString().slice(17, 23)}] ${line}`)
  console.log("ticker:", await ticker.wait())

  const upper = await box.exec("tr", ["a-z", "A-Z"])
  const stdin = upper.stdin()
  const output = upper.stdout().text()
  await stdin.write("data sent to stdin\n")
  await stdin.close()
  console.log("stdin round trip:", (await output).trim())

  const sleeper = await box.exec("sleep", ["60"])
  await sleeper.kill() // SIGKILL to its process group
  console.log("killed:", await sleeper.wait())

  console.log("info:", await box.info())
  await box.stop() // autoRemove (default): the box and its disk are gone
  console.log("boxes left:", (await runtime.list()).length, "metrics:", await runtime.metrics())
} finally {
  await runtime.close()
}

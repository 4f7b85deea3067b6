// Snapshots: set a box up once, then start copies of it in a fraction of a boot; pause and
// suspend a box without losing what runs in it.
//   node examples/snapshots.mjs
import { Boxlite } from "boxlite"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`
const runtime = new Boxlite()
const sh = async (box, script) => {
  const execution = await box.exec("sh", ["-c", script])
  const out = execution.stdout().text()
  await execution.wait()
  return (await out).trim()
}

try {
  // The work worth saving: files, and a process that keeps state in memory.
  const template = await runtime.create({ image, memoryMib: 256 })
  await sh(template, "echo 'prepared once' > /root/setup.txt; (i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 1; done) >/dev/null 2>&1 &")
  const snapshot = await template.snapshot({ name: "prepared" })
  console.log(`snapshot ${snapshot.name}: ${(snapshot.stateBytes / 2 ** 20).toFixed(0)} MiB of memory state`)
  await template.remove()

  // Clones start where the template was, each on its own copy of the disk, with its own RNG.
  for (const n of [1, 2]) {
    const started = performance.now()
    const clone = await runtime.create({ fromSnapshot: "prepared" })
    const setup = await sh(clone, "cat /root/setup.txt")
    const elapsed = performance.now() - started
    // The template's counter process runs on in every clone.
    console.log(`clone ${n} answered in ${elapsed.toFixed(0)} ms: ${setup}, its counter at ${await sh(clone, "cat /tmp/count")}`)
    await clone.remove()
  }

  // Pause: the vCPUs stop, nothing is lost. Suspend: saved to disk, no VM at all until the next use.
  const box = await runtime.create({ fromSnapshot: "prepared" })
  await box.start()
  await box.pause()
  console.log("paused:", (await box.info()).status)
  await box.resume()
  await box.suspend()
  console.log("suspended:", (await box.info()).status)
  console.log("after resume:", await sh(box, "cat /root/setup.txt"))
  await box.remove()
  await runtime.snapshots.remove("prepared")
} finally {
  await runtime.close()
}

// Boxes across processes: a detached box made here is used by a second process, listed with
// its true status, measured, stopped, and started again with its disk.
//   node examples/reattach.mjs
import { Boxlite } from "boxlite"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`

if (process.argv[2] === "second-process") {
  // Reattach by name from another process: no handle was passed, only the name.
  const runtime = new Boxlite()
  try {
    const box = await runtime.get("reattach-demo")
    const execution = await box.exec("sh", ["-c", "echo \"pid $$ in box $(hostname), note: $(cat /root/note)\""])
    console.log(`  [process ${process.pid}] ${(await execution.stdout().text()).trim()}`)
  } finally {
    await runtime.close() // lets go of the box; it keeps running (detached)
  }
} else {
  const runtime = new Boxlite() // ~/.boxlite, or $BOXLITE_HOME
  try {
    // A run that was interrupted may have left the box: remove it, running or not.
    await runtime.remove("reattach-demo", { force: true }).catch(() => {})
    // detach: the box outlives this process; diskSizeGb: its disk persists across stop/start.
    const box = await runtime.create({ image, name: "reattach-demo", detach: true, autoRemove: false, diskSizeGb: 2 })
    await (await box.exec("sh", ["-c", "echo written-before-the-restart > /root/note"])).wait()
    console.log("list:", (await runtime.list()).map((b) => `${b.name ?? b.id} ${b.status} (VMM pid ${b.pid})`))

    execFileSync(process.execPath, [fileURLToPath(import.meta.url), "second-process"], { stdio: "inherit" })

    await (await box.exec("python3", ["-c", "sum(i * i for i in range(3_000_000))"])).wait()
    console.log("metrics:", await box.metrics())

    await box.stop()
    console.log("after stop:", (await box.info()).status)
    await box.start()
    const again = await box.exec("cat", ["/root/note"])
    console.log("after restart, the disk still has:", (await again.stdout().text()).trim())
    await box.remove()
  } finally {
    await runtime.close()
  }
}

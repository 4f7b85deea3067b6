// Files in and out of a box: copy a project in, run it, copy the results out; small files.
//   node examples/files.mjs
import { Boxlite, PathNotFound } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`
const work = fs.mkdtempSync(path.join(os.tmpdir(), "boxlite-files-"))
const project = path.join(work, "project")
fs.mkdirSync(path.join(project, "data"), { recursive: true })
fs.writeFileSync(path.join(project, "data", "words.txt"), "banana\napple\ncherry\n")
fs.writeFileSync(path.join(project, "sort.sh"), "#!/bin/sh\nmkdir -p out && sort data/words.txt > out/sorted.txt\n", { mode: 0o755 })

const runtime = new Boxlite()
const box = await runtime.create({ image })
try {
  // A tree in: modes and symlinks kept; into /root because /root is a directory (as cp).
  await box.copyIn(project, "/root")
  const run = await box.exec("sh", ["-c", "cd /root/project && ./sort.sh"])
  await run.wait()

  // Results out, into a host directory.
  await box.copyOut("/root/project/out", work)
  console.log("sorted on the host:", fs.readFileSync(path.join(work, "out", "sorted.txt"), "utf8").trim().split("\n").join(", "))

  // Small files without a tree.
  await box.writeFile("/root/config.json", JSON.stringify({ retries: 3 }))
  console.log("read back:", Buffer.from(await box.readFile("/root/config.json")).toString())

  // A missing path is a typed error naming it.
  try {
    await box.readFile("/root/no-such-file")
  } catch (e) {
    if (e instanceof PathNotFound) console.log(`${e._tag} (${e.side}):`, e.path)
    else throw e
  }
} finally {
  await box.remove()
  await runtime.close()
  fs.rmSync(work, { recursive: true, force: true })
}

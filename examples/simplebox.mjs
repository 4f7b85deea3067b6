// SimpleBox patterns: results, stdout vs stderr, env and working dir, exit codes, errors.
//   node examples/simplebox.mjs
import { BoxliteError, SimpleBox, TimeoutError } from "boxlite"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`

const box = new SimpleBox({ image, env: { GREETING: "hello" }, workingDir: "/tmp" })
try {
  const basic = await box.exec("echo", "basic execution")
  console.log("stdout:", JSON.stringify(basic.stdout), "exit code:", basic.exitCode)

  const both = await box.exec("sh", "-c", "echo to stdout; echo to stderr >&2")
  console.log("stdout:", JSON.stringify(both.stdout), "stderr:", JSON.stringify(both.stderr))

  const env = await box.exec("sh", "-c", "echo $GREETING $NAME from $(pwd)", { env: { NAME: "world" } })
  console.log("env and working dir:", env.stdout.trim())

  const failed = await box.exec("python", "-c", "import sys; sys.exit(3)")
  console.log("a failing command is a result, not an error: exit code", failed.exitCode)

  const pipeline = await box.exec("python", "-c", "import json; rows=[{'n': i, 'sq': i*i} for i in range(5)]; print(json.dumps(rows))")
  console.log("data processed in the box:", JSON.parse(pipeline.stdout).map((r) => r.sq))

  try {
    await box.exec("sleep", "10", { timeoutMs: 300 })
  } catch (e) {
    if (e instanceof TimeoutError) console.log("timeout:", e.message)
    else throw e
  }
  try {
    await box.exec("no-such-program")
  } catch (e) {
    if (e instanceof BoxliteError) console.log(`${e._tag}:`, e.message)
    else throw e
  }
} finally {
  await box.stop()
}

// The demo: boot the offline Python image as a micro-VM, run a command in it, print its output.
//   node examples/hello.mjs
import { SimpleBox } from "boxlite"
import { fileURLToPath } from "node:url"

// Built offline by images/build.sh; with a registry this would be image: "python:slim".
const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`

const box = new SimpleBox({ image })
try {
  const result = await box.exec("python", "-c", "import platform; print(f'Hello from BoxLite! Python {platform.python_version()} on Linux {platform.release()}')")
  process.stdout.write(result.stdout)
} finally {
  await box.stop() // or, where `await using` is available (TypeScript, Node >= 24): await using box = new SimpleBox(...)
}

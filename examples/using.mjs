// `await using`: a box (or a runtime) is disposed when its block ends, however the block ends
// (a return, a throw), the last declared first. Needs Node >= 24 (or TypeScript >= 5.2): Node 20
// and 22 do not parse this file, so every other example uses try/finally.
//   node examples/using.mjs
import { Boxlite, SimpleBox } from "boxlite"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`

// A runtime of its own: closing it at the end of the file stops any box it started and left running.
await using runtime = new Boxlite()

{
  await using box = new SimpleBox({ image, name: "using-demo" })
  console.log("in the block:", (await box.exec("sh", "-c", "echo $((6 * 7))")).stdout.trim())
  console.log("listed while the block runs:", (await runtime.list()).map((b) => `${b.name} ${b.status}`).join(", "))
}
// The block has ended: the box is stopped and removed.
console.log("after the block:", (await runtime.list()).filter((b) => b.name === "using-demo").length, "boxes named using-demo")

try {
  await using box = new SimpleBox({ image, name: "using-throws" })
  await box.exec("true")
  throw new Error("something failed in the block")
} catch (e) {
  console.log(`${e.message}; the box is gone anyway:`, (await runtime.list()).filter((b) => b.name === "using-throws").length, "boxes")
}

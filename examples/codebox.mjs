// CodeBox: run untrusted Python, install what it needs, keep an interpreter's state between cells.
//   node examples/codebox.mjs
// Offline: the package comes from a package index this script serves itself on the host's
// loopback (a wheel it builds with python3's zipfile); the box reaches it through 10.0.2.2.
import { CodeBox } from "boxlite"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`

// A one-module wheel, "zen-of-boxlite" (a wheel is a zip with the module and its dist-info).
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "codebox-index-"))
const wheel = execFileSync("python3", ["-c", `
import sys, zipfile
info = "zen_of_boxlite-1.0.dist-info/"
with zipfile.ZipFile(sys.argv[1] + "/zen_of_boxlite-1.0-py3-none-any.whl", "w") as z:
    z.writestr("zen_of_boxlite.py", "def zen():\\n    return 'Untrusted code belongs in a box.'\\n")
    z.writestr(info + "METADATA", "Metadata-Version: 2.1\\nName: zen-of-boxlite\\nVersion: 1.0\\n")
    z.writestr(info + "WHEEL", "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    z.writestr(info + "RECORD", "")
print(z.filename)`, dir]).toString().trim()

// A PEP 503 "simple" index with that one package.
const index = http.createServer((req, res) => {
  if (req.url === "/simple/zen-of-boxlite/") res.writeHead(200, { "content-type": "text/html" }).end(`<a href="/files/${path.basename(wheel)}">${path.basename(wheel)}</a>`)
  else if (req.url === `/files/${path.basename(wheel)}`) fs.createReadStream(wheel).pipe(res)
  else res.writeHead(404).end()
})
await new Promise((resolve) => index.listen(0, "127.0.0.1", resolve))
const packageIndex = `http://10.0.2.2:${index.address().port}/simple/`

const codebox = new CodeBox({ image, allowHostLoopback: true, packageIndex })
try {
  // The reference example: install a package, then run code that uses it.
  await codebox.installPackage("zen-of-boxlite")
  const code = `
import zen_of_boxlite
print(zen_of_boxlite.zen())
`
  console.log("run:", (await codebox.run(code)).trim())

  // A failing program is an ExecError carrying the traceback.
  try {
    await codebox.run("1 / 0")
  } catch (e) {
    console.log(`${e._tag}: exit code ${e.exitCode}, ${e.stderr.trim().split("\n").at(-1)}`)
  }

  // The stateful interpreter: variables persist, the last expression is the value.
  await codebox.runCode("import zen_of_boxlite\nanswer = 41")
  console.log("runCode:", (await codebox.runCode("answer + 1")).text)
  const failed = await codebox.runCode("undefined_name")
  console.log("an exception is a result:", failed.error.name, "-", failed.error.value)
  const slow = await codebox.runCode("while True: pass", { timeoutMs: 2000 })
  console.log("timeout:", slow.error.name, "| still there:", (await codebox.runCode("answer")).text)
} finally {
  await codebox.stop()
  index.close()
  fs.rmSync(dir, { recursive: true, force: true })
}

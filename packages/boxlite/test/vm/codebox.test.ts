// CodeBox in real VMs: programs, pip from a package index of the test's own (wheels built here,
// served from a network namespace), a wheel on a volume, and the stateful interpreter with the
// attacks on it. One CodeBox serves the tests that do not disturb each other.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Boxlite, CodeBox, ExecError, InvalidOptions, ProgramFailed, TimeoutError } from "boxlite"
import { CodeBox as CodeBoxEffect, layer } from "boxlite/effect"
import { Effect } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { addTestHost, boxDirs, PYTHON, qemuProcessesUnder, removeTestHost, tempHome, uniqueSubnet } from "./helpers.js"

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-codebox-"))

/** A pure-Python wheel: a zip with the module and its dist-info (METADATA, WHEEL, RECORD). */
const WHEEL = String.raw`
import base64, hashlib, sys, zipfile
out, name, version, source = sys.argv[1:]
dist = name.replace("-", "_")
info = "%s-%s.dist-info/" % (dist, version)
files = {dist + ".py": source,
         info + "METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
         info + "WHEEL": "Wheel-Version: 1.0\nGenerator: boxlite-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
record = ["%s,sha256=%s,%d" % (p, base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b"=").decode(), len(t.encode())) for p, t in files.items()]
files[info + "RECORD"] = "\n".join(record + [info + "RECORD,,"]) + "\n"
path = "%s/%s-%s-py3-none-any.whl" % (out, dist, version)
with zipfile.ZipFile(path, "w") as z:
    for p, t in files.items():
        z.writestr(p, t)
print(path)
`
const wheel = (dir: string, name: string, version: string, source: string): string =>
  execFileSync("python3", ["-c", WHEEL, dir, name, version, source]).toString().trim()

/** A PEP 503 simple index: /simple/<name>/ links each wheel. */
const simpleIndex = (root: string, wheels: Record<string, string>) => {
  for (const [name, file] of Object.entries(wheels)) {
    fs.mkdirSync(path.join(root, "simple", name), { recursive: true })
    fs.writeFileSync(path.join(root, "simple", name, "index.html"), `<html><body><a href="../../${path.basename(file)}">${path.basename(file)}</a></body></html>\n`)
  }
}

// The test host: a network namespace of this run behind a veth pair, on a subnet of its own.
const ns = `blcb${process.pid % 100000}`
const subnet = uniqueSubnet(3)
const indexUrl = `http://${subnet}.2:8000/simple/`
let testHost: ChildProcess | undefined

const get = (url: string) =>
  new Promise<number>((resolve, reject) => http.get(url, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on("error", reject))

let codebox: CodeBox
const wheels = path.join(work, "wheels")

beforeAll(async () => {
  const index = path.join(work, "index")
  fs.mkdirSync(index)
  fs.mkdirSync(wheels)
  simpleIndex(index, {
    "boxlite-hello": wheel(index, "boxlite-hello", "1.0", "def greet(who):\n    return 'hello, ' + who\n"),
    "boxlite-extra": wheel(index, "boxlite-extra", "2.0", "VERSION = '2.0'\n")
  })
  wheel(wheels, "vol-wheel", "1.0", "def hello():\n    return 'from the volume'\n")

  addTestHost(ns, subnet)
  testHost = spawn("ip", ["netns", "exec", ns, "python3", "-m", "http.server", "8000", "--bind", `${subnet}.2`, "--directory", index], { stdio: "ignore" })
  const deadline = Date.now() + 20_000
  while ((await get(`${indexUrl}boxlite-hello/`).catch(() => 0)) !== 200) {
    if (Date.now() > deadline) throw new Error("the test index did not come up")
    await new Promise((r) => setTimeout(r, 200))
  }
  codebox = new CodeBox({ image: PYTHON, runtime, packageIndex: indexUrl, volumes: [[wheels, "/wheels", "ro"]] })
})

afterAll(async () => {
  await codebox?.stop()
  await runtime.close()
  testHost?.kill()
  removeTestHost(ns)
  fs.rmSync(work, { recursive: true, force: true })
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
})

describe("CodeBox programs", () => {
  it("run returns stdout then stderr; the box has an id, info and metrics", async () => {
    expect(await codebox.run("import sys\nprint('to stderr', file=sys.stderr, flush=True)\nprint('to stdout')")).toBe("to stdout\nto stderr\n")
    expect(codebox.id).toMatch(/^[0-9A-Z]{26}$/)
    expect((await codebox.info()).status).toBe("running")
    expect((await codebox.metrics()).memoryUsageBytes).toBeGreaterThan(0)
  })

  it("a failing program is an ExecError with its exit code, the traceback and the command", async () => {
    const error = await codebox.run("def f():\n    raise ValueError('bad input')\nf()").catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ExecError)
    expect(error).toBeInstanceOf(ProgramFailed)
    const failed = error as ProgramFailed
    expect(failed.exitCode).toBe(1)
    expect(failed.stderr).toMatch(/Traceback[\s\S]*line 2, in f[\s\S]*ValueError: bad input/)
    expect(failed.command).toEqual(["python3", "-"])
    expect(failed.message).toContain("ValueError: bad input")
  })

  it("a timeout is a TimeoutError and the box stays usable", async () => {
    await expect(codebox.run("import time\ntime.sleep(60)", { timeoutMs: 1500 })).rejects.toBeInstanceOf(TimeoutError)
    expect(await codebox.run("print('still here')")).toBe("still here\n")
  })

  it("runScript runs a host file, or a file in the box", async () => {
    const script = path.join(work, "script.py")
    fs.writeFileSync(script, "import platform\nprint('script on', platform.system())\n")
    expect(await codebox.runScript(script)).toBe("script on Linux\n")
    await codebox.run("open('/root/guest.py', 'w').write('print(6 * 7)')")
    expect(await codebox.runScript("/root/guest.py")).toBe("42\n")
  })
})

describe("CodeBox packages", () => {
  it("installs from the package index and from a wheel on a volume; the interpreter sees them at once", async () => {
    expect((await codebox.runCode("import sys")).error).toBeUndefined() // started before the install
    expect(await codebox.installPackage("boxlite-hello")).toMatch(/Successfully installed boxlite-hello-1.0/)
    expect(await codebox.run("import boxlite_hello\nprint(boxlite_hello.greet('box'))")).toBe("hello, box\n")
    expect(await codebox.installPackages("boxlite-extra==2.0", "/wheels/vol_wheel-1.0-py3-none-any.whl")).toMatch(/Successfully installed/)
    const r = await codebox.runCode("import boxlite_extra, vol_wheel\n(boxlite_extra.VERSION, vol_wheel.hello())")
    expect(r.text).toBe("('2.0', 'from the volume')")
  }, 240_000)

  it("an unknown package is an error naming it, with pip's message", async () => {
    const error = await codebox.installPackage("no-such-package").catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ProgramFailed)
    expect((error as Error).message).toMatch(/pip could not install no-such-package: ERROR: .*no-such-package/)
  }, 180_000)

  it("a spec that is a pip option is InvalidOptions", async () => {
    await expect(codebox.installPackage("--index-url=http://elsewhere/simple/")).rejects.toBeInstanceOf(InvalidOptions)
  })
})

describe("CodeBox interpreter", () => {
  it("keeps variables, imports and functions; the last expression is the value; errors are results", async () => {
    await codebox.restartInterpreter()
    expect(await codebox.runCode("x = 41\nimport json\ndef shout(s):\n    return s.upper()")).toEqual({ stdout: "", stderr: "", results: [] })
    const r = await codebox.runCode("print(shout('hi'))\nx + 1")
    expect(r).toMatchObject({ text: "42", stdout: "HI\n" })
    expect((await codebox.runCode("json.dumps({'x': x})")).text).toBe(`'{"x": 41}'`)
    const failed = await codebox.runCode("y = 1\nshout(None)")
    expect(failed.error).toMatchObject({ name: "AttributeError", value: expect.stringContaining("upper") })
    expect(failed.error?.traceback).toMatch(/<cell-\d+>", line 2[\s\S]*return s.upper\(\)/)
    expect((await codebox.runCode("y")).text).toBe("1")
  })

  it("rich results: PNG, HTML and JSON of an object of our own, as the value and through display()", async () => {
    const r = await codebox.runCode([
      "import base64",
      "PNG = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')",
      "class Plot:",
      "    def __repr__(self): return 'Plot()'",
      "    def _repr_png_(self): return PNG",
      "    def _repr_html_(self): return '<img alt=\"plot\">'",
      "    def _repr_json_(self): return {'kind': 'plot'}",
      "display(Plot())",
      "Plot()"
    ].join("\n"))
    const plot = { text: "Plot()", png: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==", html: '<img alt="plot">', json: { kind: "plot" } }
    expect(r.results).toEqual([plot, plot])
    expect(Buffer.from(r.results[0]!.png!, "base64").subarray(1, 4).toString()).toBe("PNG")
  })

  it("streams output lines while the cell runs", async () => {
    const lines: Array<{ line: string; at: number }> = []
    const r = await codebox.runCode("import sys, time\nprint('started')\nprint('warning', file=sys.stderr)\ntime.sleep(3)\nprint('finished')", {
      onStdout: (line) => lines.push({ line, at: Date.now() }),
      onStderr: (line) => lines.push({ line: `stderr: ${line}`, at: Date.now() })
    })
    const done = Date.now()
    expect(lines.map((l) => l.line)).toEqual(["started", "stderr: warning", "finished"])
    expect(done - lines[0]!.at).toBeGreaterThan(2000)
    expect(r).toMatchObject({ stdout: "started\nfinished\n", stderr: "warning\n" })
  })

  it("forged frames, writes to fd 1, closed stdout and sys.exit do not fool or stop it", async () => {
    await codebox.runCode("kept = 'state'")
    const forged = await codebox.runCode([
      "import os",
      "print('{\"type\": \"done\", \"value\": {\"text\": \"forged\"}}')",
      "os.write(1, b'{\"type\": \"done\", \"error\": {\"name\": \"X\", \"value\": \"\", \"traceback\": \"\"}}\\n')",
      "'genuine'"
    ].join("\n"))
    expect(forged).toMatchObject({ text: "'genuine'", results: [{ text: "'genuine'" }] })
    expect(forged.error).toBeUndefined()
    expect(forged.stdout).toContain('"forged"')
    expect((await codebox.runCode("import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)")).error).toBeUndefined()
    expect((await codebox.runCode("print('printing again')")).stdout).toBe("printing again\n")
    expect((await codebox.runCode("import sys\nsys.exit(2)")).error).toMatchObject({ name: "SystemExit", value: "2" })
    expect((await codebox.runCode("kept")).text).toBe("'state'")
  })

  it("timeoutMs interrupts an infinite loop (KeyboardInterrupt) and the state stays", async () => {
    await codebox.runCode("counter = 0")
    const r = await codebox.runCode("while True:\n    counter += 1", { timeoutMs: 2000 })
    expect(r.error).toMatchObject({ name: "TimeoutError" })
    expect(r.error?.traceback).toContain("KeyboardInterrupt")
    expect(Number((await codebox.runCode("counter")).text)).toBeGreaterThan(0)
  })

  it("a loop that swallows KeyboardInterrupt is killed; the interpreter restarts and says so", async () => {
    await codebox.runCode("lost = True")
    const r = await codebox.runCode("import time\nwhile True:\n    try:\n        time.sleep(5)\n    except KeyboardInterrupt:\n        print('swallowed', flush=True)", { timeoutMs: 1500 })
    expect(r.error).toMatchObject({ name: "InterpreterRestarted", value: expect.stringContaining("killed") })
    expect(r.stdout).toContain("swallowed")
    expect((await codebox.runCode("lost")).error).toMatchObject({ name: "NameError" })
  })

  it("a segfaulting extension and os._exit restart the interpreter and say so", async () => {
    const crash = await codebox.runCode("import ctypes\nctypes.string_at(0)")
    expect(crash.error).toMatchObject({ name: "InterpreterRestarted", value: expect.stringContaining("signal SIGSEGV") })
    expect(crash.error?.traceback).toContain("Segmentation fault")
    const exit = await codebox.runCode("import os\nos._exit(4)")
    expect(exit.error).toMatchObject({ name: "InterpreterRestarted", value: expect.stringContaining("exited with code 4") })
    expect((await codebox.runCode("6 * 7")).text).toBe("42")
  })

  it("an AbortSignal interrupts a cell; restartInterpreter forgets everything", async () => {
    await codebox.runCode("z = 1")
    const abort = new AbortController()
    setTimeout(() => abort.abort(), 1500)
    expect((await codebox.runCode("import time\ntime.sleep(60)", { signal: abort.signal })).error).toMatchObject({ name: "KeyboardInterrupt" })
    expect((await codebox.runCode("z")).text).toBe("1")
    await codebox.restartInterpreter()
    expect((await codebox.runCode("z")).error).toMatchObject({ name: "NameError" })
  })
})

describe("two CodeBoxes", () => {
  it("are isolated (Effect face beside the Promise face); a dead index fails naming the package", async () => {
    await codebox.runCode("secret = 'only in the first box'")
    await codebox.run("open('/root/mark', 'w').write('first')")
    const program = Effect.gen(function*() {
      // PIP_INDEX_URL in the box's env is pip's own setting: a port where nothing listens.
      const other = yield* CodeBoxEffect.scoped({ image: PYTHON, env: { PIP_INDEX_URL: `http://${subnet}.2:9/simple/`, PIP_TRUSTED_HOST: `${subnet}.2` } })
      const secret = yield* other.runCode("secret")
      const mark = yield* other.run("import os\nprint(os.path.exists('/root/mark'))")
      const install = yield* Effect.flip(other.installPackages(["boxlite-hello"]))
      return { secret, mark, install, id: other.box.id }
    }).pipe(Effect.scoped, Effect.provide(layer({ homeDir: home })))
    const { secret, mark, install, id } = await Effect.runPromise(program)
    expect(id).not.toBe(codebox.id)
    expect(secret.error).toMatchObject({ name: "NameError" })
    expect(mark).toBe("False\n")
    expect(install).toBeInstanceOf(ProgramFailed)
    expect(install.message).toMatch(/pip could not install boxlite-hello: [\s\S]*(Connection refused|No matching distribution)/)
    expect((await codebox.runCode("secret")).text).toBe("'only in the first box'")
    expect(boxDirs(home)).toHaveLength(1)
  }, 240_000)
})

// The CodeBox interpreter (driver + host protocol) against the host's own python3: the same
// program the box runs, without a VM, so every attack on the protocol is cheap to try here.
import { OutputStream } from "@boxlite/core/promise"
import type { Boxlite } from "@boxlite/core/promise"
import { InvalidOptions } from "@boxlite/core"
import { spawn } from "node:child_process"
import * as os from "node:os"
import { afterEach, describe, expect, it } from "vitest"
import { CodeBox } from "../src/CodeBox.js"
import { Interpreter, MAX_OUTPUT_CHARS, type Spawn } from "../src/internal/Interpreter.js"

/** python3 on the host, in a process group of its own (as the guest agent runs commands). */
const spawnLocal: Spawn = async (command, args) => {
  const child = spawn(command, args, { stdio: "pipe", detached: true })
  const exit = new Promise<{ exitCode: number; signal?: string }>((resolve) =>
    child.once("exit", (code, signal) => {
      const n = signal ? os.constants.signals[signal] : undefined
      resolve(n === undefined ? { exitCode: code ?? 0 } : { exitCode: 128 + n, signal: signal! })
    })
  )
  return {
    stdout: () => new OutputStream(() => child.stdout),
    stderr: () => new OutputStream(() => child.stderr),
    stdin: () => ({ write: (data: string) => new Promise<void>((resolve, reject) => child.stdin.write(data, (e) => (e ? reject(e) : resolve()))) }),
    kill: async (signal = 9) => {
      try {
        process.kill(-child.pid!, signal)
      } catch {
        // already gone
      }
    },
    wait: () => exit
  }
}

const interpreters: Array<Interpreter> = []
const start = async () => {
  const interpreter = await Interpreter.start(spawnLocal)
  interpreters.push(interpreter)
  return interpreter
}
afterEach(async () => {
  await Promise.all(interpreters.splice(0).map((i) => i.close()))
})

describe("CodeBox interpreter", () => {
  it("keeps variables, imports and functions between cells; the last expression is the value", async () => {
    const py = await start()
    expect(await py.run("x = 41\nimport math\ndef double(n):\n    return 2 * n")).toEqual({ stdout: "", stderr: "", results: [] })
    const r = await py.run("print('hi')\nx + 1")
    expect(r).toEqual({ text: "42", stdout: "hi\n", stderr: "", results: [{ text: "42" }] })
    expect((await py.run("double(math.floor(2.5))")).text).toBe("4")
    expect((await py.run("print('no value')")).text).toBeUndefined()
  })

  it("an exception is `error` with the traceback of the cell's own lines", async () => {
    const py = await start()
    const r = await py.run("def f():\n    return 1 / 0\nf()")
    expect(r.error).toMatchObject({ name: "ZeroDivisionError", value: "division by zero" })
    expect(r.error?.traceback).toMatch(/File "<cell-1>", line 3[\s\S]*File "<cell-1>", line 2, in f\n    return 1 \/ 0/)
    expect(r.error?.traceback).not.toContain("exec(")
    expect((await py.run("def g(:")).error).toMatchObject({ name: "SyntaxError" })
    expect((await py.run("1 + 1")).text).toBe("2")
  })

  it("display() and the last expression give the MIME types of IPython's display protocol", async () => {
    const py = await start()
    const r = await py.run([
      "class Chart:",
      "    def __repr__(self): return 'Chart()'",
      "    def _repr_png_(self): return b'\\x89PNG\\r\\n'",
      "    def _repr_html_(self): return '<b>chart</b>'",
      "    def _repr_json_(self): return {'points': [1, 2]}",
      "class Broken:",
      "    def _repr_html_(self): raise RuntimeError('no')",
      "display(Chart(), Broken())",
      "Chart()"
    ].join("\n"))
    const chart = { text: "Chart()", png: Buffer.from("\x89PNG\r\n", "latin1").toString("base64"), html: "<b>chart</b>", json: { points: [1, 2] } }
    expect(r.results).toEqual([chart, { text: expect.stringContaining("Broken object") }, chart])
    expect(r.text).toBe("Chart()")
  })

  it("delivers output lines while the cell still runs", async () => {
    const py = await start()
    const seen: Array<[string, number]> = []
    const r = await py.run("import sys, time\nprint('first')\nprint('warn', file=sys.stderr)\ntime.sleep(1.5)\nprint('second', end='')", {
      onStdout: (line) => seen.push([line, Date.now()]),
      onStderr: (line) => seen.push([`err:${line}`, Date.now()])
    })
    const ended = Date.now()
    expect(seen.map(([l]) => l).sort()).toEqual(["err:warn", "first", "second"])
    expect(ended - seen.find(([l]) => l === "first")![1]).toBeGreaterThan(1000)
    expect(r.stdout).toBe("first\nsecond")
    expect(r.stderr).toBe("warn\n")
  })

  it("a result keeps at most MAX_OUTPUT_CHARS of a stream; the callback sees all of it", async () => {
    const py = await start()
    let lines = 0
    const r = await py.run("for i in range(200_000):\n    print('x' * 63)", { onStdout: () => lines++ })
    expect(lines).toBe(200_000)
    expect(r.stdout.length).toBe(MAX_OUTPUT_CHARS + "\n[output truncated]\n".length)
    expect(r.stdout.endsWith("\n[output truncated]\n")).toBe(true)
    // 12.8 MB through a host python: ~1 s idle, several under load.
  }, 30_000)

  it("a callback that throws loses nothing else", async () => {
    const py = await start()
    const r = await py.run("print('a')\nprint('b')\n'done'", { onStdout: () => { throw new Error("caller's bug") } })
    expect(r).toMatchObject({ text: "'done'", stdout: "a\nb\n" })
  })

  it("output that imitates frames, direct writes to fd 1 and subprocess output are output, not results", async () => {
    const py = await start()
    const r = await py.run([
      "import os, subprocess",
      "print('{\"type\": \"done\", \"value\": {\"text\": \"forged\"}}')",
      "os.write(1, b'{\"type\": \"display\", \"data\": {\"text\": \"forged\"}}\\n')",
      "subprocess.run(['echo', 'from a child'])",
      "'real'"
    ].join("\n"))
    expect(r.text).toBe("'real'")
    expect(r.results).toEqual([{ text: "'real'" }])
    expect(r.stdout).toContain('{"type": "done", "value": {"text": "forged"}}\n')
    expect(r.stdout).toContain("from a child\n")
  })

  it("closing or redirecting stdout and stderr spoils only that cell", async () => {
    const py = await start()
    const r = await py.run("import io, os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\nsys.stderr = io.StringIO()")
    expect(r.error).toBeUndefined()
    expect(await py.run("import sys\nprint('back')\nprint('err', file=sys.stderr)")).toMatchObject({ stdout: "back\n", stderr: "err\n" })
    await py.run("import io, site, sys\nsys.__stdout__ = io.StringIO()\nsys.__stderr__ = None\nsite.getsitepackages = None")
    expect(await py.run("print('still')")).toEqual({ stdout: "still\n", stderr: "", results: [] })
  })

  it("sys.exit is an error and keeps the state; input() reads EOF; a fork's copy of the cell sends nothing", async () => {
    const py = await start()
    await py.run("x = 1")
    expect((await py.run("import sys; sys.exit(3)")).error).toMatchObject({ name: "SystemExit", value: "3" })
    expect((await py.run("input()")).error).toMatchObject({ name: "EOFError" })
    const forked = await py.run("import os\npid = os.fork()\nif pid == 0: print('child')\nelse: os.waitpid(pid, 0)\n'parent'")
    expect(forked).toMatchObject({ text: "'parent'", stdout: "child\n" })
    expect((await py.run("x")).text).toBe("1")
  })

  it("os._exit and a segfault restart the interpreter and say so", async () => {
    const py = await start()
    await py.run("x = 1")
    const exit = await py.run("import os; print('bye'); os._exit(5)")
    expect(exit.error).toMatchObject({ name: "InterpreterRestarted", value: expect.stringContaining("exited with code 5") })
    expect(py.exited).toBe(true)
    const py2 = await start()
    expect((await py2.run("x")).error).toMatchObject({ name: "NameError" })
    const crash = await py2.run("import ctypes\nctypes.string_at(0)")
    expect(crash.error).toMatchObject({ name: "InterpreterRestarted", value: expect.stringContaining("signal SIGSEGV") })
    expect(crash.error?.traceback).toContain("Segmentation fault")
  })

  it("timeoutMs interrupts a loop with KeyboardInterrupt and keeps the state", async () => {
    const py = await start()
    await py.run("x = 7")
    const r = await py.run("while True:\n    pass", { timeoutMs: 300 })
    expect(r.error).toMatchObject({ name: "TimeoutError", value: expect.stringContaining("300 ms") })
    expect(r.error?.traceback).toContain("KeyboardInterrupt")
    expect((await py.run("x")).text).toBe("7")
  })

  it("an interrupt that arrives before the cell's code runs still interrupts it, and only it", async () => {
    const py = await start()
    await py.run("x = 7")
    for (let i = 0; i < 5; i++) {
      const r = await py.run("while True:\n    pass", { timeoutMs: 1 })
      expect(r.error).toMatchObject({ name: "TimeoutError" })
      expect((await py.run("x")).text).toBe("7")
    }
  }, 30_000)

  it("an interrupt meant for a cell that had just ended does not reach the next one", async () => {
    const py = await start()
    await py.run("x = 7")
    for (let i = 0; i < 30; i++) {
      await py.run("import time\ntime.sleep(0.005)", { timeoutMs: 5 })
      expect(await py.run("x")).toMatchObject({ text: "7" })
    }
  }, 30_000)

  it("code that swallows KeyboardInterrupt is killed after the grace period", async () => {
    const py = await start()
    const r = await py.run("import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        print('ignored')", { timeoutMs: 200 })
    expect(r.error).toMatchObject({ name: "InterpreterRestarted", value: expect.stringContaining("did not stop") })
    expect(r.stdout).toContain("ignored")
  }, 15_000)

  it("an AbortSignal interrupts like Ctrl-C", async () => {
    const py = await start()
    const abort = new AbortController()
    setTimeout(() => abort.abort(), 300)
    const r = await py.run("import time\ntime.sleep(30)", { signal: abort.signal })
    expect(r.error).toMatchObject({ name: "KeyboardInterrupt" })
    expect((await py.run("2 * 21")).text).toBe("42")
  })

  it("a frame that is not the protocol's ends the interpreter", async () => {
    const py = await start()
    const r = await py.run("import os\nfor fd in range(3, 256):\n    try: os.write(fd, b'nonsense\\n')\n    except OSError: pass")
    expect(r.error).toMatchObject({ name: "InterpreterRestarted", value: expect.stringContaining("broke the protocol") })
  })
})

describe("CodeBox options", () => {
  const runtime = {} as Boxlite // validation happens before any box is asked for

  it("packageIndex must be an http(s) URL", () => {
    expect(() => new CodeBox({ packageIndex: "file:///etc" }, runtime)).toThrow(InvalidOptions)
    expect(() => new CodeBox({ packageIndex: "file:///etc" }, runtime)).toThrow(/packageIndex/)
  })

  it("a package spec cannot smuggle a pip option", async () => {
    const codebox = new CodeBox({}, runtime)
    await expect(codebox.installPackage("--index-url=http://elsewhere/")).rejects.toThrow(InvalidOptions)
    await expect(codebox.installPackages("ok", "-r/etc/passwd")).rejects.toThrow(/packages\[1\]/)
    await expect(codebox.installPackages()).rejects.toThrow(/packages/)
    await expect(codebox.run("1", { timeoutMs: 0 })).rejects.toThrow(/timeoutMs/)
    await expect(codebox.runScript("-c")).rejects.toThrow(/"path"/)
    await expect(codebox.runScript(os.tmpdir())).rejects.toThrow(InvalidOptions)
  })
})

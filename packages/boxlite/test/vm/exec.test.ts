import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Box, Boxlite, ExecError, TimeoutError } from "boxlite"
import { BUSYBOX, tempHome } from "./helpers.js"

describe("exec in one running box", () => {
  const runtime = new Boxlite({ homeDir: tempHome() })
  let box: Box

  beforeAll(async () => {
    box = await runtime.create({ image: BUSYBOX, env: { BOX_LEVEL: "box" }, workingDir: "/tmp" })
    await box.start()
  })
  afterAll(() => runtime.close())

  it("runs a command and returns its output and exit code", async () => {
    const execution = await box.exec("echo", ["Hello from BoxLite!"])
    expect(await execution.stdout().text()).toBe("Hello from BoxLite!\n")
    expect(await execution.wait()).toEqual({ exitCode: 0 })
    expect((await box.info()).status).toBe("running")
  })

  it("reports exit codes", async () => {
    for (const code of [0, 1, 3, 255]) {
      const execution = await box.exec("sh", ["-c", `exit ${code}`])
      expect((await execution.wait()).exitCode).toBe(code)
    }
  })

  it("keeps stdout and stderr apart", async () => {
    const execution = await box.exec("sh", ["-c", "echo out; echo err >&2; echo out2"])
    const [out, err] = await Promise.all([execution.stdout().text(), execution.stderr().text()])
    expect(out).toBe("out\nout2\n")
    expect(err).toBe("err\n")
  })

  it("streams lines as they are produced", async () => {
    const start = Date.now()
    const execution = await box.exec("sh", ["-c", "for i in 1 2 3 4; do echo line$i; sleep 0.5; done"])
    const seen: Array<[string, number]> = []
    for await (const line of execution.stdout()) seen.push([line, Date.now() - start])
    const finished = Date.now() - start
    await execution.wait()
    expect(seen.map(([l]) => l)).toEqual(["line1", "line2", "line3", "line4"])
    // The first line arrives long before the command ends (~2 s).
    expect(seen[0]![1]).toBeLessThan(finished - 1200)
  })

  it("round-trips stdin", async () => {
    const execution = await box.exec("cat")
    const stdin = execution.stdin()
    const payload = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join("\n") + "\n"
    const output = execution.stdout().text()
    await stdin.write(payload)
    await stdin.close()
    expect(await output).toBe(payload)
    expect((await execution.wait()).exitCode).toBe(0)
  })

  it("kills the whole process group", async () => {
    const execution = await box.exec("sh", ["-c", "sleep 300 & sleep 300; echo never"])
    await execution.kill()
    const result = await execution.wait()
    expect(result).toEqual({ exitCode: 137, signal: "SIGKILL" })
    const check = await box.exec("sh", ["-c", "ps -o comm | grep -c '^sleep' || true"])
    expect((await check.stdout().text()).trim()).toBe("0")
  })

  it("times out: kills the command and raises TimeoutError", async () => {
    const execution = await box.exec("sleep", ["30"], { timeoutMs: 500 })
    const started = Date.now()
    const error = await execution.wait().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TimeoutError)
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it("applies box and exec env and working directory", async () => {
    const execution = await box.exec("sh", ["-c", "echo $BOX_LEVEL $EXEC_LEVEL; pwd"], { env: [["EXEC_LEVEL", "exec"]] })
    expect(await execution.stdout().text()).toBe("box exec\n/tmp\n")
    const other = await box.exec("pwd", [], { workingDir: "/etc", env: { BOX_LEVEL: "overridden" } })
    expect(await other.stdout().text()).toBe("/etc\n")
    const env = await box.exec("sh", ["-c", "echo $BOX_LEVEL"], { env: { BOX_LEVEL: "overridden" } })
    expect(await env.stdout().text()).toBe("overridden\n")
  })

  it("streams 100 MB of output", async () => {
    const execution = await box.exec("dd", ["if=/dev/zero", "bs=1M", "count=100"])
    let bytes = 0
    for await (const chunk of execution.stdout().bytes()) bytes += chunk.length
    expect(bytes).toBe(100 * 1024 * 1024)
    expect((await execution.wait()).exitCode).toBe(0)
  }, 300_000)

  it("runs two commands at once", async () => {
    const a = await box.exec("sh", ["-c", "sleep 1; echo a"])
    const b = await box.exec("sh", ["-c", "echo b"])
    const [outA, outB] = await Promise.all([a.stdout().text(), b.stdout().text()])
    expect([outA, outB]).toEqual(["a\n", "b\n"])
    expect((await a.wait()).exitCode + (await b.wait()).exitCode).toBe(0)
  })

  it("fails with ExecError naming a command that does not exist: exitCode 127, the reason in stderr, the command", async () => {
    const error = await box.exec("no-such-command", ["arg"]).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ExecError)
    expect(String(error)).toMatch(/no-such-command/)
    expect(error).toMatchObject({ exitCode: 127, command: ["no-such-command", "arg"] })
    expect((error as ExecError).stderr).toMatch(/not found/)
  })

  it("a file that is not executable: ExecError with exitCode 126", async () => {
    const error = await box.exec("/etc/passwd").catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ExecError)
    expect(error).toMatchObject({ exitCode: 126, command: ["/etc/passwd"] })
    expect((error as ExecError).stderr).toMatch(/permission denied|not an executable/i)
  })

  it("does not block a command whose output nobody reads", async () => {
    const execution = await box.exec("dd", ["if=/dev/zero", "bs=1M", "count=2"])
    expect((await execution.wait()).exitCode).toBe(0)
  })
})

describe("flow control", () => {
  const runtime = new Boxlite({ homeDir: tempHome() })
  afterAll(() => runtime.close())

  it("a reader that does not read stalls the writer instead of buffering without bound", async () => {
    const box = await runtime.create({ image: BUSYBOX })
    const writer = await box.exec("sh", ["-c", "dd if=/dev/zero bs=1M count=64 2>/dev/null; echo done > /tmp/writer-done"])
    const stdout = writer.stdout().bytes()[Symbol.asyncIterator]()
    await stdout.next()
    await new Promise((resolve) => setTimeout(resolve, 3000))
    // 64 MiB cannot fit in the window: the writer must still be blocked in write().
    const probe = await box.exec("sh", ["-c", "test -e /tmp/writer-done && echo finished || echo blocked"])
    expect((await probe.stdout().text()).trim()).toBe("blocked")
    let bytes = 0
    for (let r = await stdout.next(); !r.done; r = await stdout.next()) bytes += r.value.length
    expect((await writer.wait()).exitCode).toBe(0)
    expect(bytes).toBeGreaterThan(60 * 1024 * 1024)
    await box.remove()
  })
})

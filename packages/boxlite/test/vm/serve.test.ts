// `boxlite serve` as a user runs it (node packages/boxlite/dist/bin.js serve, a process of its
// own), driven over its unix socket and over TCP with a token, against real boxes. Every
// answer is checked against the committed OpenAPI document (packages/server/test/client.ts).
// One busybox box is shared by the tests of the unix server.
import { Boxlite } from "boxlite"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as tar from "tar"
import { request } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { client } from "../../../server/test/client.js"
import { boxDirs, BUSYBOX, PYTHON, qemuProcessesUnder, tempHome } from "./helpers.js"

const bin = fileURLToPath(new URL("../../dist/bin.js", import.meta.url))
const home = tempHome()
const tcpHome = tempHome()
const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-serve-"))
const servers: Array<ChildProcess> = []

/** `boxlite serve ...args` until it says where it serves (resolves with its url), or until it exits (rejects with its stderr). */
const serve = (args: ReadonlyArray<string>): Promise<{ process: ChildProcess; url: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "serve", ...args], { env: { ...process.env, BOXLITE_LOG: "" }, stdio: ["ignore", "ignore", "pipe"] })
    servers.push(child)
    let stderr = ""
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString()
      const m = /serving \S+ on (\S+)/.exec(stderr)
      if (m) resolve({ process: child, url: m[1]! })
    })
    child.once("exit", (code) => reject(Object.assign(new Error(`boxlite serve exited ${code}: ${stderr}`), { code, stderr })))
  })

const stopServer = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
  })

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

/** NDJSON lines of a streamed response, one at a time, as they arrive. */
const lineReader = (body: AsyncIterable<Buffer>) => {
  const iterator = body[Symbol.asyncIterator]()
  let pending = ""
  return async (): Promise<any> => {
    while (!pending.includes("\n")) {
      const { done, value } = await iterator.next()
      if (done) return undefined
      pending += value.toString()
    }
    const line = pending.slice(0, pending.indexOf("\n"))
    pending = pending.slice(pending.indexOf("\n") + 1)
    return JSON.parse(line)
  }
}

const decode = (lines: Array<any>, stream: string) => Buffer.concat(lines.filter((l) => l?.stream === stream).map((l) => Buffer.from(l.data, "base64"))).toString()

let api: ReturnType<typeof client>
let server: ChildProcess
let box: string

beforeAll(async () => {
  const started = await serve(["--home", home])
  server = started.process
  api = client(started.url)
  const created = await api.post("/v1/boxes", { options: { image: BUSYBOX, name: "served" } })
  expect(created.status, JSON.stringify(created.json)).toBe(201)
  box = created.json.id
})

afterAll(async () => {
  await api?.close()
  for (const child of servers) await stopServer(child)
  // The server's boxes are detached: a failed test must not leave them running.
  for (const dir of [home, tcpHome]) {
    const runtime = new Boxlite({ homeDir: dir })
    for (const b of await runtime.list()) await runtime.remove(b.id, { force: true })
    await runtime.close()
    expect(qemuProcessesUnder(dir)).toEqual([])
    expect(boxDirs(dir)).toEqual([])
    fs.rmSync(dir, { recursive: true, force: true })
  }
  fs.rmSync(work, { recursive: true, force: true })
})

describe("boxlite serve on its unix socket", () => {
  it("listens on <home>/boxlite.sock (0600) and answers info", async () => {
    expect(api.origin).toBe("http://localhost")
    expect(fs.statSync(path.join(home, "boxlite.sock")).mode & 0o777).toBe(0o600)
    const info = await api.get("/v1/info")
    expect(info.json).toMatchObject({ homeDir: home, driver: "qemu" })
  })

  it("exec: live stdout while the command waits for stdin, then stdin, stderr and the exit code", async () => {
    const exec = await api.post(`/v1/boxes/${box}/executions`, { command: "sh", args: ["-c", "echo first; read x; echo got $x; echo oops >&2; exit 7"] })
    expect(exec.status).toBe(201)
    const base = `/v1/boxes/${box}/executions/${exec.json.id}`
    const res = await request(`${api.origin}${base}/output`, { dispatcher: api.dispatcher })
    expect(res.headers["content-type"]).toMatch(/ndjson/)
    const next = lineReader(res.body)
    // Read while the command is blocked on its input: the output is live.
    expect(await next()).toEqual({ stream: "stdout", data: Buffer.from("first\n").toString("base64") })
    expect((await api.send("POST", `${base}/stdin`, { body: "hello\n", headers: { "content-type": "application/octet-stream" } })).status).toBe(204)
    expect((await api.post(`${base}/stdin/close`)).status).toBe(204)
    const rest: Array<any> = []
    for (let line = await next(); line !== undefined; line = await next()) rest.push(line)
    expect(decode(rest, "stdout")).toBe("got hello\n")
    expect(decode(rest, "stderr")).toBe("oops\n")
    expect(rest.at(-1)).toEqual({ exit: { exitCode: 7 } })
    expect((await api.get(`${base}/wait`)).json).toEqual({ exitCode: 7 })
  })

  it("a client that disconnects mid-stream leaves the execution and the box healthy: the next reader gets the rest, the next exec runs", async () => {
    const exec = await api.post(`/v1/boxes/${box}/executions`, { command: "sh", args: ["-c", "i=0; while [ $i -lt 40 ]; do echo line$i; i=$((i+1)); sleep 0.05; done"] })
    const base = `/v1/boxes/${box}/executions/${exec.json.id}`
    const controller = new AbortController()
    const res = await request(`${api.origin}${base}/output`, { dispatcher: api.dispatcher, signal: controller.signal })
    const next = lineReader(res.body)
    expect((await next()).stream).toBe("stdout")
    controller.abort()
    await new Promise((r) => setTimeout(r, 300))
    const rest = (await api.get(`${base}/output`)).lines
    expect(decode(rest, "stdout")).toContain("line39\n")
    expect(rest.at(-1)).toEqual({ exit: { exitCode: 0 } })
    expect((await api.run(box, "echo", ["still", "here"])).stdout).toBe("still here\n")
    expect((await api.get(`/v1/boxes/${box}`)).json.status).toBe("running")
  })

  it("many clients at once: concurrent executions on one box, each with its own output", async () => {
    const clients = Array.from({ length: 4 }, () => client(`unix://${path.join(home, "boxlite.sock")}`))
    try {
      const runs = await Promise.all(clients.map((c, i) => c.run(box, "sh", ["-c", `for j in 1 2 3; do echo client${i}-$j; sleep 0.1; done; exit ${i}`])))
      runs.forEach((r, i) => {
        expect(r.stdout).toBe(`client${i}-1\nclient${i}-2\nclient${i}-3\n`)
        expect(r.last).toEqual({ exit: { exitCode: i } })
      })
    } finally {
      await Promise.all(clients.map((c) => c.close()))
    }
  })

  it("files in and out as tar streams", async () => {
    const src = path.join(work, "src")
    fs.mkdirSync(path.join(src, "project", "sub"), { recursive: true })
    fs.writeFileSync(path.join(src, "project", "a.txt"), "alpha\n")
    fs.writeFileSync(path.join(src, "project", "sub", "run.sh"), "echo beta\n", { mode: 0o755 })
    const archive = path.join(work, "in.tar")
    await tar.c({ cwd: src, file: archive, portable: true }, ["project"])
    const put = await api.send("PUT", `/v1/boxes/${box}/files?path=/root`, { body: fs.readFileSync(archive), headers: { "content-type": "application/x-tar" } })
    expect(put.status, JSON.stringify(put.json)).toBe(204)
    expect((await api.run(box, "sh", ["-c", "cat /root/project/a.txt; /root/project/sub/run.sh"])).stdout).toBe("alpha\nbeta\n")

    await api.run(box, "sh", ["-c", "echo made in the box > /root/project/out.txt"])
    const got = await api.send("GET", `/v1/boxes/${box}/files?path=/root/project`)
    expect(got.status).toBe(200)
    expect(got.contentType).toBe("application/x-tar")
    const dst = path.join(work, "dst")
    fs.mkdirSync(dst)
    fs.writeFileSync(path.join(work, "out.tar"), got.body)
    await tar.x({ cwd: dst, file: path.join(work, "out.tar") })
    expect(fs.readFileSync(path.join(dst, "project", "out.txt"), "utf8")).toBe("made in the box\n")
    expect(fs.statSync(path.join(dst, "project", "sub", "run.sh")).mode & 0o777).toBe(0o755)
    const missing = await api.send("GET", `/v1/boxes/${box}/files?path=/root/nothing`)
    expect(missing.status).toBe(404)
    expect(missing.json.error).toMatchObject({ _tag: "PathNotFound", side: "guest" })
  })

  it("bad requests get typed JSON errors and leave no box or QEMU behind", async () => {
    const dirs = boxDirs(home)
    const qemus = qemuProcessesUnder(home).length
    const malformed = await api.send("POST", "/v1/boxes", { body: "{\"options\": ", headers: { "content-type": "application/json" } })
    expect([malformed.status, malformed.json.error._tag]).toEqual([400, "BadRequest"])
    const badOption = await api.post("/v1/boxes", { options: { image: BUSYBOX, memoryMib: 1 } })
    expect([badOption.status, badOption.json.error._tag, badOption.json.error.field]).toEqual([400, "InvalidOptions", "memoryMib"])
    const noImage = await api.post("/v1/boxes", { options: { image: `oci:${work}/no-such-layout:latest` } })
    expect(noImage.status).toBeGreaterThanOrEqual(400)
    expect(noImage.json.error._tag).toMatch(/Image|InvalidOptions/)
    const unknown = await api.post("/v1/boxes/no-such-box/executions", { command: "true" })
    expect([unknown.status, unknown.json.error._tag]).toEqual([404, "BoxNotFound"])
    const oversized = await api.send("POST", `/v1/boxes/${box}/executions`, { body: JSON.stringify({ command: "echo", args: ["x".repeat(1024 * 1024 + 1)] }), headers: { "content-type": "application/json" } })
    expect([oversized.status, oversized.json.error._tag]).toEqual([413, "PayloadTooLarge"])
    const noExec = await api.get(`/v1/boxes/${box}/executions/01NOSUCHEXECUTION/wait`)
    expect([noExec.status, noExec.json.error._tag]).toEqual([404, "ExecutionNotFound"])
    expect(boxDirs(home)).toEqual(dirs)
    expect(qemuProcessesUnder(home).length).toBe(qemus)
    expect((await api.run(box, "true")).last).toEqual({ exit: { exitCode: 0 } })
  })

  it("a CodeBox through the API: kind picks the box, actions call its methods", async () => {
    const created = await api.post("/v1/boxes", { kind: "code", options: { image: PYTHON } })
    expect(created.status, JSON.stringify(created.json)).toBe(201)
    const id = created.json.id
    const ran = await api.post(`/v1/boxes/${id}/actions/run`, { args: ["print(6 * 7)"] })
    expect(ran.json).toEqual({ result: "42\n" })
    const cell = await api.post(`/v1/boxes/${id}/actions/runCode`, { args: ["x = 20\nx + 1"] })
    expect(cell.json.result).toMatchObject({ text: "21" })
    const failed = await api.post(`/v1/boxes/${id}/actions/run`, { args: ["raise SystemExit(3)"] })
    expect([failed.status, failed.json.error._tag, failed.json.error.exitCode]).toEqual([500, "ExecError", 3])
    expect((await api.post(`/v1/boxes/${id}/actions/screenshot`, { args: [] })).json.error.field).toBe("method")
    expect((await api.delete(`/v1/boxes/${id}`)).status).toBe(204)
    expect(boxDirs(home)).not.toContain(id)
  })

  it("a ComputerBox through the API: screenshot, mouse; a browser kind's methods are allow-listed too", { timeout: 300_000 }, async () => {
    const created = await api.post("/v1/boxes", { kind: "computer", options: { width: 800, height: 600 } })
    expect(created.status, JSON.stringify(created.json)).toBe(201)
    const id = created.json.id
    try {
      expect((await api.post(`/v1/boxes/${id}/actions/waitUntilReady`, { args: [240_000] })).json).toEqual({ result: null })
      const shot = (await api.post(`/v1/boxes/${id}/actions/screenshot`)).json.result
      expect(shot).toMatchObject({ width: 800, height: 600, format: "png" })
      expect(Buffer.from(shot.data, "base64").subarray(1, 4).toString()).toBe("PNG")
      await api.post(`/v1/boxes/${id}/actions/mouseMove`, { args: [123, 45] })
      expect((await api.post(`/v1/boxes/${id}/actions/cursorPosition`)).json).toEqual({ result: [123, 45] })
      const offScreen = await api.post(`/v1/boxes/${id}/actions/mouseMove`, { args: [5000, 5] })
      expect([offScreen.status, offScreen.json.error._tag]).toEqual([400, "InvalidOptions"])
      expect((await api.post(`/v1/boxes/${id}/actions/viewerUrl`)).json.result).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/vnc\.html/)
      expect((await api.post(`/v1/boxes/${id}/actions/endpoint`)).json.error.field).toBe("method")
    } finally {
      expect((await api.delete(`/v1/boxes/${id}`)).status).toBe(204)
    }
    expect(boxDirs(home)).not.toContain(id)
  })

  it("a box of the server is an ordinary box of the home: new Boxlite({ homeDir }) sees and uses it", async () => {
    const runtime = new Boxlite({ homeDir: home })
    try {
      expect((await runtime.list()).map((b) => b.id)).toContain(box)
      const same = await runtime.get("served")
      const execution = await same.exec("echo", ["from the library"])
      expect(await execution.stdout().text()).toBe("from the library\n")
    } finally {
      await runtime.close()
    }
    expect((await api.get(`/v1/boxes/${box}`)).json.status).toBe("running")
  })

  it("a second server on the same home is refused (on the socket or on TCP), naming the first", async () => {
    const tokenFile = path.join(work, "second-token")
    fs.writeFileSync(tokenFile, "second-server-token\n", { mode: 0o600 })
    for (const args of [["--home", home], ["--home", home, "--listen", `127.0.0.1:${await freePort()}`, "--token-file", tokenFile]]) {
      const refused = await serve(args).then(() => undefined, (e: { code: number; stderr: string }) => e)
      expect(refused?.code).toBe(125)
      expect(refused?.stderr).toMatch(/already served by pid \d+/)
    }
    expect((await api.get("/v1/boxes")).status).toBe(200)
  })

  it("the server's shutdown leaves its boxes running", async () => {
    await stopServer(server)
    expect(fs.existsSync(path.join(home, "boxlite.sock"))).toBe(false)
    const runtime = new Boxlite({ homeDir: home })
    try {
      expect((await (await runtime.get(box)).info()).status).toBe("running")
      await runtime.remove(box, { force: true })
    } finally {
      await runtime.close()
    }
    expect(qemuProcessesUnder(home)).toEqual([])
    expect(boxDirs(home)).toEqual([])
  })
})

describe("boxlite serve on 127.0.0.1 with a token", () => {
  it("refuses TCP without a token file; with one, every request needs the bearer token", async () => {
    const port = await freePort()
    const noToken = await serve(["--home", tcpHome, "--listen", `127.0.0.1:${port}`]).then(() => undefined, (e: { code: number; stderr: string }) => e)
    expect(noToken?.code).toBe(125)
    expect(noToken?.stderr).toMatch(/token/)
    const tokenFile = path.join(work, "token")
    fs.writeFileSync(tokenFile, "tcp-test-token-1234\n", { mode: 0o600 })
    const { process: tcp, url } = await serve(["--home", tcpHome, "--listen", `127.0.0.1:${port}`, "--token-file", tokenFile])
    expect(url).toBe(`http://127.0.0.1:${port}`)
    for (const token of [undefined, "tcp-test-token-123", "wrong"]) {
      const other = client(url, token)
      const refused = await other.post("/v1/boxes", { options: { image: BUSYBOX } })
      expect([refused.status, refused.json.error._tag]).toEqual([401, "Unauthorized"])
      await other.close()
    }
    expect(boxDirs(tcpHome)).toEqual([])
    const authed = client(url, "tcp-test-token-1234")
    try {
      const created = await authed.post("/v1/boxes", { options: { image: BUSYBOX } })
      expect(created.status).toBe(201)
      const out = await authed.run(created.json.id, "sh", ["-c", "echo over tcp; exit 3"])
      expect([out.stdout, out.last]).toEqual(["over tcp\n", { exit: { exitCode: 3 } }])
      expect((await authed.delete(`/v1/boxes/${created.json.id}?force=true`)).status).toBe(204)
    } finally {
      await authed.close()
      await stopServer(tcp)
    }
    expect(qemuProcessesUnder(tcpHome)).toEqual([])
    expect(boxDirs(tcpHome)).toEqual([])
  })
})

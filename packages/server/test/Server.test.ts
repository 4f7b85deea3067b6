/**
 * The API on the fake driver (real runtime, real supervisors, no VM), through a real server on
 * a unix socket and on TCP with a token. Every answer is checked against the committed OpenAPI
 * document (test/client.ts), every documented operation must have been answered, and the
 * committed document must be the one the Schemas derive.
 */
import { GuestArtifacts, Hypervisor, SupervisorEntry } from "@boxlite/core"
import { Boxlite } from "@boxlite/core/promise"
import { Effect, Layer } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { FAKE_DRIVER_NAME, make as fake, writeFakeGuest } from "@boxlite/driver-testkit"
import { tinyImage } from "../../driver-testkit/test/image.js"
import { openApiDocument, parseListen, type RunningServer, start } from "../src/index.js"
import { answered, client, document } from "./client.js"

const SUPERVISOR = createRequire(import.meta.url).resolve("@boxlite/core/supervisor-program")

let work: string
let home: string
let image: string
let runtime: Boxlite
let server: RunningServer
let api: ReturnType<typeof client>

const platform = (guest: ReturnType<typeof writeFakeGuest>) =>
  Layer.mergeAll(
    Layer.succeed(Hypervisor, fake()),
    Layer.succeed(GuestArtifacts, GuestArtifacts.of({ files: Effect.succeed(guest) })),
    Layer.succeed(SupervisorEntry, SupervisorEntry.of({ module: SUPERVISOR }))
  )

const processesNaming = (text: string): Array<string> =>
  execFileSync("ps", ["-axo", "pid=,args="]).toString().split("\n").filter((line) => line.includes(text) && !line.includes("ps -axo"))

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

let guest: ReturnType<typeof writeFakeGuest>

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-srv-"))
  home = path.join(work, "home")
  image = await tinyImage(path.join(work, "image"))
  guest = writeFakeGuest(path.join(work, "guest"))
  runtime = new Boxlite({ homeDir: home }, platform(guest))
  server = await start({ runtime, homeDir: home, listen: parseListen(undefined, home), version: "test" })
  api = client(server.url)
})

afterAll(async () => {
  await api?.close()
  await server?.close()
  await runtime?.close()
  for (const line of processesNaming(work)) process.kill(Number(line.trim().split(" ")[0]), "SIGKILL")
  fs.rmSync(work, { recursive: true, force: true })
})

describe("REST API v1 on the fake driver", () => {
  it("the committed OpenAPI document is the one the Schemas derive (npm run openapi -w @boxlite/server)", () => {
    expect(document).toEqual(JSON.parse(JSON.stringify(openApiDocument())))
    const unsummarized = Object.entries(document.paths as Record<string, Record<string, { summary?: string }>>).flatMap(([p, item]) => Object.entries(item).filter(([, op]) => !op.summary).map(([m]) => `${m} ${p}`))
    expect(unsummarized).toEqual([])
  })

  it("listens on <home>/boxlite.sock, owner-only", () => {
    expect(server.url).toBe(`unix://${path.join(home, "boxlite.sock")}`)
    expect(fs.statSync(path.join(home, "boxlite.sock")).mode & 0o777).toBe(0o600)
  })

  it("info and metrics", async () => {
    const info = await api.get("/v1/info")
    expect(info.status).toBe(200)
    expect(info.json).toMatchObject({ version: "test", homeDir: home, driver: FAKE_DRIVER_NAME })
    expect((await api.get("/v1/metrics")).json).toMatchObject({ boxesCreated: expect.any(Number) })
    // The document is served too, as the Schemas derive it.
    const served = await api.send("GET", "/v1/openapi.json", { check: false })
    expect(served.json).toEqual(document)
  })

  it("a box: create, get by id and name, list, exec with stdout, stderr and exit code, stop, remove", async () => {
    const created = await api.post("/v1/boxes", { options: { image, name: "srv-one", autoRemove: false } })
    expect(created.status).toBe(201)
    expect(created.json).toMatchObject({ name: "srv-one", status: "configured", autoRemove: false })
    const id = created.json.id as string
    expect((await api.get("/v1/boxes/srv-one")).json.id).toBe(id)
    expect((await api.get("/v1/boxes")).json.map((b: { id: string }) => b.id)).toContain(id)

    const out = await api.run("srv-one", "echo", ["hello", "server"])
    expect(out.stdout).toBe("hello server\n")
    expect(out.last).toEqual({ exit: { exitCode: 0 } })
    expect((await api.run(id, "echo-stderr", ["oops"])).stderr).toBe("oops\n")
    const failing = await api.run(id, "exit", ["3"])
    expect(failing.last).toEqual({ exit: { exitCode: 3 } })
    // Read to its end already: a later reader gets its outcome again.
    expect((await api.get(`/v1/boxes/${id}/executions/${failing.id}/output`)).lines).toEqual([{ exit: { exitCode: 3 } }])
    // Waited after its output was read: gone from the registry afterwards.
    expect((await api.get(`/v1/boxes/${id}/executions/${failing.id}/wait`)).json).toEqual({ exitCode: 3 })
    expect((await api.get(`/v1/boxes/${id}/executions/${failing.id}/wait`)).json.error._tag).toBe("ExecutionNotFound")

    expect((await api.get(`/v1/boxes/${id}`)).json.status).toBe("running")
    const metrics = await api.get(`/v1/boxes/${id}/metrics`)
    expect(metrics.status).toBe(200)
    // Running: removing needs force.
    const refused = await api.delete(`/v1/boxes/${id}`)
    expect(refused.status).toBe(409)
    expect(refused.json.error._tag).toBe("BoxStateError")
    const stopped = await api.post(`/v1/boxes/${id}/stop`)
    expect(stopped.json.status).toBe("stopped")
    const started = await api.post(`/v1/boxes/${id}/start`)
    expect(started.json.status).toBe("running")
    expect((await api.delete(`/v1/boxes/${id}?force=true`)).status).toBe(204)
    expect((await api.get(`/v1/boxes/${id}`)).status).toBe(404)
    expect(fs.readdirSync(path.join(home, "boxes"))).not.toContain(id)
  })

  it("stdin, a reader that disconnects and comes back, a second reader refused, signal and wait", async () => {
    const box = (await api.post("/v1/boxes", { options: { image } })).json.id as string
    const exec = (await api.post(`/v1/boxes/${box}/executions`, { command: "cat" })).json.id as string
    const base = `/v1/boxes/${box}/executions/${exec}`
    // As curl -d and Python's urllib label it: a form; read as bytes all the same.
    expect((await api.send("POST", `${base}/stdin`, { body: "first line\n", headers: { "content-type": "application/x-www-form-urlencoded" } })).status).toBe(204)

    // A reader that reads one line and drops the connection.
    const controller = new AbortController()
    const { request } = await import("undici")
    const res = await request(`${api.origin}${base}/output`, { dispatcher: api.dispatcher, signal: controller.signal })
    const first = await new Promise<string>((resolve) => res.body.once("data", (d: Buffer) => resolve(d.toString())))
    expect(JSON.parse(first.split("\n")[0]!)).toEqual({ stream: "stdout", data: Buffer.from("first line\n").toString("base64") })
    controller.abort()
    await new Promise((r) => setTimeout(r, 200))

    // Output written meanwhile is kept for the next reader, who is alone.
    await api.send("POST", `${base}/stdin`, { body: "second line\n", headers: { "content-type": "application/octet-stream" } })
    const reader = request(`${api.origin}${base}/output`, { dispatcher: api.dispatcher })
    await new Promise((r) => setTimeout(r, 200))
    const busy = await api.get(`${base}/output`)
    expect(busy.status).toBe(409)
    expect(busy.json.error._tag).toBe("ExecutionBusy")
    expect((await api.post(`${base}/stdin/close`)).status).toBe(204)
    const rest = (await (await reader).body.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l))
    expect(Buffer.concat(rest.filter((l) => l.stream).map((l) => Buffer.from(l.data, "base64"))).toString()).toBe("second line\n")
    expect(rest.at(-1)).toEqual({ exit: { exitCode: 0 } })

    // A signal ends a sleeping command; wait long-polls until it does.
    const sleeper = (await api.post(`/v1/boxes/${box}/executions`, { command: "sleep", args: ["60000"] })).json.id as string
    const waiting = api.get(`/v1/boxes/${box}/executions/${sleeper}/wait`)
    expect((await api.post(`/v1/boxes/${box}/executions/${sleeper}/signal`, { signal: "SIGKILL" })).status).toBe(204)
    expect((await waiting).json).toEqual({ exitCode: 137, signal: "SIGKILL" })
    expect((await api.post(`/v1/boxes/${box}/executions/${sleeper}/signal`, { signal: "SIGNOPE" })).json.error).toMatchObject({ _tag: "InvalidOptions", field: "signal" })
    // Resize without a terminal: the runtime's BoxStateError.
    expect((await api.post(`/v1/boxes/${box}/executions/${sleeper}/resize`, { cols: 80, rows: 24 })).status).toBe(409)

    // A timeout is the exit line's error, and 504 from wait.
    const slow = (await api.post(`/v1/boxes/${box}/executions`, { command: "sleep", args: ["60000"], timeoutMs: 300 })).json.id as string
    const lines = (await api.get(`/v1/boxes/${box}/executions/${slow}/output`)).lines
    expect(lines.at(-1).error._tag).toBe("TimeoutError")
    const timedOut = await api.get(`/v1/boxes/${box}/executions/${slow}/wait`)
    expect(timedOut.status).toBe(504)
    expect(timedOut.json.error).toMatchObject({ _tag: "TimeoutError", timeoutMs: 300 })
    expect((await api.delete(`/v1/boxes/${box}?force=true`)).status).toBe(204)
  })

  it("unread output is bounded: the command waits for a reader, and the reader gets every byte in order", async () => {
    const box = (await api.post("/v1/boxes", { options: { image } })).json.id as string
    const exec = (await api.post(`/v1/boxes/${box}/executions`, { command: "cat" })).json.id as string
    const base = `/v1/boxes/${box}/executions/${exec}`
    const input = Buffer.alloc(24 * 1024 * 1024)
    for (let i = 0; i < input.length; i += 4) input.writeUInt32LE(i, i)
    let fed = false
    const feeding = api.send("POST", `${base}/stdin`, { body: input, headers: { "content-type": "application/octet-stream" } }).then((r) => {
      fed = true
      return r
    })
    // Nobody reads: past the server's bound (4 MiB) and the agent's windows, cat cannot write, so it stops reading its input.
    await new Promise((r) => setTimeout(r, 1500))
    expect(fed).toBe(false)
    const reading = api.get(`${base}/output`)
    expect((await feeding).status).toBe(204)
    await api.post(`${base}/stdin/close`)
    const lines = (await reading).lines
    expect(lines.at(-1)).toEqual({ exit: { exitCode: 0 } })
    expect(Buffer.concat(lines.filter((l) => l.stream === "stdout").map((l) => Buffer.from(l.data, "base64"))).equals(input)).toBe(true)
    expect((await api.delete(`/v1/boxes/${box}?force=true`)).status).toBe(204)
  })

  it("bad requests: typed JSON errors, and nothing left behind", async () => {
    const before = fs.existsSync(path.join(home, "boxes")) ? fs.readdirSync(path.join(home, "boxes")).length : 0
    const malformed = await api.send("POST", "/v1/boxes", { body: "{not json", headers: { "content-type": "application/json" } })
    expect(malformed.status).toBe(400)
    expect(malformed.json.error._tag).toBe("BadRequest")
    const wrongShape = await api.post("/v1/boxes", { kind: "spaceship" })
    expect(wrongShape.status).toBe(400)
    expect(wrongShape.json.error._tag).toBe("BadRequest")
    const badOption = await api.post("/v1/boxes", { options: { image, cpus: -1 } })
    expect(badOption.status).toBe(400)
    expect(badOption.json.error).toMatchObject({ _tag: "InvalidOptions", field: "cpus" })
    const unknownKey = await api.post("/v1/boxes", { options: { image, memory_mib: 512 } })
    expect(unknownKey.json.error._tag).toBe("InvalidOptions")
    const huge = await api.send("POST", "/v1/boxes", { body: JSON.stringify({ options: { image, env: { BIG: "x".repeat(2 * 1024 * 1024) } } }), headers: { "content-type": "application/json" } })
    expect(huge.status).toBe(413)
    expect(huge.json.error._tag).toBe("PayloadTooLarge")
    const missing = await api.get("/v1/boxes/no-such-box")
    expect(missing.status).toBe(404)
    expect(missing.json.error).toMatchObject({ _tag: "BoxNotFound", idOrName: "no-such-box" })
    expect((await api.post("/v1/boxes/no-such-box/executions", { command: "true" })).json.error._tag).toBe("BoxNotFound")
    const noRoute = await api.send("GET", "/v2/nothing", { check: false })
    expect(noRoute.status).toBe(404)
    expect(noRoute.json.error._tag).toBe("NotFound")
    const noAction = await api.post("/v1/boxes/no-such-box/actions/run", { args: [] })
    expect(noAction.status).toBe(404)
    expect((await api.get("/v1/boxes")).json.length).toBe(0)
    expect(fs.existsSync(path.join(home, "boxes")) ? fs.readdirSync(path.join(home, "boxes")).length : 0).toBe(before)
  })

  it("actions: allow-listed per kind", async () => {
    const box = (await api.post("/v1/boxes", { options: { image } })).json.id as string
    const refused = await api.post(`/v1/boxes/${box}/actions/screenshot`, { args: [] })
    expect(refused.status).toBe(400)
    expect(refused.json.error).toMatchObject({ _tag: "InvalidOptions", field: "method" })
    const simple = await api.post("/v1/boxes", { kind: "simple", options: { image } })
    expect(simple.status).toBe(201)
    expect(simple.json.status).toBe("running")
    expect((await api.post(`/v1/boxes/${simple.json.id}/actions/constructor`, {})).status).toBe(400)
    expect((await api.delete(`/v1/boxes/${simple.json.id}`)).status).toBe(204)
    expect((await api.delete(`/v1/boxes/${box}?force=true`)).status).toBe(204)
  })

  it("images and snapshots: list, and typed errors for missing ones", async () => {
    const images = await api.get("/v1/images")
    expect(images.status).toBe(200)
    const pulled = await api.post("/v1/images/pull", { reference: "127.0.0.1:1/none/such:latest" })
    expect(pulled.status).toBe(200)
    expect(pulled.lines.at(-1).error._tag).toMatch(/Registry|Image/)
    expect((await api.delete(`/v1/images/${encodeURIComponent("no.such/image:1")}`)).status).toBeGreaterThanOrEqual(400)
    expect((await api.get("/v1/snapshots")).json).toEqual([])
    // A JSON body labelled as a form (curl -d) is read as JSON.
    const created = await api.send("POST", "/v1/boxes", { body: JSON.stringify({ options: { image } }), headers: { "content-type": "application/x-www-form-urlencoded" } })
    expect(created.status).toBe(201)
    const box = created.json.id as string
    await api.post(`/v1/boxes/${box}/start`)
    // No body where every field is optional: an unnamed snapshot.
    const unnamed = await api.send("POST", `/v1/boxes/${box}/snapshots`)
    expect(unnamed.status, JSON.stringify(unnamed.json)).toBe(201)
    expect(unnamed.json.name).toBeUndefined()
    expect((await api.delete(`/v1/snapshots/${unnamed.json.id}`)).status).toBe(204)
    const snap = await api.post(`/v1/boxes/${box}/snapshots`, { name: "srv-snap" })
    expect(snap.status).toBe(201)
    expect(snap.json.name).toBe("srv-snap")
    const clone = await api.post(`/v1/snapshots/srv-snap/clone`, { options: { name: "srv-clone" } })
    expect(clone.status).toBe(201)
    expect(clone.json).toMatchObject({ name: "srv-clone", snapshot: snap.json.id })
    expect((await api.delete(`/v1/snapshots/srv-snap`)).status).toBe(409)
    expect((await api.delete(`/v1/boxes/srv-clone?force=true`)).status).toBe(204)
    expect((await api.delete(`/v1/snapshots/srv-snap`)).status).toBe(204)
    expect((await api.delete(`/v1/snapshots/srv-snap`)).status).toBe(404)
    expect((await api.delete(`/v1/boxes/${box}?force=true`)).status).toBe(204)
  })

  it("files: a tar that is not one, or with names outside its directory, is a BadRequest; a missing box a BoxNotFound", async () => {
    const box = (await api.post("/v1/boxes", { options: { image } })).json.id as string
    const bad = await api.send("PUT", `/v1/boxes/${box}/files?path=/root`, { body: "not a tar archive at all".repeat(40), headers: { "content-type": "application/x-tar" } })
    expect(bad.status).toBe(400)
    expect((await api.send("GET", `/v1/boxes/nobox/files?path=/etc/hello`)).status).toBe(404)
    // Names that would land outside the staging directory: refused before anything reaches the box or the host.
    const marker = `bl-escape-${process.pid}-${Date.now()}`
    for (const name of [`../${marker}`, `../../${marker}`, `/tmp/${marker}`]) {
      const evil = execFileSync("python3", ["-c", `import io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"planted"
    info = tarfile.TarInfo(sys.argv[1]); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
sys.stdout.buffer.write(buf.getvalue())`, name])
      const refused = await api.send("PUT", `/v1/boxes/${box}/files?path=/root`, { body: evil, headers: { "content-type": "application/x-tar" } })
      expect(refused.status, name).toBe(400)
      expect(refused.json.error._tag).toBe("BadRequest")
    }
    expect(fs.readdirSync(os.tmpdir()).filter((f) => f.includes(marker))).toEqual([])
    // The fake agent has no copies: the runtime's error, typed.
    const out = await api.send("GET", `/v1/boxes/${box}/files?path=/etc/hello`)
    expect(out.status).toBeGreaterThanOrEqual(400)
    expect(out.json.error._tag).toBeTypeOf("string")
    expect((await api.delete(`/v1/boxes/${box}?force=true`)).status).toBe(204)
  })

  it("a second server on the same home is refused; TCP needs a token, and checks it", async () => {
    await expect(start({ runtime, homeDir: home, listen: parseListen(undefined, home), version: "test" })).rejects.toMatchObject({ _tag: "BoxStateError" })
    const port = await freePort()
    await expect(start({ runtime, homeDir: home, listen: parseListen(`127.0.0.1:${port}`, home), version: "test" })).rejects.toMatchObject({ _tag: "BoxStateError" })
    expect(() => parseListen("0.0.0.0:8100", home)).toThrow(/loopback/)

    // Another home told to listen on this server's socket: refused, this server keeps it.
    const elsewhere = path.join(work, "elsewhere")
    await expect(start({ runtime, homeDir: elsewhere, listen: parseListen(path.join(home, "boxlite.sock"), elsewhere), version: "test" })).rejects.toMatchObject({ _tag: "BoxStateError" })
    expect((await api.get("/v1/boxes")).status).toBe(200)

    const otherHome = path.join(work, "tcp-home")
    const other = new Boxlite({ homeDir: otherHome }, platform(guest))
    await expect(start({ runtime: other, homeDir: otherHome, listen: parseListen(`127.0.0.1:${port}`, otherHome), version: "test" })).rejects.toMatchObject({ _tag: "InvalidOptions", field: "tokenFile" })
    const tcp = await start({ runtime: other, homeDir: otherHome, listen: parseListen(`127.0.0.1:${port}`, otherHome), token: "s3cret-token", version: "test" })
    try {
      expect(tcp.url).toBe(`http://127.0.0.1:${port}`)
      for (const token of [undefined, "wrong"]) {
        const refused = await client(tcp.url, token).get("/v1/boxes")
        expect(refused.status).toBe(401)
        expect(refused.json.error._tag).toBe("Unauthorized")
      }
      // Before routing: an unknown path says nothing without the token.
      expect((await client(tcp.url).send("GET", "/v2/anything", { check: false })).status).toBe(401)
      expect((await client(tcp.url, "s3cret-token").get("/v1/boxes")).status).toBe(200)
    } finally {
      await tcp.close()
      await other.close()
    }
  })

  it("every operation of the document was answered by these tests", () => {
    const documented = Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(([p, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${p}`))
    expect(documented.filter((op) => !answered.has(op))).toEqual([])
  })
})

/**
 * The egress policy and forwarded ports, attacked from inside the guest (root there). Every
 * destination is on this machine: services of the test process, and test hosts in a network
 * namespace this file creates behind a veth pair (addresses routed to it for the run), all in
 * a network namespace of the file's own.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { type Box, Boxlite, type BoxOptions } from "boxlite"
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import * as dgram from "node:dgram"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { enterOwnNetworkNamespace } from "@boxlite/driver-testkit"
import { addTestHost, BUSYBOX, PYTHON, removeTestHost, tempHome, uniqueSubnet } from "./helpers.js"

// A network namespace of this file's own: the routes it adds below (test hosts, addresses made
// unreachable) are in it, so concurrent runs cannot collide on them, and nothing leaves the machine.
enterOwnNetworkNamespace()

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
afterAll(() => runtime.close())

const ns = `ble${process.pid % 100000}`
const SUBNET = uniqueSubnet(2) // the test hosts' veth subnet ("private")
const TEST_HOST = `${SUBNET}.2`
const OTHER_HOST = `${SUBNET}.3`
const PUBLIC_NET = `198.18.${process.pid % 256}` // not "private" (benchmarking range), routed to the namespace
const PUBLIC_HOST = `${PUBLIC_NET}.2`
const METADATA = "169.254.169.254"
const HOST_VETH = `${SUBNET}.1`
const ROUTES = [`${METADATA}/32`, `${PUBLIC_NET}.0/24`]
const UNREACHABLE = ["10.0.2.2/32", "10.0.2.3/32"]
const METRIC = String(1000 + (process.pid % 50000))

/** The host's address on its default-route interface (a non-loopback address of its own). */
const hostAddress = (): string => {
  const dev = /dev (\S+)/.exec(execFileSync("ip", ["-4", "route", "show", "default"]).toString())?.[1]
  const address = os.networkInterfaces()[dev ?? ""]?.find((a) => a.family === "IPv4")?.address
  if (!address) throw new Error("the host has no default-route IPv4 address")
  return address
}

/** A TCP server that greets every client with `name` (a server that speaks first). */
const greeter = async (name: string, host: string): Promise<{ port: number; close: () => void }> => {
  const server = net.createServer((socket) => socket.end(`${name}\n`)).listen(0, host)
  await new Promise((r) => server.once("listening", r))
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() }
}

/**
 * Connects from the guest to each `host:port` (4 s each) and reads what the server says:
 * `ok <greeting>`, or `fail <error>` (a dropped destination is refused at once by passt).
 */
const probe = async (box: Box, targets: Array<string>): Promise<Record<string, string>> => {
  const script = [
    "import socket, sys",
    "for t in sys.argv[1:]:",
    "    h, p = t.rsplit(':', 1)",
    "    try:",
    "        s = socket.create_connection((h, int(p)), timeout=4)",
    "        s.settimeout(4)",
    "        print(t, 'ok', s.recv(100).decode().strip())",
    "    except Exception as e:",
    "        print(t, 'fail', type(e).__name__)"
  ].join("\n")
  const execution = await box.exec("python3", ["-c", script, ...targets])
  const [out] = await Promise.all([execution.stdout().text(), execution.wait()])
  return Object.fromEntries(out.trim().split("\n").map((line) => {
    const [target, ...rest] = line.split(" ")
    return [target!, rest.join(" ")]
  }))
}

const boxWith = async (options: BoxOptions): Promise<Box> => {
  const box = await runtime.create({ image: PYTHON, ...options })
  onTestFinished(() => box.remove().catch(() => {}))
  return box
}

let testHosts: ChildProcess
let hostAny: { port: number; close: () => void }
let hostOwn: { port: number; close: () => void }
let hostLoopback: { port: number; close: () => void }
let ownAddress = ""

// Test hosts: each answers on ports 80, 8080, 8500 and 9000 with "<its address>:<port>".
const TEST_HOST_PORTS = [80, 8080, 8500, 9000]
const TEST_HOST_SERVER = [
  "import socket, threading",
  "def serve(s):",
  "    while True:",
  "        c, _ = s.accept()",
  "        a, p = c.getsockname()",
  "        c.sendall(f'{a}:{p}\\n'.encode())",
  "        c.close()",
  `for port in ${JSON.stringify(TEST_HOST_PORTS)}:`,
  "    s = socket.socket()",
  "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
  "    s.bind(('0.0.0.0', port))",
  "    s.listen(16)",
  "    threading.Thread(target=serve, args=(s,)).start()",
  "print('listening', flush=True)"
].join("\n")

beforeAll(async () => {
  addTestHost(ns, SUBNET, { extraAddresses: [`${OTHER_HOST}/24`, `${PUBLIC_HOST}/24`, `${METADATA}/32`], defaultRoute: true })
  // With this run's own metric: another run's routes to the same addresses may exist beside them.
  for (const route of ROUTES) execFileSync("ip", ["route", "add", route, "dev", `${ns}h`, "metric", METRIC])
  testHosts = spawn("ip", ["netns", "exec", ns, "python3", "-c", TEST_HOST_SERVER], { stdio: ["ignore", "pipe", "inherit"] })
  await new Promise((r) => testHosts.stdout!.once("data", r))
  ownAddress = hostAddress()
  hostAny = await greeter("host-any", "0.0.0.0")
  hostOwn = await greeter("host-own", ownAddress)
  hostLoopback = await greeter("host-loopback", "127.0.0.1")
  // 10.0.2.2 unmapped, and 10.0.2.3 but for DNS, are ordinary addresses: routes that refuse
  // them keep the probes on this machine (a metric of this run's own: other runs add theirs).
  for (const address of UNREACHABLE) execFileSync("ip", ["route", "add", "unreachable", address, "metric", METRIC])
})

afterAll(() => {
  testHosts?.kill()
  for (const server of [hostAny, hostOwn, hostLoopback]) server?.close()
  for (const route of ROUTES) spawnSync("ip", ["route", "del", route, "dev", `${ns}h`, "metric", METRIC])
  for (const address of UNREACHABLE) spawnSync("ip", ["route", "del", "unreachable", address, "metric", METRIC])
  removeTestHost(ns)
})

describe("egress policy (enforced on the host)", () => {
  it("egress-host-addresses: a host service bound to 0.0.0.0 and to the host's own non-loopback address is unreachable from the guest by default", async () => {
    const box = await boxWith({})
    const r = await probe(box, [`${ownAddress}:${hostAny.port}`, `${ownAddress}:${hostOwn.port}`, `${HOST_VETH}:${hostAny.port}`, `${TEST_HOST}:80`])
    expect(r[`${TEST_HOST}:80`]).toBe(`ok ${TEST_HOST}:80`) // the network works
    expect(r[`${ownAddress}:${hostAny.port}`]).toMatch(/^fail/)
    expect(r[`${ownAddress}:${hostOwn.port}`]).toMatch(/^fail/)
    expect(r[`${HOST_VETH}:${hostAny.port}`]).toMatch(/^fail/)
    // The probe can succeed: allowing one of the host's addresses re-allows it (documented).
    const allowed = await boxWith({ network: { mode: "nat", allow: [HOST_VETH] } })
    expect((await probe(allowed, [`${HOST_VETH}:${hostAny.port}`]))[`${HOST_VETH}:${hostAny.port}`]).toBe("ok host-any")
  }, 240_000)

  it("egress-link-local: 169.254.169.254 (a test host) is unreachable by default, reachable once allowed", async () => {
    expect(execFileSync("python3", ["-c", `import socket; print(socket.create_connection(('${METADATA}', 80), timeout=4).recv(100).decode().strip())`]).toString().trim()).toBe(`${METADATA}:80`)
    const box = await boxWith({})
    expect((await probe(box, [`${METADATA}:80`]))[`${METADATA}:80`]).toMatch(/^fail/)
    const allowed = await boxWith({ network: { mode: "nat", deny: [], allow: [`${METADATA}:80`] } })
    const r = await probe(allowed, [`${METADATA}:80`, `${METADATA}:8080`])
    expect(r).toEqual({ [`${METADATA}:80`]: `ok ${METADATA}:80`, [`${METADATA}:8080`]: expect.stringMatching(/^fail/) })
  }, 240_000)

  it("egress-loopback: 127.0.0.1 services are unreachable via 10.0.2.2 and via any other address", async () => {
    const port = hostLoopback.port
    const box = await boxWith({ ports: [{ hostPort: 0, guestPort: 9999 }] })
    const r = await probe(box, [`10.0.2.2:${port}`, `10.0.2.3:${port}`, `${ownAddress}:${port}`, `${HOST_VETH}:${port}`, `${TEST_HOST}:80`])
    expect(r[`${TEST_HOST}:80`]).toBe(`ok ${TEST_HOST}:80`)
    for (const target of [`10.0.2.2:${port}`, `10.0.2.3:${port}`, `${ownAddress}:${port}`, `${HOST_VETH}:${port}`]) expect(r[target], target).toMatch(/^fail/)
    // The same probe succeeds where the host's loopback is allowed.
    const allowed = await boxWith({ allowHostLoopback: true })
    expect((await probe(allowed, [`10.0.2.2:${port}`]))[`10.0.2.2:${port}`]).toBe("ok host-loopback")
  }, 240_000)

  it("egress-deny: a CIDR, host:port and a port range are refused, the rest of the host still reachable", async () => {
    const box = await boxWith({ network: { mode: "nat", deny: [`${OTHER_HOST}/32`, `${TEST_HOST}:8080`, `${TEST_HOST}:8400-8600`] } })
    expect(await probe(box, [`${TEST_HOST}:80`, `${TEST_HOST}:8080`, `${TEST_HOST}:8500`, `${TEST_HOST}:9000`, `${OTHER_HOST}:80`])).toEqual({
      [`${TEST_HOST}:80`]: `ok ${TEST_HOST}:80`,
      [`${TEST_HOST}:8080`]: expect.stringMatching(/^fail/),
      [`${TEST_HOST}:8500`]: expect.stringMatching(/^fail/),
      [`${TEST_HOST}:9000`]: `ok ${TEST_HOST}:9000`,
      [`${OTHER_HOST}:80`]: expect.stringMatching(/^fail/)
    })
  }, 240_000)

  it("egress-deny/allow 'private': denying it refuses the private ranges but not others; allowing it admits only them", async () => {
    const denied = await boxWith({ network: { mode: "nat", deny: ["private"] } })
    expect(await probe(denied, [`${TEST_HOST}:80`, `${PUBLIC_HOST}:80`])).toEqual({
      [`${TEST_HOST}:80`]: expect.stringMatching(/^fail/),
      [`${PUBLIC_HOST}:80`]: `ok ${PUBLIC_HOST}:80`
    })
    const allowed = await boxWith({ network: { mode: "nat", allow: ["private:8000-9000"] } })
    expect(await probe(allowed, [`${TEST_HOST}:80`, `${TEST_HOST}:8500`, `${PUBLIC_HOST}:8500`])).toEqual({
      [`${TEST_HOST}:80`]: expect.stringMatching(/^fail/),
      [`${TEST_HOST}:8500`]: `ok ${TEST_HOST}:8500`,
      [`${PUBLIC_HOST}:8500`]: expect.stringMatching(/^fail/)
    })
  }, 240_000)

  it("egress-allow-list: only the allowed host is reachable (deny still wins inside it)", async () => {
    const box = await boxWith({ network: { mode: "nat", allow: [`${TEST_HOST}`], deny: [`${TEST_HOST}:9000`] } })
    expect(await probe(box, [`${TEST_HOST}:80`, `${TEST_HOST}:9000`, `${OTHER_HOST}:80`, `${PUBLIC_HOST}:80`, `${HOST_VETH}:${hostAny.port}`])).toEqual({
      [`${TEST_HOST}:80`]: `ok ${TEST_HOST}:80`,
      [`${TEST_HOST}:9000`]: expect.stringMatching(/^fail/),
      [`${OTHER_HOST}:80`]: expect.stringMatching(/^fail/),
      [`${PUBLIC_HOST}:80`]: expect.stringMatching(/^fail/),
      [`${HOST_VETH}:${hostAny.port}`]: expect.stringMatching(/^fail/)
    })
  }, 240_000)
})

/** A DNS server answering every A query with `address`; it records the names asked. */
const testResolver = async (host: string, address: string) => {
  const asked: Array<string> = []
  const socket = dgram.createSocket("udp4")
  socket.on("message", (query, from) => {
    const labels: Array<string> = []
    let at = 12
    while (query[at]! > 0) {
      labels.push(query.subarray(at + 1, at + 1 + query[at]!).toString())
      at += query[at]! + 1
    }
    asked.push(labels.join("."))
    const question = query.subarray(12, at + 5)
    const header = Buffer.from([query[0]!, query[1]!, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0])
    const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...address.split(".").map(Number)])
    socket.send(Buffer.concat([header, question, answer]), from.port, from.address)
  })
  await new Promise<void>((resolve) => socket.bind(53, host, resolve))
  return { asked, close: () => socket.close() }
}

/** Runs `script` (ESM, may import boxlite) as nobody (or root), optionally behind a shell `setup` run first as root in a mount namespace of its own; its last stdout line as JSON. */
const asNobody = async (script: string, setup?: string, user: "nobody" | "root" = "nobody"): Promise<{ result: Record<string, unknown>; stderr: string }> => {
  const node = [process.execPath, "--input-type=module", "-e", script]
  const nobody = user === "root" ? node : ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--", ...node]
  const [file, ...args] = setup ? ["unshare", "--mount", "--propagation", "private", "sh", "-c", `${setup} && exec "$@"`, "sh", ...nobody] : nobody
  const userHome = fs.mkdtempSync(path.join(os.tmpdir(), "bl-nobody-"))
  fs.chownSync(userHome, 65534, 65534)
  const child = spawn(file!, args, { env: { PATH: process.env["PATH"], HOME: userHome, BL_HOME: path.join(userHome, "home") }, stdio: ["ignore", "pipe", "pipe"], timeout: 180_000 })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
  await new Promise((r) => child.once("close", r))
  fs.rmSync(userHome, { recursive: true, force: true })
  return { result: JSON.parse(stdout.trim().split("\n").at(-1) || "{}"), stderr }
}

/** Setup for asNobody: /dev/net/tun replaced by a node of the same device with this mode (the host's is left alone). */
const tunNode = (mode: string) => `d=$(mktemp -d) && mount -t tmpfs -o mode=0755 bl "$d" && mknod -m ${mode} "$d/tun" c 10 200 && mount --bind "$d/tun" /dev/net/tun`

describe("egress policy for root and for other users", () => {
  const script = `
    import { Boxlite } from "boxlite"
    const runtime = new Boxlite({ homeDir: process.env.BL_HOME })
    const result = {}
    try {
      const box = await runtime.create({ image: ${JSON.stringify(BUSYBOX)}, network: { mode: "nat", deny: ["${OTHER_HOST}"] } })
      const e = await box.exec("sh", ["-c", "for h in ${TEST_HOST} ${OTHER_HOST} ${METADATA}; do nc -w 4 $h 80 </dev/null || echo fail $h; done"])
      const [out] = await Promise.all([e.stdout().text(), e.wait()])
      result.out = out.trim()
      await box.remove()
    } catch (e) {
      result.error = { name: e.constructor.name, message: e.message }
    }
    await runtime.close()
    console.log(JSON.stringify(result))`

  it("egress-nonroot: a user that is not root, with a /dev/net/tun open to it (Debian's udev mode, 0666), gets the policy enforced", async () => {
    const { result, stderr } = await asNobody(script, tunNode("0666"))
    expect(result.out, stderr).toBe(`${TEST_HOST}:80\nfail ${OTHER_HOST}\nfail ${METADATA}`)
  }, 240_000)

  it("egress-root: as root with a /dev/net/tun open to nobody, passt's namespace and pasta belong to nobody, and the policy holds", async () => {
    const rootScript = script.replace("result.out = out.trim()", `result.out = out.trim()
      const { execFileSync } = await import("node:child_process")
      const ps = execFileSync("ps", ["-eo", "pid=,ppid=,uid=,args="]).toString().trim().split("\\n").map((l) => l.trim().split(/\\s+/))
      const supervisors = ps.filter((p) => p[1] === String(process.pid) && p[3] === "boxlite-supervisor").map((p) => p[0])
      result.helpers = ps.filter((p) => supervisors.includes(p[1]) && /boxlite\\/pas/.test(p[3])).map((p) => p[3].split("/").at(-1) + ":" + p[2]).sort()`)
    const { result, stderr } = await asNobody(rootScript, tunNode("0666"), "root")
    expect(result.out, stderr).toBe(`${TEST_HOST}:80\nfail ${OTHER_HOST}\nfail ${METADATA}`)
    expect(result.helpers).toEqual(["passt:65534", "pasta:65534"])
  }, 240_000)

  it("egress-nonroot: where /dev/net/tun is closed to the user, a box with allow/deny is refused saying why, never run unfiltered", async () => {
    const { result, stderr } = await asNobody(script, tunNode("0600"))
    expect(result.error, stderr).toMatchObject({ name: "HypervisorUnavailable", message: expect.stringContaining("/dev/net/tun") })
  }, 240_000)
})

describe("DNS", () => {
  it("dns still resolves, through a host resolver on loopback, also in allow-list mode", async () => {
    // A resolver of our own on a loopback address of its own, named by a resolv.conf that the
    // runtime (its supervisor, pasta) sees in a mount namespace of its own: nothing leaves the machine.
    const loopback = `127.53.${process.pid % 250}.1`
    const resolver = await testResolver(loopback, TEST_HOST)
    onTestFinished(() => resolver.close())
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-dns-"))
    fs.writeFileSync(path.join(dir, "resolv.conf"), `nameserver ${loopback}\n`)
    const script = `
      import { Boxlite } from "boxlite"
      const runtime = new Boxlite({ homeDir: ${JSON.stringify(path.join(dir, "home"))} })
      const box = await runtime.create({ image: ${JSON.stringify(PYTHON)}, network: { mode: "nat", allow: ["${TEST_HOST}:80"] } })
      const e = await box.exec("python3", ["-c", "import socket; a = socket.gethostbyname('svc.boxlite.test'); print(a); print(socket.create_connection((a, 80), timeout=4).recv(100).decode().strip())"])
      const [out, err] = await Promise.all([e.stdout().text(), e.stderr().text(), e.wait()])
      await box.remove()
      await runtime.close()
      console.log(JSON.stringify({ out, err }))`
    // Asynchronously: the resolver answers from this process's event loop.
    const child = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"', "sh",
      path.join(dir, "resolv.conf"), process.execPath, "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"], timeout: 180_000 })
    const run = { stdout: "", stderr: "" }
    child.stdout.on("data", (d: Buffer) => (run.stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (run.stderr += d.toString()))
    await new Promise((r) => child.once("close", r))
    fs.rmSync(dir, { recursive: true, force: true })
    const lines = run.stdout.trim().split("\n")
    const result = JSON.parse(lines[lines.length - 1] ?? "{}")
    expect(result.out, `${run.stderr}${result.err ?? ""} asked: ${resolver.asked.join(",")}`).toBe(`${TEST_HOST}\n${TEST_HOST}:80\n`)
    expect(resolver.asked).toContain("svc.boxlite.test")
  }, 240_000)
})

describe("forwarded ports", () => {
  it("port-speaks-first: a guest server that writes a banner first is seen by a host client that only reads", async () => {
    const box = await boxWith({ ports: [{ hostPort: 0, guestPort: 25 }] })
    await box.exec("python3", ["-c", [
      "import socket",
      "s = socket.socket()",
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
      "s.bind(('0.0.0.0', 25))",
      "s.listen(4)",
      "while True:",
      "    c, _ = s.accept()",
      "    c.sendall(b'220 hello\\r\\n')",
      "    c.close()"
    ].join("\n")])
    const port = (await box.info()).ports[0]!.hostPort
    const readBanner = () =>
      new Promise<string>((resolve, reject) => {
        let data = ""
        const client = net.connect(port, "127.0.0.1")
        client.setTimeout(10_000, () => client.destroy(new Error("no banner within 10 s")))
        client.on("data", (d) => (data += d.toString()))
        client.on("end", () => resolve(data))
        client.on("error", reject)
      })
    // The server needs a moment to listen: until then pasta accepts and closes at once (or resets).
    let banner = ""
    for (let i = 0; i < 60 && !banner; i++) {
      banner = await readBanner().catch((e: Error) => {
        if (e.message.startsWith("no banner")) throw e
        return ""
      })
      if (!banner) await new Promise((r) => setTimeout(r, 500))
    }
    expect(banner).toBe("220 hello\r\n")
  }, 240_000)
})

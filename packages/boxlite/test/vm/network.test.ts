import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { type Box, Boxlite, InvalidOptions } from "boxlite"
import { spawn, type ChildProcess } from "node:child_process"
import * as dgram from "node:dgram"
import * as http from "node:http"
import * as net from "node:net"
import { enterOwnNetworkNamespace } from "@boxlite/driver-testkit"
import { boxDirs, BUSYBOX, PYTHON, qemuProcessesUnder, tempHome, sh, uniqueSubnet, addTestHost, removeTestHost } from "./helpers.js"

// This file's boxes, test host and servers live in a network namespace of their own (only lo
// and the test host's veth): an unmapped 10.0.2.2 is unreachable without touching the host's routes.
enterOwnNetworkNamespace()

const home = tempHome()
const runtime = new Boxlite({ homeDir: home })
afterAll(() => runtime.close())

/** A fetch from inside the guest (Python's urllib: busybox-static's wget crashes in its resolver). */
const fetchInGuest = (box: Box, url: string, timeoutS: number) =>
  sh(box, `python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('${url}', timeout=${timeoutS}).read().decode())"`)

const get = (url: string) =>
  new Promise<string>((resolve, reject) => {
    http.get(url, (res) => {
      let body = ""
      res.on("data", (d) => (body += d))
      res.on("end", () => resolve(body))
    }).on("error", reject)
  })

/** Retries `f` until it succeeds: a server started in the guest needs a moment to listen. */
const eventually = async <T>(f: () => Promise<T>, ms = 20_000): Promise<T> => {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return await f()
    } catch (e) {
      if (Date.now() > deadline) throw e
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

/** A UDP echo server in the guest on `guestPort` (forwarded); resolves with its host port. */
const startUdpEcho = async (box: Box, guestPort: number): Promise<number> => {
  await box.exec("python3", ["-u", "-c", `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', ${guestPort}))\nwhile True:\n    d, a = s.recvfrom(65535)\n    s.sendto(b'echo:' + d, a)`])
  return (await box.info()).ports.find((p) => p.guestPort === guestPort)!.hostPort
}

/** A UDP socket on the host's loopback; ask() sends one datagram and waits a second for the answer. */
const udpClient = async () => {
  const socket = dgram.createSocket("udp4")
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve))
  onTestFinished(() => socket.close())
  return {
    ask: (text: string, port: number) =>
      new Promise<{ reply: string; from: string }>((resolve, reject) => {
        const timer = setTimeout(() => {
          socket.removeAllListeners("message")
          reject(new Error("no UDP reply"))
        }, 1000)
        socket.once("message", (m, from) => {
          clearTimeout(timer)
          resolve({ reply: m.toString(), from: `${from.address}:${from.port}` })
        })
        socket.send(text, port, "127.0.0.1")
      })
  }
}

describe("port forwarding", () => {
  it("reaches an HTTP server in the guest through a TCP port (hostPort 0 picks one)", async () => {
    const box = await runtime.create({ image: BUSYBOX, ports: [{ hostPort: 0, guestPort: 8080 }] })
    await sh(box, "mkdir -p /tmp/www && echo served-from-the-guest > /tmp/www/index.html")
    const server = await box.exec("httpd", ["-f", "-p", "8080", "-h", "/tmp/www"])
    const [port] = (await box.info()).ports
    expect(port).toMatchObject({ protocol: "tcp", hostIp: "127.0.0.1", guestPort: 8080 })
    expect(port!.hostPort).toBeGreaterThan(0)
    expect(await eventually(() => get(`http://127.0.0.1:${port!.hostPort}/`))).toBe("served-from-the-guest\n")
    await server.kill()
    await box.remove()
  })

  it("echoes UDP through a UDP port, to each client from the forwarded port", async () => {
    const box = await runtime.create({ image: PYTHON, ports: [[0, 9000, "udp"]] })
    const hostPort = await startUdpEcho(box, 9000)
    const [first, second] = [await udpClient(), await udpClient()]
    expect(await eventually(() => first.ask("ping", hostPort))).toEqual({ reply: "echo:ping", from: `127.0.0.1:${hostPort}` })
    expect(await eventually(() => second.ask("pong", hostPort))).toEqual({ reply: "echo:pong", from: `127.0.0.1:${hostPort}` })
    expect(await first.ask("again", hostPort)).toEqual({ reply: "echo:again", from: `127.0.0.1:${hostPort}` })
    // The guest has passt's MTU, so a datagram far over 1500 bytes arrives whole, both ways.
    expect((await sh(box, "cat /sys/class/net/eth0/mtu")).out).toBe("65520")
    const big = "x".repeat(30_000)
    expect((await first.ask(big, hostPort)).reply).toBe(`echo:${big}`)
    await box.remove()
  }, 180_000)

  it("a host port already in use is InvalidOptions naming it, before anything starts", async () => {
    const blocker = net.createServer().listen(0, "127.0.0.1")
    await new Promise((r) => blocker.once("listening", r))
    const taken = (blocker.address() as net.AddressInfo).port
    const error = await runtime.create({ image: BUSYBOX, ports: [[taken, 80]] }).catch((e: unknown) => e)
    blocker.close()
    expect(error).toBeInstanceOf(InvalidOptions)
    expect(String(error)).toContain(`127.0.0.1:${taken} is already in use`)
    expect(boxDirs(home)).toEqual([])
    expect(qemuProcessesUnder(home)).toEqual([])
  })
})

describe("outbound network", () => {
  const ns = `bl${process.pid}`
  const subnet = uniqueSubnet(1)
  let testHost: ChildProcess
  let hostOnly: http.Server
  let hostOnlyPort = 0

  beforeAll(async () => {
    // A test host of our own: a network namespace behind a veth pair, serving HTTP.
    addTestHost(ns, subnet)
    testHost = spawn("ip", ["netns", "exec", ns, "python3", "-m", "http.server", "8000", "--bind", `${subnet}.2`, "--directory", "/etc"], { stdio: "ignore" })
    await eventually(() => get(`http://${subnet}.2:8000/hostname`))
    hostOnly = http.createServer((_, res) => res.end("host loopback")).listen(0, "127.0.0.1")
    await new Promise((r) => hostOnly.once("listening", r))
    hostOnlyPort = (hostOnly.address() as net.AddressInfo).port
  })
  afterAll(() => {
    testHost?.kill()
    hostOnly?.close()
    removeTestHost(ns)
  })

  it("the guest reaches a server on a test host, but not the host's loopback", async () => {
    // Unmapped, 10.0.2.2 is an ordinary destination for passt: this file's namespace has no
    // route to it, so the probe stays on this machine (a mapping to the loopback would answer).
    const box = await runtime.create({ image: PYTHON })
    const remote = await fetchInGuest(box, `http://${subnet}.2:8000/hostname`, 10)
    expect(remote.exitCode).toBe(0)
    expect(remote.out.length).toBeGreaterThan(0)
    expect(await sh(box, "cat /etc/resolv.conf")).toMatchObject({ out: expect.stringContaining("nameserver") })
    const loopback = await fetchInGuest(box, `http://10.0.2.2:${hostOnlyPort}/`, 5)
    expect(loopback.exitCode).not.toBe(0)
    expect(loopback.out).not.toContain("host loopback")
    await box.remove()
  })

  it("a box with UDP and TCP forwards still cannot reach the host's loopback, over TCP or UDP", async () => {
    // passt 2023-03 lost UDP replies without the gateway mapping (the driver relayed UDP forwards
    // then); current passt keeps UDP flows. Probes as above.
    const heard: Array<string> = []
    const hostUdp = dgram.createSocket("udp4").on("message", (m, from) => {
      heard.push(m.toString())
      hostUdp.send("host loopback", from.port, from.address)
    })
    await new Promise<void>((resolve) => hostUdp.bind(0, "127.0.0.1", resolve))
    onTestFinished(() => hostUdp.close())
    const box = await runtime.create({ image: PYTHON, ports: [[0, 9000, "udp"], [0, 8080, "tcp"]] })
    const hostPort = await startUdpEcho(box, 9000)
    const client = await udpClient()
    expect(await eventually(() => client.ask("ping", hostPort))).toEqual({ reply: "echo:ping", from: `127.0.0.1:${hostPort}` })

    const tcp = await fetchInGuest(box, `http://10.0.2.2:${hostOnlyPort}/`, 5)
    expect(tcp.exitCode).not.toBe(0)
    expect(tcp.out).not.toContain("host loopback")
    const udpProbe = [
      "import socket",
      "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
      "u.settimeout(1)",
      "for i in range(3):",
      "    try:",
      `        u.sendto(b'from the guest', ('10.0.2.2', ${hostUdp.address().port}))`,
      "        print(u.recvfrom(100)[0].decode())",
      "        break",
      "    except OSError as e:",
      "        print(e)"
    ].join("\n")
    const udp = await sh(box, `python3 -c "${udpProbe}"`)
    expect(udp.out.split("\n")).toEqual(["timed out", "timed out", "timed out"])
    expect(heard).toEqual([])
    await box.remove()
  }, 180_000)

  it("allowHostLoopback lets the guest reach the host's loopback through 10.0.2.2", async () => {
    const box = await runtime.create({ image: PYTHON, allowHostLoopback: true })
    expect((await fetchInGuest(box, `http://10.0.2.2:${hostOnlyPort}/`, 10)).out).toBe("host loopback")
    await box.remove()
  })

  it('network: "none" has no interface but lo and no route', async () => {
    const box = await runtime.create({ image: PYTHON, network: "none" })
    expect((await sh(box, "ls /sys/class/net")).out).toBe("lo")
    const fetch = await fetchInGuest(box, `http://${subnet}.2:8000/hostname`, 5)
    expect(fetch.exitCode).not.toBe(0)
    expect(fetch.err).toMatch(/Network is unreachable/)
    await box.remove()
  })
})

import { describe, expect, it, onTestFinished } from "vitest"
import { relaySourceAddress, startUdpRelay } from "@boxlite/driver-qemu"
import * as dgram from "node:dgram"
import type * as os from "node:os"

const iface = (address: string, internal = false): os.NetworkInterfaceInfo =>
  ({ address, netmask: "255.255.255.0", family: "IPv4", mac: "00:00:00:00:00:00", internal, cidr: `${address}/24` })

describe("the UDP relay's source address", () => {
  it("is an IPv4 address of the host that passt will not rewrite to the gateway", () => {
    expect(relaySourceAddress({ lo: [iface("127.0.0.1", true)] })).toBeUndefined()
    // The guest's own address (a host that is itself a slirp/passt guest) is rewritten too.
    expect(relaySourceAddress({ lo: [iface("127.0.0.1", true)], eth0: [iface("10.0.2.15")] })).toBeUndefined()
    expect(relaySourceAddress({ eth0: [iface("10.0.2.16")], eth1: [iface("192.168.1.7")] })).toBe("192.168.1.7")
    expect(relaySourceAddress({ eth0: [iface("10.0.2.16")] })).toBe("10.0.2.16")
  })
})

const close = (socket: dgram.Socket) =>
  new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve())
    } catch {
      resolve() // closed already
    }
  })

/** A UDP socket bound on `address`, closed when the test ends. */
const udp = async (address: string, port = 0) => {
  const socket = dgram.createSocket("udp4")
  await new Promise<void>((resolve) => socket.bind(port, address, resolve))
  onTestFinished(() => close(socket))
  return socket
}

const next = (socket: dgram.Socket, ms = 2000) =>
  new Promise<{ data: string; from: string } | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms)
    socket.once("message", (m, r) => {
      clearTimeout(timer)
      resolve({ data: m.toString(), from: `${r.address}:${r.port}` })
    })
  })

const source = relaySourceAddress()

describe.skipIf(!source)("the UDP relay", () => {
  it("relays each client from a socket of its own on the source address, and the replies back", async () => {
    const front = await udp("127.0.0.1")
    const port = front.address().port
    await close(front)
    const relay = await startUdpRelay("127.0.0.1", port, source!, { idleMs: 1000 })
    onTestFinished(() => relay.close())
    // passt's forward, as far as the relay can tell: it echoes, naming the sender.
    const seen: Array<string> = []
    const passt = await udp("127.0.0.1", relay.innerPort)
    passt.on("message", (m, r) => {
      seen.push(r.address)
      passt.send(`echo:${m} from ${r.address}:${r.port}`, r.port, r.address)
    })

    const ask = async (client: dgram.Socket, text: string) => {
      const reply = next(client)
      client.send(text, port, "127.0.0.1")
      return reply
    }
    const [a, b] = [await udp("127.0.0.1"), await udp("127.0.0.1")]
    const sourcePattern = source!.replaceAll(".", "\\.")
    const fromA = await ask(a, "ping")
    expect(fromA).toMatchObject({ data: expect.stringMatching(new RegExp(`^echo:ping from ${sourcePattern}:\\d+$`)), from: `127.0.0.1:${port}` })
    const fromB = await ask(b, "pong")
    expect(fromB?.data).toMatch(/^echo:pong from /)
    // Two clients, two relay sockets (the guest can tell them apart); one client, one socket.
    const portOf = (reply: typeof fromA) => reply!.data.split(":").pop()
    expect(portOf(fromB)).not.toBe(portOf(fromA))
    expect(portOf(await ask(a, "again"))).toBe(portOf(fromA))
    expect(seen.every((address) => address === source)).toBe(true)
  })

  it("takes replies only from passt's forward, and forgets idle clients", async () => {
    const front = await udp("127.0.0.1")
    const port = front.address().port
    await close(front)
    const relay = await startUdpRelay("127.0.0.1", port, source!, { idleMs: 1000 })
    onTestFinished(() => relay.close())
    const passt = await udp("127.0.0.1", relay.innerPort)
    const from: Array<number> = []
    passt.on("message", (m, r) => {
      from.push(r.port)
      passt.send(`echo:${m}`, r.port, r.address)
    })
    const client = await udp("127.0.0.1")
    const first = next(client)
    client.send("one", port, "127.0.0.1")
    expect((await first)?.data).toBe("echo:one")

    // Anyone else sending to the relay's socket for this client is not passed to the client.
    const stranger = await udp(source!)
    const nothing = next(client, 500)
    stranger.send("injected", from[0]!, source!)
    expect(await nothing).toBeUndefined()

    // After the idle time (swept at least every second) the client's socket is gone.
    await new Promise((r) => setTimeout(r, 2600))
    const second = next(client)
    client.send("two", port, "127.0.0.1")
    expect((await second)?.data).toBe("echo:two")
    expect(from[1]).not.toBe(from[0])
  })

  it("refuses a host port already in use", async () => {
    const taken = await udp("127.0.0.1")
    await expect(startUdpRelay("127.0.0.1", taken.address().port, source!)).rejects.toMatchObject({ code: "EADDRINUSE" })
  })
})

import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { connectGuest, connectOnce } from "../src/internal/vsock.js"

const cleanups: Array<() => void> = []
afterEach(() => cleanups.splice(0).forEach((c) => c()))

/** A unix server playing the VMM's side of hybrid vsock: `answer` gets each connection and the CONNECT line. */
const vmm = async (answer: (connection: net.Socket, line: string) => void): Promise<string> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-kvm-vsock-"))
  const socket = path.join(dir, "vsock.sock")
  const server = net.createServer((connection) => {
    connection.on("error", () => undefined)
    let line = ""
    connection.on("data", function onData(chunk: Buffer) {
      line += chunk.toString()
      if (!line.includes("\n")) return
      connection.off("data", onData)
      answer(connection, line.slice(0, line.indexOf("\n")))
    })
  })
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  cleanups.push(() => {
    server.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return socket
}

const firstData = (socket: net.Socket) => new Promise<string>((resolve) => socket.once("data", (d: Buffer) => resolve(d.toString())))

describe("hybrid vsock (host side)", { timeout: 30_000 }, () => {
  it("sends CONNECT <port>, and keeps the bytes that came with OK for the stream's reader", async () => {
    const seen: Array<string> = []
    const socket = await vmm((connection, line) => {
      seen.push(line)
      connection.write("OK 1073741824\nfirst agent bytes")
    })
    const stream = await connectOnce(socket, 1024, 1000)
    cleanups.push(() => stream.destroy())
    expect(seen).toEqual(["CONNECT 1024"])
    // Nothing was lost while no one read: the reader attaches later.
    await new Promise((r) => setTimeout(r, 50))
    expect(await firstData(stream)).toBe("first agent bytes")
  })

  it.each([
    ["a refusal (closed)", (c: net.Socket) => c.destroy(), /closed the connection to vsock port 1024/],
    ["another answer", (c: net.Socket) => c.write("ERR no listener\n"), /answered "ERR no listener" to CONNECT 1024/],
    ["no answer", () => undefined, /no answer to CONNECT 1024 within 200 ms/]
  ])("fails one attempt on %s", async (_, answer, reason) => {
    const socket = await vmm(answer)
    await expect(connectOnce(socket, 1024, 200)).rejects.toThrow(reason)
  })

  it("retries until the guest listens, and gives up at the deadline or when the VMM is gone", async () => {
    let attempts = 0
    const socket = await vmm((connection) => (++attempts < 3 ? connection.destroy() : connection.write("OK 1\n")))
    const stream = await connectGuest(socket, 1024, Date.now() + 5000, () => undefined, 10)
    stream.destroy()
    expect(attempts).toBe(3)
    const never = await vmm((connection) => connection.destroy())
    await expect(connectGuest(never, 1024, Date.now() + 100, () => undefined, 10)).rejects.toThrow(/did not answer on vsock port 1024: the VMM closed/)
    await expect(connectGuest(never, 1024, Date.now() + 5000, () => "cloud-hypervisor exited", 10)).rejects.toThrow("cloud-hypervisor exited")
  })
})

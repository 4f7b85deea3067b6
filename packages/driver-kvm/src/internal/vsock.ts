/**
 * The host side of cloud-hypervisor's hybrid vsock (docs/vsock.md): the VMM listens on a unix
 * socket; a host program connects, writes `CONNECT <port>\n`, and once the guest accepts on that
 * port the VMM answers `OK <host port>\n` and the connection is the guest's stream. Until the
 * guest agent listens, the VMM closes the connection instead.
 */
import * as net from "node:net"

/** The longest reply line the VMM sends (`OK 4294967295\n`), with room to spare. */
const MAX_REPLY = 64

/** One attempt: the stream, or an error (refused, closed without OK, a reply that is not OK, no reply within `timeoutMs`). */
export const connectOnce = (socket: string, port: number, timeoutMs: number): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const connection = net.connect(socket)
    let reply = Buffer.alloc(0)
    const timer = setTimeout(() => fail(new Error(`no answer to CONNECT ${port} within ${timeoutMs} ms`)), timeoutMs)
    const done = () => {
      clearTimeout(timer)
      connection.off("readable", onReadable)
      connection.off("close", onClose)
      connection.off("error", fail)
    }
    const fail = (e: Error) => {
      done()
      connection.destroy()
      reject(e)
    }
    // 'readable' rather than 'data': once its listener is gone the stream is neither flowing nor
    // paused, so the agent's bytes wait for whoever reads the stream next.
    const onReadable = () => {
      for (let chunk: Buffer | null; (chunk = connection.read() as Buffer | null) !== null;) {
        reply = Buffer.concat([reply, chunk])
        const nl = reply.indexOf(0x0a)
        if (nl === -1) {
          if (reply.length > MAX_REPLY) return fail(new Error("the VMM's vsock reply is not a line"))
          continue
        }
        const line = reply.subarray(0, nl).toString()
        if (!/^OK \d+$/.test(line)) return fail(new Error(`the VMM answered "${line.slice(0, MAX_REPLY)}" to CONNECT ${port}`))
        done()
        // The agent's first bytes may have come with the OK: give them back to the stream.
        const rest = reply.subarray(nl + 1)
        if (rest.length > 0) connection.unshift(rest)
        return resolve(connection)
      }
    }
    const onClose = () => fail(new Error(`the VMM closed the connection to vsock port ${port} (nothing listens there yet)`))
    connection.on("readable", onReadable)
    connection.once("close", onClose)
    connection.once("error", fail)
    connection.once("connect", () => connection.write(`CONNECT ${port}\n`))
  })

/**
 * Connects to the guest's `port`, retrying every `intervalMs` while the guest boots, until
 * `deadline` (epoch ms) or until `gone()` says the VMM has exited.
 */
export const connectGuest = async (socket: string, port: number, deadline: number, gone: () => string | undefined, intervalMs = 50): Promise<net.Socket> => {
  let last = "no attempt"
  while (true) {
    const exited = gone()
    if (exited) throw new Error(exited)
    try {
      return await connectOnce(socket, port, Math.max(100, deadline - Date.now()))
    } catch (e) {
      last = (e as Error).message
    }
    if (Date.now() > deadline) throw new Error(`the guest agent did not answer on vsock port ${port}: ${last}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

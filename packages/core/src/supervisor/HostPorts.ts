/**
 * Host ports of forwards: checked free before a box boots (so "in use" is a clear error, not a
 * VMM failure), and picked when the user asked for port 0.
 *
 * Runs in the runtime (a create checks the ports) and in the supervisor (a start claims them).
 */
import * as dgram from "node:dgram"
import * as net from "node:net"
import type { Port } from "../Options.js"

/** Binds the port for a moment; resolves with the bound port, or rejects with the bind error. */
const probe = (protocol: "tcp" | "udp", hostIp: string, port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    if (protocol === "tcp") {
      const server = net.createServer()
      server.once("error", reject)
      server.listen({ host: hostIp, port, exclusive: true }, () => {
        const bound = (server.address() as net.AddressInfo).port
        server.close(() => resolve(bound))
      })
    } else {
      const socket = dgram.createSocket("udp4")
      socket.once("error", (e) => {
        socket.close()
        reject(e)
      })
      socket.bind({ address: hostIp, port, exclusive: true }, () => {
        const bound = socket.address().port
        socket.close(() => resolve(bound))
      })
    }
  })

/** The ports with 0 replaced by free ones; rejects naming the first port that cannot be bound. */
export const claimHostPorts = async (ports: ReadonlyArray<Port>): Promise<Array<Port>> => {
  const claimed: Array<Port> = []
  for (const port of ports) {
    try {
      claimed.push({ ...port, hostPort: await probe(port.protocol, port.hostIp, port.hostPort) })
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      const why = code === "EADDRINUSE" ? "is already in use" : code === "EADDRNOTAVAIL" ? "is not an address of this host" : code === "EACCES" ? "needs privileges to bind" : `cannot be bound (${code})`
      throw new Error(`host port ${port.protocol}/${port.hostIp}:${port.hostPort} ${why}`)
    }
  }
  return claimed
}

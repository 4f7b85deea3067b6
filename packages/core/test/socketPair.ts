import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/** A connected pair of unix sockets (a listening socket in a fresh temp dir, closed once connected). */
export const socketPair = async (): Promise<[net.Socket, net.Socket]> => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bl-pair-")), "s")
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(file, r))
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r))
  const client = net.connect(file)
  const other = await accepted
  server.close()
  return [client, other]
}

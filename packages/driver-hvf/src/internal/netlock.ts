/**
 * vmnet's NAT is one bridge for every VM of the Mac, and each networked box configures the same
 * static address (GUEST_NETWORK): two at once would collide, each breaking the other's network.
 * So a networked box holds a lock while it runs: a unix socket listening at a fixed path. It
 * needs no cleanup after a crash: a socket nobody accepts on is stale and is taken over.
 */
import * as fs from "node:fs"
import * as net from "node:net"

const listen = (file: string) =>
  new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer((socket) => socket.end(`${process.pid}\n`))
    server.once("error", reject)
    server.listen(file, () => {
      server.off("error", reject)
      resolve(server)
    })
  })

/** The pid the holder of `file` answers with, or undefined when nobody accepts there. */
const holder = (file: string) =>
  new Promise<string | undefined>((resolve) => {
    let answer = ""
    const socket = net.createConnection(file)
    socket.on("data", (d: Buffer) => (answer += d.toString()))
    socket.on("end", () => resolve(answer.trim() || "?"))
    socket.on("error", () => resolve(undefined))
  })

export interface NetworkLock {
  readonly release: () => void
}

/** Takes the lock at `file`, or rejects naming the process that holds it. */
export const takeNetworkLock = async (file: string): Promise<NetworkLock> => {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const server = await listen(file)
      return {
        release: () => {
          server.close()
          fs.rmSync(file, { force: true })
        }
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw e
      const pid = await holder(file)
      if (pid !== undefined) {
        throw new Error(`another hvf box with a network runs (its supervisor is pid ${pid}): on vmnet's shared NAT they would share one static address; stop it or use network "none"`)
      }
      // Stale: its holder is gone.
      fs.rmSync(file, { force: true })
    }
  }
  throw new Error(`cannot take the network lock ${file}`)
}

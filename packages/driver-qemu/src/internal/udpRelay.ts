/**
 * UDP port forwards that keep 10.0.2.2 away from the host's loopback.
 *
 * passt 2023-03 shows a datagram that arrives from the host's loopback to the guest as coming
 * from the gateway (10.0.2.2), and with `--no-map-gw` it sends the guest's reply to the real
 * 10.0.2.2, where it is lost. A datagram from any other address keeps its source in the guest,
 * and passt sends the reply back to that address. So each UDP forward is a relay: it listens on
 * the user's hostIp:hostPort and passes every client's datagrams on to passt's forward (on a
 * free loopback port) from a socket of its own bound to a non-loopback address of this host;
 * what comes back on that socket goes to the client.
 */
import { GUEST_NETWORK } from "@boxlite/core"
import * as dgram from "node:dgram"
import * as os from "node:os"

export interface UdpRelay {
  /** The loopback port passt's forward must listen on. */
  readonly innerPort: number
  /** Stops listening and closes every client's socket. */
  readonly close: () => Promise<void>
}

export interface UdpRelayOptions {
  /** A client silent this long loses its socket (a later datagram gets a new one). Default 180 s. */
  readonly idleMs?: number
  /** At most this many clients at once; the least recently active gives way. Default 1024. */
  readonly maxClients?: number
}

/**
 * The address the relay sends from: an IPv4 address of this host that is not loopback and not
 * the guest's own (passt rewrites both to the gateway), outside the guest's subnet if possible.
 */
export const relaySourceAddress = (interfaces: ReturnType<typeof os.networkInterfaces> = os.networkInterfaces()): string | undefined => {
  const candidates = Object.values(interfaces).flatMap((addresses) => addresses ?? [])
    .filter((a) => a.family === "IPv4" && !a.internal && !a.address.startsWith("127.") && a.address !== GUEST_NETWORK.address)
    .map((a) => a.address)
  const guestSubnet = GUEST_NETWORK.address.split(".").slice(0, 3).join(".") + "."
  return candidates.find((a) => !a.startsWith(guestSubnet)) ?? candidates[0]
}

const bind = (socket: dgram.Socket, address: string, port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    socket.once("error", reject)
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off("error", reject)
      resolve()
    })
  })

const closeQuietly = (socket: dgram.Socket): Promise<void> =>
  new Promise((resolve) => {
    try {
      socket.close(() => resolve())
    } catch {
      resolve() // already closed
    }
  })

/** A UDP port on 127.0.0.1 that was free a moment ago. */
export const freeLoopbackUdpPort = async (): Promise<number> => {
  const socket = dgram.createSocket("udp4")
  await bind(socket, "127.0.0.1", 0)
  const { port } = socket.address()
  await closeQuietly(socket)
  return port
}

interface Client {
  readonly socket: dgram.Socket
  readonly ready: Promise<void>
  lastActive: number
}

/**
 * Listens on `hostIp:hostPort` (rejects if it cannot bind) and relays to 127.0.0.1:innerPort
 * from `source`. Errors after that (a client gone, passt not listening yet) only drop a client.
 */
export const startUdpRelay = async (hostIp: string, hostPort: number, source: string, options: UdpRelayOptions = {}): Promise<UdpRelay> => {
  const idleMs = options.idleMs ?? 180_000
  const maxClients = options.maxClients ?? 1024
  const innerPort = await freeLoopbackUdpPort()
  const front = dgram.createSocket("udp4")
  await bind(front, hostIp, hostPort)
  // A send to a client that went away reports here; it must not end the process.
  front.on("error", () => {})
  // In insertion order = least recently active first (a client is re-inserted when active).
  const clients = new Map<string, Client>()
  let closed = false

  const drop = (key: string, client: Client) => {
    if (clients.get(key) === client) clients.delete(key)
    void closeQuietly(client.socket)
  }
  const open = (key: string, address: string, port: number): Client => {
    const socket = dgram.createSocket("udp4")
    const ready = bind(socket, source, 0).then(() =>
      new Promise<void>((resolve, reject) => socket.connect(innerPort, "127.0.0.1", (e?: Error) => (e ? reject(e) : resolve())))
    )
    const client: Client = { socket, ready, lastActive: Date.now() }
    // Connected: only passt's forward socket can answer on it, nobody else on the network.
    socket.on("message", (reply) => {
      client.lastActive = Date.now()
      front.send(reply, port, address)
    })
    socket.on("error", () => drop(key, client))
    ready.catch(() => drop(key, client))
    if (clients.size >= maxClients) {
      const [oldestKey, oldest] = clients.entries().next().value!
      drop(oldestKey, oldest)
    }
    return client
  }

  front.on("message", (datagram, from) => {
    if (closed) return
    const key = `${from.address}:${from.port}`
    const client = clients.get(key) ?? open(key, from.address, from.port)
    client.lastActive = Date.now()
    clients.delete(key)
    clients.set(key, client)
    client.ready.then(() => {
      try {
        client.socket.send(datagram)
      } catch {
        drop(key, client) // closed meanwhile
      }
    }, () => {})
  })

  const sweep = setInterval(() => {
    const now = Date.now()
    for (const [key, client] of clients) if (now - client.lastActive > idleMs) drop(key, client)
  }, Math.max(1000, idleMs / 4))
  sweep.unref()

  return {
    innerPort,
    close: async () => {
      closed = true
      clearInterval(sweep)
      const all = [...clients.values()]
      clients.clear()
      await Promise.all([...all.map((c) => closeQuietly(c.socket)), closeQuietly(front)])
    }
  }
}

/**
 * Where a server listens, and the one-server-per-home lock. A home is served by one server
 * at a time: executions and the sessions of kind boxes live in the server's process, so two
 * servers would each know half of them. A second one is refused, naming the first.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { BoxStateError, InvalidOptions } from "@boxlite/core"

export type Listen =
  | { readonly type: "unix"; readonly path: string }
  | { readonly type: "tcp"; readonly host: string; readonly port: number }

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"])

/** `--listen`: a socket path (`unix:///abs.sock` or `/abs.sock`), or `127.0.0.1:PORT`; default `<home>/boxlite.sock`. */
export const parseListen = (value: string | undefined, homeDir: string): Listen => {
  if (value === undefined || value === "") return { type: "unix", path: path.join(homeDir, "boxlite.sock") }
  if (value.startsWith("unix://")) return { type: "unix", path: path.resolve(value.slice("unix://".length)) }
  if (value.startsWith("/") || value.startsWith(".")) return { type: "unix", path: path.resolve(value) }
  const m = /^(.+):(\d+)$/.exec(value.replace(/^http:\/\//, ""))
  if (!m || Number(m[2]) > 65535) throw new InvalidOptions("listen", `a socket path or 127.0.0.1:PORT (got ${JSON.stringify(value)})`)
  // Never on a public address: the token travels in clear over plain HTTP.
  if (!LOOPBACK.has(m[1]!)) throw new InvalidOptions("listen", `TCP only on the loopback (127.0.0.1:PORT), got ${JSON.stringify(value)}`)
  return { type: "tcp", host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** `<home>/serve.lock` (created exclusively) naming this process; a stale one (its process gone) is replaced. */
export const acquireLock = async (homeDir: string, listen: Listen): Promise<{ readonly release: () => Promise<void> }> => {
  await fs.mkdir(homeDir, { recursive: true, mode: 0o700 })
  const file = path.join(homeDir, "serve.lock")
  const where = listen.type === "unix" ? `unix://${listen.path}` : `http://${listen.host}:${listen.port}`
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(file, JSON.stringify({ pid: process.pid, listen: where }), { flag: "wx", mode: 0o600 })
      let released = false
      return {
        release: async () => {
          if (released) return
          released = true
          await fs.rm(file, { force: true })
        }
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
      const holder = JSON.parse(await fs.readFile(file, "utf8").catch(() => "{}")) as { pid?: number; listen?: string }
      if (typeof holder.pid === "number" && alive(holder.pid)) {
        throw new BoxStateError(`${homeDir} is already served by pid ${holder.pid} on ${holder.listen}: one server per home (use that one, or stop it)`)
      }
      await fs.rm(file, { force: true })
    }
  }
  throw new BoxStateError(`cannot take ${file}: another server is starting on ${homeDir}`)
}

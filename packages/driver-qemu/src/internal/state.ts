/**
 * Saving and restoring a VM's memory and device state with QEMU's migration stream. QEMU 7.2
 * can send it to a unix socket (`file:` URIs came in 8.2, `fd:` wants a descriptor passed over
 * the monitor): the jailed QEMU connects through an O_PATH descriptor of the driver's listening
 * socket (`unix:/proc/self/fd/N`), and the driver writes what arrives to the file, hashing it.
 * The stream skips zero pages, so its size is the memory the guest has used. A restore starts
 * QEMU with `-incoming defer`, checks the signature, then feeds the file on a descriptor.
 */
import type { SavedState, VmSpec } from "@boxlite/driver"
import { SnapshotError } from "@boxlite/driver"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { PassThrough } from "node:stream"
import { pipeline } from "node:stream/promises"
import type { Qmp } from "./qmp.js"

/** Linux's O_PATH: Node has no constant for it. */
const O_PATH = 0o10000000
/** Migration speed cap (bytes/s): QEMU's default of 128 MiB/s would pace a save to a local file. */
const MAX_BANDWIDTH = 64 * 1024 ** 3
const POLL_MS = 5

/** The machine, CPU model and devices of a QEMU command line: what its saved state describes. */
export const deviceModel = (args: ReadonlyArray<string>): string =>
  args.flatMap((arg, i) => (["-M", "-cpu", "-device", "-m", "-smp"].includes(args[i - 1] ?? "") ? [`${args[i - 1]} ${arg}`] : [])).join(" ")

/**
 * What must match for a saved state to load into a new VM, as a JSON object (keys sorted):
 * `devices` is deviceModel of the VM's command line.
 */
export const stateSignature = (spec: VmSpec, devices: string, accelerator: string, qemuVersion: string): string => {
  const identity = (file: string) => {
    const stat = fs.statSync(file)
    return `${path.basename(file)} ${stat.size} ${Math.round(stat.mtimeMs)}`
  }
  const fields: Record<string, string> = {
    accelerator,
    cpus: String(spec.cpus),
    devices,
    // The guest agent lives in the initramfs: a rebuilt guest is another guest.
    initrd: identity(spec.initrd),
    kernel: identity(spec.kernel),
    memoryMib: String(spec.memoryMib),
    network: spec.network ? "virtio-net" : "none",
    qemu: qemuVersion,
    volumes: String(spec.volumes.length)
  }
  return JSON.stringify(fields)
}

/** The fields that differ between two signatures, for the error message. */
export const signatureDifference = (saved: string, current: string): string => {
  let a: Record<string, string>
  try {
    a = JSON.parse(saved) as Record<string, string>
  } catch {
    return "the snapshot's signature is unreadable"
  }
  const b = JSON.parse(current) as Record<string, string>
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()
  return keys.filter((k) => a[k] !== b[k]).map((k) => `${k}: saved "${a[k] ?? "-"}", now "${b[k] ?? "-"}"`).join("; ")
}

const until = async (qmp: Qmp, exited: Promise<unknown>, what: string): Promise<void> => {
  let gone = false
  void exited.then(() => (gone = true))
  while (true) {
    const status = (await qmp.execute("query-migrate")) as { status?: string; "error-desc"?: string }
    if (status.status === "completed") return
    if (status.status === "failed" || status.status === "cancelled") throw new Error(`${what} failed: ${status["error-desc"] ?? status.status}`)
    if (gone) throw new Error(`QEMU exited during ${what}`)
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}

/** The listening socket a VM's saved state arrives on, and the O_PATH descriptor QEMU reaches it through. */
export class StateReceiver {
  private pathFdOpen = true
  private constructor(private readonly server: net.Server, readonly pathFd: number) {}

  /** `owner`: the VMM's uid and gid when it runs as another user (connecting needs write permission on the socket). */
  static async listen(runDir: string, owner?: { readonly uid: number; readonly gid: number }): Promise<StateReceiver> {
    const socketPath = path.join(runDir, "state.sock")
    const server = net.createServer()
    server.maxConnections = 1
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(socketPath, resolve)
    })
    fs.chmodSync(socketPath, 0o600)
    if (owner) fs.chownSync(socketPath, owner.uid, owner.gid)
    return new StateReceiver(server, fs.openSync(socketPath, O_PATH))
  }

  /** This process's copy of the O_PATH descriptor, once QEMU has its own. Idempotent. */
  closePathFd(): void {
    if (this.pathFdOpen) fs.closeSync(this.pathFd)
    this.pathFdOpen = false
  }

  close(): void {
    this.closePathFd()
    this.server.close()
  }

  /**
   * Saves the paused VM into `file`; the connection QEMU opens for it is the only one taken. A
   * stream past `maxBytes` (the guest's RAM and some device state: more is a QEMU turned against
   * the host, filling its disk) is cut and the save fails.
   */
  async save(qmp: Qmp, exited: Promise<unknown>, fdInQemu: number, file: string, signature: string, maxBytes: number): Promise<SavedState> {
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants
    const out = fs.createWriteStream("", { fd: fs.openSync(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600), flush: true })
    const hash = createHash("sha256")
    let bytes = 0
    const counter = new PassThrough()
    counter.on("data", (chunk: Buffer) => {
      hash.update(chunk)
      bytes += chunk.length
      if (bytes > maxBytes) counter.destroy(new Error(`the VM state exceeds ${maxBytes} bytes`))
    })
    const received = new Promise<void>((resolve, reject) => {
      this.server.once("connection", (socket) => pipeline(socket, counter, out).then(resolve, reject))
    })
    // Awaited after the migration ends; a failure before then must not count as unhandled.
    received.catch(() => undefined)
    try {
      await qmp.execute("migrate-set-parameters", { "max-bandwidth": MAX_BANDWIDTH })
      await qmp.execute("migrate", { uri: `unix:/proc/self/fd/${fdInQemu}` })
      await until(qmp, exited, "saving the VM state")
      await received
    } catch (e) {
      this.server.removeAllListeners("connection")
      out.destroy()
      fs.rmSync(file, { force: true })
      throw e
    }
    return { file, bytes, sha256: hash.digest("hex"), signature }
  }
}

/** The sha256 of a saved state, read in large chunks (it is tens of MB, and on the path of a warm start). */
export const sha256Of = async (file: string): Promise<string> => {
  const hash = createHash("sha256")
  await pipeline(fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 }), hash)
  return hash.digest("hex")
}

/**
 * Loads `state` into a QEMU started with `-incoming defer` and the state file on `fdInQemu`,
 * then lets the guest run. A signature that differs is `incompatible`; a file whose hash
 * (`hashed`, computed meanwhile: sha256Of) differs, or that QEMU refuses, `corrupt`.
 */
export const restoreState = async (
  qmp: Qmp,
  exited: Promise<unknown>,
  fdInQemu: number,
  state: SavedState,
  hashed: Promise<string>,
  signature: string
): Promise<void> => {
  if (state.signature !== signature) {
    throw new SnapshotError("incompatible", `the snapshot cannot run here: ${signatureDifference(state.signature, signature)}`)
  }
  try {
    await qmp.execute("migrate-incoming", { uri: `fd:${fdInQemu}` })
    await until(qmp, exited, "loading the VM state")
  } catch (e) {
    throw new SnapshotError("corrupt", `the snapshot's state (${state.file}) cannot be loaded: ${(e as Error).message}`)
  }
  const sha256 = await hashed.catch((e: Error) => `unreadable: ${e.message}`)
  if (sha256 !== state.sha256) throw new SnapshotError("corrupt", `the snapshot's state (${state.file}) is damaged: its sha256 is ${sha256}, ${state.sha256} was saved`)
  await qmp.execute("cont")
}

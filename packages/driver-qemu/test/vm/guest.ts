/**
 * What the driver's VM tests need beside the driver: a root disk from the busybox test image,
 * the built guest, and a minimal agent client (HELLO, CONFIGURE, EXEC) to look from inside.
 */
import { encodeFrame, FrameDecoder, FrameType, PROTOCOL_VERSION } from "@boxlite/agent-protocol"
import type { VmSpec } from "@boxlite/driver"
import { guestArtifacts } from "@boxlite/guest"
import { parseReference, resolveLayout } from "@boxlite/oci"
import { make as diskStore } from "@boxlite/storage"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Duplex } from "node:stream"
import { fileURLToPath } from "node:url"

const BUSYBOX = `oci:${fileURLToPath(new URL("../../../../images/out/busybox", import.meta.url))}:latest`

/** Makes VmSpecs whose boxes live under one temporary home; each gets a fresh disk. */
export const specMaker = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-dq-"))
  const store = diskStore({ rootfsDir: path.join(home, "rootfs") })
  const image = await Effect.runPromise(Effect.orDie(resolveLayout(parseReference(BUSYBOX) as Parameters<typeof resolveLayout>[0])))
  const base = await Effect.runPromise(Effect.orDie(store.baseFor(image)))
  const guest = guestArtifacts()
  let boxes = 0
  const spec = async (overrides: Partial<VmSpec>): Promise<VmSpec> => {
    // Random tail: the driver names the VM's run directory after it.
    const boxId = `01DRIVERTEST${String(++boxes).padStart(6, "0")}${randomBytes(4).toString("hex").toUpperCase()}`
    const dir = path.join(home, boxId)
    fs.mkdirSync(dir)
    await Effect.runPromise(Effect.orDie(store.createBoxDisk(base, path.join(dir, "disk.qcow2"))))
    return { boxId, dir, kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline, rootDisk: path.join(dir, "disk.qcow2"), rootDiskBase: base, cpus: 1, memoryMib: 512, network: undefined, volumes: [], ...overrides }
  }
  return { home, spec, cleanup: () => fs.rmSync(home, { recursive: true, force: true }) }
}

export interface Agent {
  readonly configure: (config: unknown) => Promise<{ readonly ok: boolean; readonly body: string }>
  /** Runs `sh -c script` in the guest; output is stdout and stderr together. */
  readonly sh: (script: string) => Promise<{ readonly exitCode: number; readonly output: string }>
}

export const connectAgent = async (channel: Duplex): Promise<Agent> => {
  const decoder = new FrameDecoder()
  const replies = new Map<number, (type: number, payload: string) => void>()
  const output = new Map<number, Array<string>>()
  channel.on("data", (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      const payload = Buffer.from(frame.payload).toString()
      if (frame.type === FrameType.STDOUT || frame.type === FrameType.STDERR) output.get(frame.stream)?.push(payload)
      else if (frame.type !== FrameType.STARTED && frame.type !== FrameType.CREDIT) replies.get(frame.stream)?.(frame.type, payload)
    }
  })
  const request = (type: number, stream: number, body: unknown) =>
    new Promise<{ type: number; payload: string }>((resolve) => {
      replies.set(stream, (replyType, payload) => resolve({ type: replyType, payload }))
      channel.write(encodeFrame(type, stream, Buffer.from(JSON.stringify(body))))
    })
  await request(FrameType.HELLO, 0, { version: PROTOCOL_VERSION })
  let streams = 0
  return {
    configure: async (config) => {
      const reply = await request(FrameType.CONFIGURE, 0, config)
      return { ok: reply.type === FrameType.CONFIGURED, body: reply.payload }
    },
    sh: async (script) => {
      const stream = ++streams
      output.set(stream, [])
      const exit = request(FrameType.EXEC, stream, { argv: ["/bin/sh", "-c", script], env: [["PATH", "/bin:/sbin:/usr/bin:/usr/sbin"]] })
      channel.write(encodeFrame(FrameType.STDIN_CLOSE, stream))
      const reply = await exit
      if (reply.type !== FrameType.EXIT) throw new Error(`exec failed: ${reply.payload}`)
      return { exitCode: (JSON.parse(reply.payload) as { exitCode: number }).exitCode, output: output.get(stream)!.join("") }
    }
  }
}

/** Test helpers: the fake cloud-hypervisor, a box's files, its run directory and what the fake recorded. */
import { FrameDecoder, FrameType, encodeFrame } from "@boxlite/agent-protocol"
import type { VmSpec } from "@boxlite/driver"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Duplex } from "node:stream"
import { fileURLToPath } from "node:url"

export const FAKE_CH = fileURLToPath(new URL("./fixtures/fake-cloud-hypervisor.mjs", import.meta.url))

/** A KVM verdict for a host that has none: these tests run the fake, not a guest. */
export const fakeKvm = async () => ({ usable: true as const, reason: "KVM assumed by the test (fake cloud-hypervisor)" })

export const BASE_CMDLINE = "quiet reboot=t panic=-1"

/** A box's files in a fresh directory: kernel, initrd, its disk, and a raw base for overlays. */
export const boxFiles = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-kvm-test-"))
  const file = (name: string, bytes: number) => {
    const p = path.join(dir, name)
    fs.writeFileSync(p, Buffer.alloc(bytes, 1))
    return p
  }
  return { dir, kernel: file("vmlinuz", 1000), initrd: file("initrd.img", 2000), base: file("base.raw", 4096), disk: file("disk.qcow2", 3000) }
}

let counter = 0
export const specFor = (files: ReturnType<typeof boxFiles>, change: Partial<VmSpec> = {}): VmSpec => ({
  boxId: `01KVMTEST${process.pid}${String(counter++).padStart(4, "0")}`,
  dir: files.dir,
  kernel: files.kernel,
  initrd: files.initrd,
  cmdline: BASE_CMDLINE,
  rootDisk: files.disk,
  rootDiskFormat: "raw",
  cpus: 2,
  memoryMib: 512,
  network: undefined,
  volumes: [],
  ...change
})

/** The run directories of a box (`boxlite-<last 8 of its id>-*` under the temp directory). */
export const runDirsOf = (boxId: string): Array<string> =>
  fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`boxlite-${boxId.slice(-8)}-`)).map((n) => path.join(os.tmpdir(), n))

export type Call =
  | { kind: "argv"; argv: Array<string>; fds: Array<number | null>; sees: { capEff: string; etc: boolean; home: boolean; kvm: boolean } }
  | { kind: "api"; method: string; endpoint: string; body?: unknown }
  | { kind: "opened"; payload: Array<boolean>; disks: Array<boolean>; sockets: Array<boolean> }
  | { kind: "vsock"; request: string; accepted: boolean }

/** What the fake recorded in the run directory (read while the VM runs: the directory goes with it). */
export const callsOf = (boxId: string): { runDir: string; calls: Array<Call> } => {
  const [runDir] = runDirsOf(boxId)
  if (!runDir) throw new Error(`no run directory for ${boxId}`)
  const text = fs.readFileSync(path.join(runDir, "calls.jsonl"), "utf8")
  return { runDir, calls: text.trim().split("\n").map((l) => JSON.parse(l) as Call) }
}

/** Processes whose command line mentions `text` (a run directory, a box id). */
export const processesMentioning = (text: string): Array<string> => {
  try {
    return execFileSync("pgrep", ["-f", "--", text]).toString().trim().split("\n").filter(Boolean)
  } catch {
    return []
  }
}

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Speaks to the agent on `stream`: HELLO, then EXEC argv; resolves with its stdout. */
export const execThroughAgent = (agent: Duplex, argv: Array<string>): Promise<string> =>
  new Promise((resolve, reject) => {
    const decoder = new FrameDecoder()
    let out = ""
    agent.on("data", (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.type === FrameType.HELLO_ACK) agent.write(encodeFrame(FrameType.EXEC, 1, Buffer.from(JSON.stringify({ argv, env: [] }))))
        if (frame.type === FrameType.STDOUT) out += Buffer.from(frame.payload).toString()
        if (frame.type === FrameType.EXIT) resolve(out)
      }
    })
    agent.once("error", reject)
    agent.write(encodeFrame(FrameType.HELLO, 0, Buffer.from(JSON.stringify({ version: 1 }))))
  })

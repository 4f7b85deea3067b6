import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { descriptorsFor, deviceModel, qemuArgs, signatureDifference, StateReceiver } from "@boxlite/driver-qemu"
import type { VmSpec } from "@boxlite/driver"

type Qmp = Parameters<StateReceiver["save"]>[0]

const dirs: Array<string> = []
afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })))
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-state-"))
  dirs.push(dir)
  return dir
}

/** A QMP stand-in whose `migrate` connects to the state socket (as QEMU does through /proc/self/fd) and sends `bytes`. */
const fakeQemu = (socketPath: string, bytes: Buffer) => {
  let status = "active"
  return {
    execute: async (command: string) => {
      if (command === "migrate") {
        const socket = net.connect(socketPath)
        socket.on("error", () => (status = "failed"))
        socket.end(bytes, () => (status = "completed"))
      }
      if (command === "query-migrate") return { status }
      return {}
    }
  } as unknown as Qmp
}

describe("StateReceiver", () => {
  it("writes what QEMU sends to the file (0600), with its size and sha256", async () => {
    const dir = tempDir()
    const receiver = await StateReceiver.listen(dir)
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17, 7)
    const file = path.join(dir, "memory.state")
    const saved = await receiver.save(fakeQemu(path.join(dir, "state.sock"), bytes), new Promise(() => undefined), 12, file, "sig", 16 * 1024 * 1024)
    receiver.close()
    expect(saved).toEqual({ file, bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex"), signature: "sig" })
    expect(fs.readFileSync(file).equals(bytes)).toBe(true)
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
  })

  it("cuts a stream past its bound (a QEMU filling the host's disk) and leaves no file", async () => {
    const dir = tempDir()
    const receiver = await StateReceiver.listen(dir)
    const file = path.join(dir, "memory.state")
    const failure = await receiver.save(fakeQemu(path.join(dir, "state.sock"), Buffer.alloc(2 * 1024 * 1024)), new Promise(() => undefined), 12, file, "sig", 1024 * 1024)
      .then(() => undefined, (e: Error) => e)
    receiver.close()
    expect(failure?.message).toMatch(/exceeds 1048576 bytes|failed/)
    expect(fs.existsSync(file)).toBe(false)
  })

  it("never writes through a file planted where the state goes", async () => {
    const dir = tempDir()
    const receiver = await StateReceiver.listen(dir)
    const target = path.join(dir, "target")
    fs.writeFileSync(target, "keep")
    fs.symlinkSync(target, path.join(dir, "memory.state"))
    const failure = await receiver.save(fakeQemu(path.join(dir, "state.sock"), Buffer.from("x")), new Promise(() => undefined), 12, path.join(dir, "memory.state"), "sig", 1024)
      .then(() => undefined, (e: Error) => e)
    receiver.close()
    expect(failure).toBeInstanceOf(Error)
    expect(fs.readFileSync(target, "utf8")).toBe("keep")
  })
})

describe("signatureDifference", () => {
  it("names each field that differs, with both values", () => {
    const saved = JSON.stringify({ qemu: "7.2.0", memoryMib: "512", cpus: "1" })
    const now = JSON.stringify({ qemu: "8.0.0", memoryMib: "512", cpus: "2" })
    expect(signatureDifference(saved, now)).toBe(`cpus: saved "1", now "2"; qemu: saved "7.2.0", now "8.0.0"`)
    expect(signatureDifference("not json", now)).toMatch(/unreadable/)
  })
})

describe("deviceModel", () => {
  it("is the machine, CPU, memory and devices of the command line, without descriptors or paths", () => {
    const spec: VmSpec = {
      boxId: "b", dir: "/box", kernel: "/k", initrd: "/i", cmdline: "", rootDisk: "/d", cpus: 1, memoryMib: 512,
      network: { allowHostLoopback: false, ports: [] }, volumes: []
    }
    const model = deviceModel(qemuArgs(spec, "microvm", { accelerator: "kvm", reason: "" }, descriptorsFor(spec)))
    expect(model).toBe("-M microvm -cpu host -m 512M -smp 1 -device virtio-blk-device,drive=root -device virtio-serial-device " +
      "-device virtserialport,chardev=agent,name=boxlite.agent -device virtio-balloon-device,free-page-reporting=on -device virtio-net-device,netdev=n0")
    const offline: VmSpec = { ...spec, network: undefined }
    const other = deviceModel(qemuArgs(offline, "microvm", { accelerator: "kvm", reason: "" }, descriptorsFor(offline)))
    expect(other).not.toBe(model)
  })
})

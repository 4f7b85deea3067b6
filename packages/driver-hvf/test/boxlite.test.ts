// The whole path with the hvf driver: runtime -> box record (driver named) -> supervisor
// process (loads the driver by that name) -> vfkit (the fake) -> vsock -> the fake's agent.
import { macOf } from "@boxlite/driver-hvf"
import { Boxlite } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, expect, it } from "vitest"

const FAKE = fileURLToPath(new URL("./fixtures/fake-vfkit.mjs", import.meta.url))
const DRIVER = fileURLToPath(new URL("./fixtures/hvf-as-if-on-a-mac.mjs", import.meta.url))
const BUSYBOX = `oci:${fileURLToPath(new URL("../../../images/out/busybox", import.meta.url))}:latest`

let tmp: string
const saved = { ...process.env }
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hvf-e2e-"))
  const guest = path.join(tmp, "guest")
  fs.mkdirSync(guest)
  const image = Buffer.alloc(64)
  image.write("ARM\x64", 56, "latin1")
  fs.writeFileSync(path.join(guest, "Image"), image)
  fs.writeFileSync(path.join(guest, "initrd.cpio"), "")
  fs.writeFileSync(path.join(guest, "manifest.json"), JSON.stringify({ kernel: "Image", initrd: "initrd.cpio", cmdline: "quiet" }))
  Object.assign(process.env, { BOXLITE_VFKIT: FAKE, BOXLITE_HVF_GUEST: guest, FAKE_VFKIT_RECORD: path.join(tmp, "record.jsonl"), HVF_TEST_NETWORK_LOCK: path.join(tmp, "net.sock") })
})
afterAll(() => {
  for (const key of ["BOXLITE_VFKIT", "BOXLITE_HVF_GUEST", "FAKE_VFKIT_RECORD", "HVF_TEST_NETWORK_LOCK"]) {
    if (saved[key] === undefined) delete process.env[key]
    else process.env[key] = saved[key]
  }
  fs.rmSync(tmp, { recursive: true, force: true })
})

it("new Boxlite({ driver }) with the hvf driver runs an exec through vfkit and the vsock agent", async () => {
  const home = path.join(tmp, "home")
  const runtime = new Boxlite({ homeDir: home, driver: DRIVER })
  try {
    const info = await runtime.info()
    expect(info.hypervisor).toMatchObject({ driver: "hvf", accelerator: "hvf", transport: "vsock" })
    const box = await runtime.create({ image: BUSYBOX })
    const execution = await box.exec("echo", ["hi"])
    expect(await execution.stdout().text()).toBe("hi\n")
    expect((await execution.wait()).exitCode).toBe(0)
    // The disk is a raw copy of the image's base, which the record says vfkit boots.
    const dir = path.join(home, "boxes", box.id)
    const argv = (JSON.parse(fs.readFileSync(path.join(tmp, "record.jsonl"), "utf8").split("\n")[0]!) as { argv: Array<string> }).argv
    expect(argv).toContain(`virtio-blk,path=${path.join(dir, "disk.raw")}`)
    expect(argv).toContain(`virtio-net,nat,mac=${macOf(box.id)}`)
    // The agent was told the vmnet NAT's addresses.
    expect(fs.readFileSync(path.join(dir, "console.log"), "utf8")).toMatch(/configured \{"network":\{"address":"192\.168\.64\.250","prefixLength":24,"gateway":"192\.168\.64\.1","dns":\["192\.168\.64\.1"\],"mtu":1500\}/)
    // Stopping removes it (autoRemove): through the agent's SHUTDOWN, vfkit exits.
    await box.stop()
    expect(fs.existsSync(dir)).toBe(false)
    expect(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`boxlite-${box.id.slice(-8)}-`))).toEqual([])
  } finally {
    await runtime.close()
  }
}, 30_000)

it("new Boxlite({ driver: \"hvf\" }) loads this package by its built-in name, and on this Linux host says macOS only", async () => {
  const runtime = new Boxlite({ homeDir: path.join(tmp, "home-builtin"), driver: "hvf" })
  try {
    const e = await runtime.info().then(() => expect.unreachable("info on Linux"), (e: unknown) => e as Error & { _tag: string })
    expect(e._tag).toBe("HypervisorUnavailable")
    expect(e.message).toMatch(/hvf driver runs on macOS only/)
  } finally {
    await runtime.close()
  }
})

/**
 * End to end through the runtime, no VM booted: `new Boxlite({ driver: "kvm" })` records the
 * driver with the box, the box's supervisor process loads @boxlite/driver-kvm by that name, which
 * runs the fake cloud-hypervisor (BOXLITE_CLOUD_HYPERVISOR) jailed, and exec goes through the
 * runtime's agent protocol over the fake's hybrid vsock.
 */
import { Boxlite } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { FAKE_CH, processesMentioning } from "./helpers.js"

const repo = fileURLToPath(new URL("../../../", import.meta.url))
const BUSYBOX = `oci:${path.join(repo, "images/out/busybox")}:latest`

describe.skipIf(!fs.existsSync(path.join(repo, "images/out/busybox")))("Boxlite on the kvm driver (fake cloud-hypervisor)", () => {
  const saved = { ch: process.env["BOXLITE_CLOUD_HYPERVISOR"], accel: process.env["BOXLITE_ACCEL"] }
  let home: string
  let runtime: Boxlite

  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-kvm-"))
    // The supervisor inherits both: the fake for the binary, and KVM assumed (this host's is PVM).
    process.env["BOXLITE_CLOUD_HYPERVISOR"] = FAKE_CH
    process.env["BOXLITE_ACCEL"] = "kvm"
    runtime = new Boxlite({ homeDir: home, driver: "kvm" })
  })
  afterAll(async () => {
    await runtime?.close()
    for (const [key, value] of [["BOXLITE_CLOUD_HYPERVISOR", saved.ch], ["BOXLITE_ACCEL", saved.accel]] as const) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
    fs.rmSync(home, { recursive: true, force: true })
  })

  it("creates a box on the kvm driver and runs echo through the fake agent", async () => {
    const box = await runtime.create({ image: BUSYBOX, network: "none" })
    const execution = await box.exec("echo", ["hi"])
    expect(await execution.stdout().text()).toBe("hi\n")
    expect(await execution.wait()).toEqual({ exitCode: 0 })
    const info = await box.info()
    expect(info.status).toBe("running")
    await box.stop()
    expect(processesMentioning(FAKE_CH)).toEqual([])
    expect(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`boxlite-${box.id.slice(-8)}-`))).toEqual([])
  }, 30_000)
})

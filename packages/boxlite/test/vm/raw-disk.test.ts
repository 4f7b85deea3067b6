/**
 * Raw root disks (the format vfkit needs, and BOXLITE_QEMU_DISK=raw under QEMU), booted for real:
 * the runtime copies the image's base, the guest writes it, a kept disk keeps the writes, an
 * ephemeral one starts over, and snapshots (which layer qcow2 disks) are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Boxlite, HypervisorUnavailable, SnapshotError } from "boxlite"
import * as fs from "node:fs"
import * as path from "node:path"
import { boxDirs, BUSYBOX, qemuProcessesUnder, sh, tempHome } from "./helpers.js"

const home = tempHome()
let runtime: Boxlite
const previous = process.env["BOXLITE_QEMU_DISK"]

beforeAll(() => {
  // Read by the QEMU driver when the runtime's layer is built (and by the box's supervisor, which inherits it).
  process.env["BOXLITE_QEMU_DISK"] = "raw"
  runtime = new Boxlite({ homeDir: home })
})
afterAll(async () => {
  await runtime.close()
  if (previous === undefined) delete process.env["BOXLITE_QEMU_DISK"]
  else process.env["BOXLITE_QEMU_DISK"] = previous
  expect(qemuProcessesUnder(home)).toEqual([])
  fs.rmSync(home, { recursive: true, force: true })
})

describe("raw root disks", () => {
  it("a kept disk is a raw copy of the base that keeps the guest's writes across a restart; snapshots are refused", async () => {
    const box = await runtime.create({ image: BUSYBOX, diskSizeGb: 1, autoRemove: false })
    const dir = path.join(home, "boxes", box.id)
    expect(fs.readdirSync(dir)).toContain("disk.raw")
    expect(fs.readdirSync(dir)).not.toContain("disk.qcow2")
    expect(fs.statSync(path.join(dir, "disk.raw")).size).toBe(1024 ** 3)
    expect((await runtime.info()).capabilities.diskFormats[0]).toBe("raw")
    expect((await sh(box, "echo kept > /root/mark && sync && cat /root/mark")).out).toBe("kept")
    const snapshot = await box.snapshot().catch((e: unknown) => e)
    expect(snapshot).toBeInstanceOf(SnapshotError)
    expect((snapshot as SnapshotError).reason).toBe("unsupported")
    expect((snapshot as Error).message).toMatch(/raw root disk/)
    await box.stop()
    expect((await sh(box, "cat /root/mark")).out).toBe("kept")
    expect((await box.info()).driver).toBe("qemu")
    await runtime.remove(box.id, { force: true })
    expect(boxDirs(home)).toEqual([])
  }, 240_000)

  it("an ephemeral disk is copied from the base again at each start", async () => {
    const box = await runtime.create({ image: BUSYBOX, autoRemove: false })
    expect((await sh(box, "echo gone > /root/mark && sync && cat /root/mark")).out).toBe("gone")
    await box.stop()
    expect((await sh(box, "cat /root/mark 2>&1; true")).out).toMatch(/No such file/)
    await runtime.remove(box.id, { force: true })
  }, 240_000)

  it("a format the driver does not know is HypervisorUnavailable naming the variable", async () => {
    process.env["BOXLITE_QEMU_DISK"] = "vhd"
    const other = new Boxlite({ homeDir: tempHome() })
    try {
      const error = await other.info().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(HypervisorUnavailable)
      expect((error as Error).message).toMatch(/BOXLITE_QEMU_DISK must be qcow2 or raw \(got "vhd"\)/)
    } finally {
      process.env["BOXLITE_QEMU_DISK"] = "raw"
      await other.close()
    }
  })
})

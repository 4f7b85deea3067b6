/**
 * The real thing: boxes on cloud-hypervisor and KVM. Runs only where the KVM probe says KVM can
 * run a guest AND a real cloud-hypervisor is found (BOXLITE_CLOUD_HYPERVISOR or PATH, not the
 * test fake); elsewhere it is skipped and says why.
 */
import { findOnPath } from "@boxlite/driver-qemu"
import { kvmVerdict } from "@boxlite/driver-kvm"
import { Boxlite } from "boxlite"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const repo = fileURLToPath(new URL("../../../../", import.meta.url))
const BUSYBOX = `oci:${path.join(repo, "images/out/busybox")}:latest`

const verdict = await kvmVerdict()
const binary = findOnPath(process.env["BOXLITE_CLOUD_HYPERVISOR"] ?? "cloud-hypervisor")
const skipReason = !verdict.usable
  ? `KVM is not usable here: ${verdict.reason}`
  : !binary
  ? "no cloud-hypervisor binary (set BOXLITE_CLOUD_HYPERVISOR or put it on PATH)"
  : binary.includes("fake-cloud-hypervisor")
  ? `${binary} is the test fake`
  : !fs.existsSync(path.join(repo, "images/out/busybox"))
  ? "images/out/busybox is not built (images/build.sh)"
  : undefined
if (skipReason) console.log(`driver-kvm VM tests skipped: ${skipReason}`)

/** cloud-hypervisor processes with a file under `dir` open (the box disk is passed as a descriptor). */
const vmmsUnder = (dir: string): Array<string> => {
  let pids: Array<string> = []
  try {
    pids = execFileSync("pgrep", ["cloud-hyperviso"]).toString().trim().split("\n").filter(Boolean)
  } catch {
    return []
  }
  return pids.filter((pid) => {
    try {
      return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(`${dir}/`))
    } catch {
      return false
    }
  })
}

describe.skipIf(skipReason !== undefined)("boxes on cloud-hypervisor (real KVM)", () => {
  let home: string
  let shared: string
  let runtime: Boxlite

  // Made here, not in the describe body: that runs even when the suite is skipped.
  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-kvm-vm-"))
    shared = fs.mkdtempSync(path.join(os.tmpdir(), "bl-kvm-share-"))
    runtime = new Boxlite({ homeDir: home, driver: "kvm" })
  })
  afterAll(async () => {
    await runtime?.close()
    expect(vmmsUnder(home)).toEqual([])
    fs.rmSync(home, { recursive: true, force: true })
    fs.rmSync(shared, { recursive: true, force: true })
  })

  it("boots a box and runs echo", async () => {
    const box = await runtime.create({ image: BUSYBOX, network: "none" })
    const execution = await box.exec("echo", ["hello from cloud-hypervisor"])
    expect(await execution.stdout().text()).toBe("hello from cloud-hypervisor\n")
    expect(await execution.wait()).toEqual({ exitCode: 0 })
    const info = await runtime.info()
    expect(info).toMatchObject({ hypervisor: { driver: "kvm", accelerator: "kvm", transport: "vsock" } })
    await box.stop()
    expect(vmmsUnder(home)).toEqual([])
  })

  it("shares a volume and gives a network", async () => {
    fs.writeFileSync(path.join(shared, "from-host.txt"), "written on the host\n")
    const box = await runtime.create({ image: BUSYBOX, volumes: [{ hostPath: shared, guestPath: "/mnt/shared" }] })
    const read = await box.exec("cat", ["/mnt/shared/from-host.txt"])
    expect(await read.stdout().text()).toBe("written on the host\n")
    const route = await box.exec("ip", ["route"])
    expect(await route.stdout().text()).toContain("default via 10.0.2.2")
    await box.stop()
  })
})

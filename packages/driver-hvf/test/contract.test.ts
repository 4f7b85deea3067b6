/**
 * The driver contract (@boxlite/driver-testkit) on the hvf driver, with the fake vfkit (its
 * command line, REST API, vsock socket and a fake agent) and the Mac's checks injected: what the
 * driver does with vfkit's answers, not that a real vfkit boots (that needs a Mac).
 */
import { driverContract } from "@boxlite/driver-testkit"
import { make } from "@boxlite/driver-hvf"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"

const FAKE_VFKIT = fileURLToPath(new URL("./fixtures/fake-vfkit.mjs", import.meta.url))
const guestDir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-hvf-guest-"))
afterAll(() => fs.rmSync(guestDir, { recursive: true, force: true }))

driverContract("hvf", {
  make: () => make({ platform: "darwin", arch: "arm64", hvSupport: () => true, binary: FAKE_VFKIT }),
  guest: () => {
    // An arm64 Image as far as the driver checks: "ARM\x64" at byte 56.
    const dir = guestDir
    const image = Buffer.alloc(64)
    image.write("ARM\x64", 56, "latin1")
    fs.writeFileSync(path.join(dir, "Image"), image)
    fs.writeFileSync(path.join(dir, "initrd"), "")
    return { kernel: path.join(dir, "Image"), initrd: path.join(dir, "initrd"), cmdline: "quiet" }
  },
  timeoutMs: 20_000
})

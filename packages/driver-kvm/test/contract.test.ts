/**
 * The driver contract (@boxlite/driver-testkit) on the kvm driver, with the fake cloud-hypervisor
 * (its REST API, hybrid vsock and a fake agent): what the driver does with the VMM's answers,
 * not that a real cloud-hypervisor boots (test/vm/kvm.test.ts does that on a KVM host).
 */
import { driverContract } from "@boxlite/driver-testkit"
import { make } from "@boxlite/driver-kvm"
import * as fs from "node:fs"
import { afterAll } from "vitest"
import { boxFiles, FAKE_CH, fakeKvm } from "./helpers.js"

const files = boxFiles()
afterAll(() => fs.rmSync(files.dir, { recursive: true, force: true }))

driverContract("kvm", {
  make: () => make({ binary: FAKE_CH, kvm: fakeKvm }),
  guest: () => ({ kernel: files.kernel, initrd: files.initrd, cmdline: "quiet" }),
  timeoutMs: 30_000
})

/**
 * The driver contract (@boxlite/driver-testkit) on the real QEMU driver and the real guest,
 * under whatever accelerator this host has (TCG here). The cases share one root disk (an
 * overlay of the busybox image), booted one VM at a time.
 */
import { guestArtifacts } from "@boxlite/guest"
import { driverContract } from "@boxlite/driver-testkit"
import { make } from "@boxlite/driver-qemu"
import { parseReference, resolveLayout } from "@boxlite/oci"
import { make as diskStore } from "@boxlite/storage"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"

const BUSYBOX = `oci:${fileURLToPath(new URL("../../../../images/out/busybox", import.meta.url))}:latest`
const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-dqc-"))
afterAll(() => fs.rmSync(home, { recursive: true, force: true }))

/** The busybox image's ext4 base and a qcow2 overlay of it. */
const rootDisk = async () => {
  const store = diskStore({ rootfsDir: path.join(home, "rootfs") })
  const image = await Effect.runPromise(Effect.orDie(resolveLayout(parseReference(BUSYBOX) as Parameters<typeof resolveLayout>[0])))
  const base = await Effect.runPromise(Effect.orDie(store.baseFor(image)))
  const disk = path.join(home, "disk.qcow2")
  await Effect.runPromise(Effect.orDie(store.createBoxDisk(base, disk)))
  return { rootDisk: disk, rootDiskBase: base, rootDiskFormat: "qcow2" as const }
}

driverContract("qemu", { make: () => make(), guest: guestArtifacts, spec: rootDisk, timeoutMs: 120_000 })

// The floor most benchmarks compare with: a bare QEMU boot of the box's kernel and initramfs.
import { guestArtifacts } from "@boxlite/guest"
import { descriptorsFor, make as qemuDriver, qemuArgs } from "@boxlite/driver-qemu"
import { spawn } from "node:child_process"
import * as fs from "node:fs"

/** QEMU started with the box's own arguments, the agent told to power off as soon as it runs. */
export const bareBoot = async (dir) => {
  const guest = guestArtifacts()
  const { Effect } = await import("effect")
  const info = await Effect.runPromise(qemuDriver().info)
  const spec = { boxId: "bench", dir, kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline} boxlite.probe=1`, rootDisk: "", cpus: 1, memoryMib: 512, network: undefined, volumes: [] }
  const fds = descriptorsFor(spec)
  const args = qemuArgs(spec, "microvm,x-option-roms=off", { accelerator: info.accelerator, reason: "" }, fds)
  // Only what the kernel needs to reach /init: no disk, no agent channel.
  const cut = args.indexOf("-add-fd")
  const bare = args.slice(0, cut)
  const stdio = Array(Math.max(fds.console, fds.monitor, fds.kernel, fds.initrd) + 1).fill("ignore")
  stdio[fds.console] = "pipe"
  stdio[fds.monitor] = "pipe"
  stdio[fds.kernel] = fs.openSync(guest.kernel, "r")
  stdio[fds.initrd] = fs.openSync(guest.initrd, "r")
  let output = ""
  const start = performance.now()
  await new Promise((resolve, reject) => {
    const qemu = spawn("qemu-system-x86_64", bare, { stdio })
    qemu.stdio[fds.console].on("data", (d) => (output += d))
    qemu.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`bare boot exited ${code}`))))
  })
  fs.closeSync(stdio[fds.kernel])
  fs.closeSync(stdio[fds.initrd])
  if (!output.includes("boxlite-agent: init")) throw new Error("bare boot did not reach /init")
  return performance.now() - start
}


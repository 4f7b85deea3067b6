// Drivers: which VMMs this host can run, and a box on the first that can.
//   node examples/drivers.mjs
import { Boxlite } from "boxlite"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`

// Each built-in driver says whether it can run here, and why not (HypervisorUnavailable).
let usable
for (const driver of ["kvm", "hvf", "qemu"]) {
  const runtime = new Boxlite({ driver })
  try {
    const { hypervisor, capabilities } = await runtime.info()
    const can = Object.entries(capabilities).filter(([, v]) => v === true).map(([k]) => k)
    console.log(`${driver}: ${hypervisor.accelerator} over ${hypervisor.transport}; disks ${capabilities.diskFormats.join("/")}; ${can.join(", ")}`)
    usable ??= driver
  } catch (e) {
    console.log(`${driver}: ${e.name}: ${e.message.split(";")[0]}`)
  } finally {
    await runtime.close()
  }
}

// New boxes run on the runtime's driver, and each box remembers its own.
const runtime = new Boxlite({ driver: usable })
try {
  const box = await runtime.create({ image })
  const run = await box.exec("uname", ["-sr"])
  const output = await run.stdout().text()
  await run.wait()
  console.log(`a box on ${(await box.info()).driver}: ${output.trim()}`)
  await box.stop()
} finally {
  await runtime.close()
}

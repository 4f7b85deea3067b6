// Paths of the built guest (kernel, initramfs with the agent) from dist/manifest.json.
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const dist = fileURLToPath(new URL("./dist/", import.meta.url))

export function guestArtifacts() {
  let manifest
  try {
    manifest = JSON.parse(readFileSync(`${dist}manifest.json`, "utf8"))
  } catch {
    throw new Error(`no guest build in ${dist}: run \`npm run build -w @boxlite/guest\``)
  }
  return {
    kernel: `${dist}${manifest.kernel}`,
    initrd: `${dist}${manifest.initrd}`,
    // BOXLITE_GUEST_CMDLINE_EXTRA: words appended to the guest kernel's command line, for tests
    // of agent options no driver sets yet (e.g. `boxlite.vsock=1024`). Read by the box's
    // supervisor, which inherits the environment of the process that created the box.
    cmdline: [manifest.cmdline, process.env.BOXLITE_GUEST_CMDLINE_EXTRA?.trim()].filter(Boolean).join(" "),
    kernelVersion: manifest.kernelVersion
  }
}

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
    cmdline: manifest.cmdline,
    kernelVersion: manifest.kernelVersion
  }
}

import type { Box } from "boxlite"
import { execFileSync, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repo = fileURLToPath(new URL("../../../../", import.meta.url))

/** The offline test images built by images/build.sh. */
export const BUSYBOX = `oci:${path.join(repo, "images/out/busybox")}:latest`
export const PYTHON = `oci:${path.join(repo, "images/out/python")}:slim`

/** A fresh home directory per test file; kept short so agent socket paths fit. */
export const tempHome = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "bl-"))

/**
 * QEMU processes holding a file under `dir` open (their box disks are under it): the jailed
 * QEMU names no path of the box on its command line, it gets descriptors.
 */
export const qemuProcessesUnder = (dir: string): Array<string> => {
  const holds = (pid: string) => {
    try {
      return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(`${dir}/`)
        } catch {
          return false
        }
      })
    } catch {
      return false
    }
  }
  try {
    return execFileSync("pgrep", ["^qemu-system"]).toString().trim().split("\n").filter((pid) => pid && holds(pid))
  } catch {
    return []
  }
}

export const boxDirs = (home: string): Array<string> => {
  try {
    return fs.readdirSync(path.join(home, "boxes"))
  } catch {
    return []
  }
}

/** A PATH with every program of the current one except those matching `hidden` (e.g. QEMU). */
export const pathWithout = (hidden: RegExp): string => {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), "bl-path-"))
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      if (!hidden.test(name) && !fs.existsSync(path.join(bin, name))) fs.symlinkSync(path.join(dir, name), path.join(bin, name))
    }
  }
  return bin
}

/**
 * A copy of the OCI layout behind `image` whose config is changed by `patch` (e.g. a User),
 * with the config, manifest and index digests rewritten to match.
 */
export const layoutWithConfig = (image: string, patch: (config: Record<string, unknown>) => void): string => {
  const source = image.slice("oci:".length, image.lastIndexOf(":"))
  const tag = image.slice(image.lastIndexOf(":") + 1)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-layout-"))
  fs.cpSync(source, dir, { recursive: true })
  const blob = (digest: string) => path.join(dir, "blobs/sha256", digest.slice("sha256:".length))
  const put = (json: unknown) => {
    const bytes = Buffer.from(JSON.stringify(json))
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`
    fs.writeFileSync(blob(digest), bytes)
    return { digest, size: bytes.length }
  }
  const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"))
  const entry = index.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.["org.opencontainers.image.ref.name"] === tag)
  const manifest = JSON.parse(fs.readFileSync(blob(entry.digest), "utf8"))
  const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), "utf8"))
  patch(config)
  manifest.config = { ...manifest.config, ...put(config) }
  Object.assign(entry, put(manifest))
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify(index))
  return `oci:${dir}:${tag}`
}

/** Runs a shell script in the box; its trimmed stdout and stderr and its exit code. */
export const sh = async (box: Box, script: string): Promise<{ out: string; err: string; exitCode: number }> => {
  const execution = await box.exec("sh", ["-c", script])
  const [out, err, result] = await Promise.all([execution.stdout().text(), execution.stderr().text(), execution.wait()])
  return { out: out.trim(), err: err.trim(), exitCode: result.exitCode }
}

/**
 * A /24 for this run's test hosts (`10.A.B`, no `.0`): derived from the pid and `salt` (one per
 * test file), skipping prefixes this machine already routes, so concurrent runs and the host's
 * own networks never collide.
 */
export const uniqueSubnet = (salt: number): string => {
  const routes = execFileSync("ip", ["-4", "route", "show", "table", "all"]).toString()
  for (let attempt = 0; attempt < 256; attempt++) {
    const n = (process.pid * 7 + salt * 131 + attempt * 257) % (100 * 256)
    const subnet = `10.${128 + Math.floor(n / 256)}.${n % 256}`
    if (!routes.includes(`${subnet}.`)) return subnet
  }
  throw new Error("no free 10.x.y.0/24 for a test host")
}

/**
 * A test host of this run: network namespace `ns` behind a veth pair, `<ns>h` on this machine
 * with `<subnet>.1/24`, `<ns>n` inside with `<subnet>.2/24` and `extraAddresses` (CIDR), both
 * up with the namespace's loopback; `defaultRoute` routes the namespace back through `<subnet>.1`.
 */
export const addTestHost = (ns: string, subnet: string, options: { readonly extraAddresses?: ReadonlyArray<string>; readonly defaultRoute?: boolean } = {}): void => {
  execFileSync("ip", ["netns", "add", ns])
  execFileSync("ip", ["link", "add", `${ns}h`, "type", "veth", "peer", "name", `${ns}n`])
  execFileSync("ip", ["link", "set", `${ns}n`, "netns", ns])
  execFileSync("ip", ["addr", "add", `${subnet}.1/24`, "dev", `${ns}h`])
  execFileSync("ip", ["link", "set", `${ns}h`, "up"])
  for (const address of [`${subnet}.2/24`, ...(options.extraAddresses ?? [])]) execFileSync("ip", ["-n", ns, "addr", "add", address, "dev", `${ns}n`])
  execFileSync("ip", ["-n", ns, "link", "set", `${ns}n`, "up"])
  execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"])
  if (options.defaultRoute) execFileSync("ip", ["-n", ns, "route", "add", "default", "via", `${subnet}.1`])
}

/** Removes addTestHost's namespace and veth pair (the pair may already be gone with the namespace). */
export const removeTestHost = (ns: string): void => {
  spawnSync("ip", ["link", "del", `${ns}h`], { stdio: "ignore" })
  execFileSync("ip", ["netns", "del", ns])
}

import { execFileSync } from "node:child_process"
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

/** QEMU processes whose command line mentions `dir` (their box dirs are under it). */
export const qemuProcessesUnder = (dir: string): Array<string> => {
  try {
    return execFileSync("pgrep", ["-f", `qemu-system.*${dir}`]).toString().trim().split("\n").filter(Boolean)
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

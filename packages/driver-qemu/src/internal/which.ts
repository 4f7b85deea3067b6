import * as fs from "node:fs"
import * as path from "node:path"

/** `name` if it is a path that exists, else the first executable `name` on PATH. */
export const findOnPath = (name: string): string | undefined => {
  if (name.includes("/")) return fs.existsSync(name) ? name : undefined
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {
      continue
    }
  }
  return undefined
}

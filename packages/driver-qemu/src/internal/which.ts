import * as fs from "node:fs"
import * as path from "node:path"

/** A regular file this process may execute. */
export const isExecutable = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/**
 * `name` if it is a path that exists, else the first executable `name` in a directory of PATH,
 * then of `alsoIn` (e.g. the sbin directories a non-root PATH often lacks).
 */
export const findOnPath = (name: string, alsoIn: ReadonlyArray<string> = []): string | undefined => {
  if (name.includes("/")) return fs.existsSync(name) ? name : undefined
  return [...(process.env["PATH"] ?? "").split(path.delimiter), ...alsoIn].filter(Boolean).map((dir) => path.join(dir, name)).find(isExecutable)
}

/**
 * A driver's run folder for a box: `<tmp>/boxlite-<last 8 of the box id>-XXXXXX`, short, because
 * unix socket paths are limited to 104-108 bytes wherever the home is. The driver removes its
 * folder when the VM's scope closes; a supervisor killed with SIGKILL never gets there, so the
 * runtime, finding the box dead, removes them by this name (removeRunDirs).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const prefixOf = (boxId: string): string => `boxlite-${boxId.slice(-8)}-`

/** Creates a new run folder for `boxId` (mode 0700). */
export const makeRunDir = (boxId: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefixOf(boxId)))

/**
 * Removes every run folder of `id` (of any driver). Only folders of this user: the temp dir is shared.
 */
export const removeRunDirs = (id: string): void => {
  const prefix = prefixOf(id)
  const uid = process.getuid?.()
  let entries: Array<string>
  try {
    entries = fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith(prefix))
  } catch {
    return
  }
  for (const name of entries) {
    const dir = path.join(os.tmpdir(), name)
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false })
    if (stat?.isDirectory() && (uid === undefined || stat.uid === uid)) fs.rmSync(dir, { recursive: true, force: true })
  }
}

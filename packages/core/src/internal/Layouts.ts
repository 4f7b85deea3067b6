/**
 * The OCI layouts boxes were made from: read in place, so the content store has no record of
 * them. `<rootfs>/layouts.json` names them by absolute path; `images.list` shows those whose
 * root filesystem base is still there (until `prune` deletes it).
 */
import type { ImageInfo, ResolvedImage } from "@boxlite/oci"
import { parseReference } from "@boxlite/oci"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

const layoutsFile = (rootfsDir: string) => path.join(rootfsDir, "layouts.json")

type LayoutRecords = Record<string, ImageInfo>

export const readLayouts = (rootfsDir: string): Promise<LayoutRecords> =>
  fs.readFile(layoutsFile(rootfsDir), "utf8").then((text) => JSON.parse(text) as LayoutRecords).catch(() => ({}))

/**
 * Notes that a box was made from the layout `image` (a no-op for registry images). Two
 * processes recording at once may lose one entry until its next use: a listing, not state.
 */
export const recordLayout = (rootfsDir: string, image: ResolvedImage): Effect.Effect<void> =>
  Effect.promise(async () => {
    const ref = parseReference(image.reference)
    if (ref._tag !== "Layout") return
    const reference = `oci:${path.resolve(ref.path)}${ref.tag === undefined ? "" : `:${ref.tag}`}`
    const layouts = await readLayouts(rootfsDir)
    layouts[reference] = {
      reference,
      manifestDigest: image.manifestDigest,
      configDigest: image.configDigest,
      platform: { os: image.os, architecture: image.architecture },
      pulledAt: new Date().toISOString(),
      size: image.layers.reduce((sum, layer) => sum + layer.size, 0)
    }
    const temp = `${layoutsFile(rootfsDir)}.${process.pid}`
    await fs.writeFile(temp, JSON.stringify(layouts), { mode: 0o600 })
    await fs.rename(temp, layoutsFile(rootfsDir))
  }).pipe(Effect.catchCause(() => Effect.void))

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
import type { StorageError } from "../Errors.js"
import { orWarn, tryFs } from "./Fs.js"

const layoutsFile = (rootfsDir: string) => path.join(rootfsDir, "layouts.json")

type LayoutRecords = Record<string, ImageInfo>

/** The layouts recorded; none when the file is missing or unreadable as JSON (a listing, rebuilt by the next use). */
export const readLayouts = (rootfsDir: string): Effect.Effect<LayoutRecords, StorageError> =>
  tryFs(`cannot read ${layoutsFile(rootfsDir)}`, () =>
    fs.readFile(layoutsFile(rootfsDir), "utf8").catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? "{}" : Promise.reject(e)))).pipe(
      Effect.map((text) => {
        try {
          return JSON.parse(text) as LayoutRecords
        } catch {
          return {}
        }
      })
    )

/**
 * Notes that a box was made from the layout `image` (a no-op for registry images). Two
 * processes recording at once may lose one entry until its next use: a listing, not state.
 */
export const recordLayout = (rootfsDir: string, image: ResolvedImage): Effect.Effect<void> =>
  Effect.gen(function*() {
    const ref = parseReference(image.reference)
    if (ref._tag !== "Layout") return
    const reference = `oci:${path.resolve(ref.path)}${ref.tag === undefined ? "" : `:${ref.tag}`}`
    const layouts = { ...(yield* readLayouts(rootfsDir)) }
    layouts[reference] = {
      reference,
      manifestDigest: image.manifestDigest,
      configDigest: image.configDigest,
      platform: { os: image.os, architecture: image.architecture },
      pulledAt: new Date().toISOString(),
      size: image.layers.reduce((sum, layer) => sum + layer.size, 0)
    }
    const temp = `${layoutsFile(rootfsDir)}.${process.pid}`
    yield* tryFs(`cannot write ${layoutsFile(rootfsDir)}`, async () => {
      await fs.writeFile(temp, JSON.stringify(layouts), { mode: 0o600 })
      await fs.rename(temp, layoutsFile(rootfsDir))
    })
  }).pipe(orWarn, Effect.asVoid)

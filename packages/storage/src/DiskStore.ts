/**
 * Disks of boxes (a containerd "snapshotter" for VMs): one read-only ext4 base per image,
 * built once from its layers, and a qcow2 copy-on-write disk per box on top of it.
 */
import { BoxliteError } from "@boxlite/driver"
import { Context, Effect, Fiber, Layer, Schema } from "effect"
import type { ResolvedImage } from "@boxlite/oci"
import { randomBytes } from "node:crypto"
import { constants as fsConstants } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { runCommand } from "./internal/command.js"
import type { RootfsJob } from "./internal/build-rootfs.js"

/** Building or creating a disk, or another file of BoxLite's home, failed. */
export class StorageError extends BoxliteError.extend<StorageError>("StorageError")({
  _tag: Schema.tag("StorageError")
}) {}

export interface DiskStoreOptions {
  /** Directory of the per-image ext4 bases (`<home>/images/rootfs`). */
  readonly rootfsDir: string
  /**
   * Free space of an ephemeral box disk (one created without a size): the disk is the base plus
   * this, and the guest grows the filesystem into it at boot. Default 1 GiB. Bases themselves
   * keep only a little slack, so any size that holds the image is a valid box disk size.
   */
  readonly headroomBytes?: number
  /**
   * Limit on the bytes an image's layers unpack to, together (their tar streams after
   * decompression): a build that goes past it fails, so a compression bomb cannot fill the
   * disk. Default 32 GiB.
   */
  readonly maxUnpackedBytes?: number
  /**
   * Unpack inside fakeroot, so ownership and device nodes reach the image without host root.
   * Default: only when this process is not root (a root process sets them for real, faster).
   */
  readonly useFakeroot?: boolean
}

export class DiskStore extends Context.Service<DiskStore, {
  /** The ext4 base of `image`: built on first use, then reused (also by other processes). */
  readonly baseFor: (image: ResolvedImage) => Effect.Effect<string, StorageError>
  /**
   * Creates (or recreates, empty) a qcow2 disk at `diskPath` whose unwritten blocks read from
   * `base`, of `sizeBytes` (at least the base's size), by default the base plus `headroomBytes`;
   * the guest grows its filesystem to the disk at boot.
   */
  readonly createBoxDisk: (base: string, diskPath: string, sizeBytes?: number) => Effect.Effect<void, StorageError>
  /**
   * Creates (or recreates, empty) a qcow2 disk at `diskPath` over the read-only qcow2 `layer` (a
   * snapshot's disk), of its size. The layer was written by a VMM: its header is read for the
   * size only, and no backing file it names is opened.
   */
  readonly createLayeredDisk: (layer: string, diskPath: string) => Effect.Effect<void, StorageError>
  /**
   * Creates (or recreates) a raw disk at `diskPath`: a copy of `base`, a clone where the file
   * system shares blocks (APFS, btrfs, XFS: instant, no space until written), then grown to
   * `sizeBytes` (default: the base plus headroom, as createBoxDisk) as a sparse tail. For
   * drivers that boot no qcow2 (vfkit).
   */
  readonly createRawDisk: (base: string, diskPath: string, sizeBytes?: number) => Effect.Effect<void, StorageError>
}>()("@boxlite/storage/DiskStore") {}

/** The file name of the base built for an image config digest, inside `rootfsDir`. */
/** The format's version is in the name (v2: 4 KiB blocks, little slack), so older bases are rebuilt, not reused. */
export const baseFileName = (configDigest: string): string => `${configDigest.replace(":", "-")}.v2.ext4`

const BUILD_SCRIPT = fileURLToPath(new URL("./internal/build-rootfs.js", import.meta.url))

const failure = (what: string) => (e: { readonly command: string; readonly code: unknown; readonly stderr: string }) =>
  new StorageError({
    message: e.code === "ENOENT"
      ? `${what}: ${e.command.split(" ")[0]} is not installed (apt-get install fakeroot e2fsprogs qemu-utils)`
      : `${what}: ${e.stderr || `${e.command} exited with ${String(e.code)}`}`
  })

const MiB = 1024 * 1024
const GiB = 1024 * MiB
/** Free space left in a base filesystem, beyond the files and ext4's metadata. */
const BASE_SLACK_BYTES = 64 * MiB
const roundUpToMiB = (bytes: number) => Math.ceil(bytes / MiB) * MiB

export const make = (options: DiskStoreOptions): Context.Service.Shape<typeof DiskStore> => {
  const useFakeroot = options.useFakeroot ?? process.getuid?.() !== 0
  /** Builds under way in this process, by base file: a second caller joins the first's. */
  const building = new Map<string, Fiber.Fiber<string, StorageError>>()

  const build = (image: ResolvedImage, final: string): Effect.Effect<string, StorageError> => {
    const what = `building the root filesystem of ${image.reference}`
    const io = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (e) => new StorageError({ message: `${what}: ${(e as Error).message}` }) })
    const work = path.join(options.rootfsDir, `.build-${randomBytes(6).toString("hex")}`)
    const job: RootfsJob = {
      tree: path.join(work, "tree"),
      image: path.join(work, "rootfs.ext4"),
      layers: image.layers.map((l) => ({ digest: l.digest, path: l.path, compression: l.compression })),
      headroomBytes: BASE_SLACK_BYTES,
      maxUnpackedBytes: options.maxUnpackedBytes ?? 32 * 1024 * 1024 * 1024
    }
    const jobFile = path.join(work, "job.json")
    return Effect.acquireUseRelease(
      io(() => fs.mkdir(options.rootfsDir, { recursive: true }).then(() => fs.mkdir(work))),
      () =>
        io(() => fs.writeFile(jobFile, JSON.stringify(job))).pipe(
          Effect.andThen(
            (useFakeroot
              ? runCommand("fakeroot", ["--", process.execPath, BUILD_SCRIPT, jobFile])
              : runCommand(process.execPath, [BUILD_SCRIPT, jobFile])).pipe(Effect.mapError(failure(what)))
          ),
          // link() refuses to replace: if another process finished first, its base (which its
          // boxes may already use as a backing file) stays and ours is discarded.
          Effect.andThen(io(() => fs.link(job.image, final).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== "EEXIST") throw e
          }))),
          Effect.as(final)
        ),
      () => io(() => fs.rm(work, { recursive: true, force: true })).pipe(Effect.catch((e) => Effect.logWarning(e.message)))
    )
  }

  return {
    baseFor: (image) =>
      Effect.gen(function*() {
        const final = path.join(options.rootfsDir, baseFileName(image.configDigest))
        if (yield* Effect.promise(() => fs.access(final).then(() => true, () => false))) return final
        let pending = building.get(final)
        if (!pending) {
          // Detached, like the build a Promise was: a caller that gives up does not cancel it for the others.
          pending = yield* build(image, final).pipe(Effect.ensuring(Effect.sync(() => building.delete(final))), Effect.forkDetach)
          building.set(final, pending)
        }
        return yield* Fiber.join(pending)
      }),

    createBoxDisk: (base, diskPath, sizeBytes) =>
      Effect.tryPromise({
        try: async () => sizeBytes ?? roundUpToMiB((await fs.stat(base)).size + (options.headroomBytes ?? GiB)),
        catch: (e) => new StorageError({ message: `creating the box disk ${diskPath}: ${(e as Error).message}` })
      }).pipe(
        Effect.flatMap((size) =>
          runCommand("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", diskPath, String(size)]).pipe(
            Effect.asVoid,
            Effect.mapError(failure(`creating the box disk ${diskPath}`))
          )
        )
      ),

    createLayeredDisk: (layer, diskPath) =>
      Effect.tryPromise({
        try: async () => {
          await fs.rm(diskPath, { force: true })
          return await qcow2VirtualSize(layer)
        },
        catch: (e) => new StorageError({ message: `creating the box disk ${diskPath}: ${(e as Error).message}` })
      }).pipe(
        // -u: qemu-img would otherwise open the layer's backing chain, as its header names it.
        Effect.flatMap((size) => runCommand("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", layer, "-F", "qcow2", diskPath, String(size)])),
        Effect.asVoid,
        Effect.mapError((e) => (e instanceof StorageError ? e : failure(`creating the box disk ${diskPath}`)(e)))
      ),

    createRawDisk: (base, diskPath, sizeBytes) =>
      Effect.tryPromise({
        try: async () => {
          const baseBytes = (await fs.stat(base)).size
          await fs.rm(diskPath, { force: true })
          await fs.copyFile(base, diskPath, fsConstants.COPYFILE_FICLONE)
          await fs.truncate(diskPath, Math.max(baseBytes, sizeBytes ?? roundUpToMiB(baseBytes + (options.headroomBytes ?? GiB))))
        },
        catch: (e) => new StorageError({ message: `creating the box disk ${diskPath}: ${(e as Error).message}` })
      })
  }
}

/** Past this a qcow2 header is lying (the largest box disk is 16 TiB, diskSizeGb's bound). */
const MAX_VIRTUAL_SIZE = 16 * 1024 ** 4

/** The virtual size in a qcow2 header (magic "QFI\xfb", size a big-endian u64 at byte 24). */
const qcow2VirtualSize = async (file: string): Promise<number> => {
  const handle = await fs.open(file, "r")
  try {
    const header = Buffer.alloc(32)
    await handle.read(header, 0, 32, 0)
    if (header.readUInt32BE(0) !== 0x514649fb) throw new Error(`${file} is not a qcow2 image`)
    const size = Number(header.readBigUInt64BE(24))
    if (size <= 0 || size > MAX_VIRTUAL_SIZE) throw new Error(`${file} has an impossible virtual size (${size})`)
    return size
  } finally {
    await handle.close()
  }
}

export const layer = (options: DiskStoreOptions): Layer.Layer<DiskStore> => Layer.succeed(DiskStore, make(options))

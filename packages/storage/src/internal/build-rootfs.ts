/**
 * Child process entry, run as `fakeroot -- node build-rootfs.js <job.json>`: unpacks the layers
 * into a tree and writes it into an ext4 image with mke2fs, in one fakeroot session so the
 * ownership and modes recorded while unpacking end up in the image. No host root needed.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import { promisify } from "node:util"
import { applyLayer, type LayerSpec, UnpackBudget } from "./unpack.js"

export interface RootfsJob {
  readonly tree: string
  readonly image: string
  readonly layers: ReadonlyArray<LayerSpec>
  /** Free space to leave in the filesystem for the box's writes. */
  readonly headroomBytes: number
  /** Limit on the tar bytes all layers unpack to, together. */
  readonly maxUnpackedBytes: number
}

const run = promisify(execFile)
const MiB = 1024 * 1024

const main = async () => {
  const job = JSON.parse(await fs.readFile(process.argv[2] ?? "", "utf8")) as RootfsJob
  await fs.mkdir(job.tree, { recursive: true })
  const budget = new UnpackBudget(job.maxUnpackedBytes)
  for (const layer of job.layers) await applyLayer(job.tree, layer, budget)
  // Mount points the guest agent needs, in case the image lacks them.
  for (const dir of ["proc", "sys", "dev", "run", "tmp"]) {
    const created = await fs.mkdir(`${job.tree}/${dir}`, { recursive: true })
    if (created !== undefined && dir === "tmp") await fs.chmod(created, 0o1777)
  }
  const { stdout } = await run("du", ["-sb", job.tree])
  const used = Number(stdout.split("\t")[0])
  // ext4 metadata (inode tables, journal) needs room beyond the file bytes.
  const sizeMiB = Math.ceil((used * 1.15 + job.headroomBytes) / MiB) + 64
  // 4 KiB blocks whatever the size (mke2fs picks 1 KiB for small ones): the guest grows the
  // filesystem into the box's disk at boot, and 1 KiB groups made that 16x the work.
  await run("mke2fs", ["-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", "-d", job.tree, job.image, `${sizeMiB}M`])
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
  process.exit(1)
})

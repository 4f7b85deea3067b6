/** Docker-like text output: aligned tables, "5 minutes ago", sizes, the pull progress bar. */
import type { BoxInfo, ImageInfo, PullProgress, SnapshotInfo } from "@boxlite/core"

/** Columns padded to their widest cell, three spaces apart, as `docker ps` prints them. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3))).join("").trimEnd()
  return [header, ...rows].map((r) => `${line(r)}\n`).join("")
}

export const ago = (date: Date, now = Date.now()): string => {
  const seconds = Math.max(0, Math.round((now - date.getTime()) / 1000))
  const [n, unit] = seconds < 60 ? [seconds, "second"] : seconds < 3600 ? [Math.floor(seconds / 60), "minute"]
    : seconds < 86400 ? [Math.floor(seconds / 3600), "hour"] : [Math.floor(seconds / 86400), "day"]
  return seconds < 1 ? "Less than a second ago" : `${n} ${unit}${n === 1 ? "" : "s"} ago`
}

/** Decimal units, as Docker prints sizes. */
export const size = (bytes: number): string =>
  bytes < 1e3 ? `${bytes}B` : bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)}kB` : bytes < 1e9 ? `${(bytes / 1e6).toFixed(1)}MB` : `${(bytes / 1e9).toFixed(2)}GB`

/** `ls`: one row per box, like `docker ps -a` (every box, running or not). */
export const boxTable = (boxes: ReadonlyArray<BoxInfo>, now = Date.now()): string =>
  table(
    ["BOX ID", "IMAGE", "CREATED", "STATUS", "PORTS", "NAMES"],
    boxes.map((b) => [
      b.id,
      b.image,
      ago(b.createdAt, now),
      b.status === "failed" && b.reason !== undefined ? `failed: ${b.reason}` : b.status,
      b.ports.map((p) => `${p.hostIp}:${p.hostPort}->${p.guestPort}/${p.protocol}`).join(", "),
      b.name ?? ""
    ])
  )

/** `snapshot ls`: like `images`, with the box each was taken of. */
export const snapshotTable = (snapshots: ReadonlyArray<SnapshotInfo>, now = Date.now()): string =>
  table(
    ["SNAPSHOT ID", "NAME", "BOX", "IMAGE", "CREATED", "MEMORY", "SIZE"],
    snapshots.map((s) => [s.id, s.name ?? "", s.boxId, s.image, ago(s.createdAt, now), size(s.stateBytes), size(s.sizeBytes)])
  )

/** `images`: pulled images and the OCI layouts (`oci:`) boxes were made from, like `docker images`. */
export const imageTable = (images: ReadonlyArray<ImageInfo>, now = Date.now()): string => {
  /** `repo:tag` or `repo@digest`; an `oci:/path:tag` layout splits the same way. */
  const split = (reference: string): [string, string] => {
    const at = reference.indexOf("@")
    if (at >= 0) return [reference.slice(0, at), "<none>"]
    const colon = reference.lastIndexOf(":")
    return colon > reference.lastIndexOf("/") && colon > "oci:".length - 1 ? [reference.slice(0, colon), reference.slice(colon + 1)] : [reference, "latest"]
  }
  return table(
    ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
    images.map((i) => [...split(i.reference), i.manifestDigest.replace(/^sha256:/, "").slice(0, 12), ago(new Date(i.pulledAt), now), size(i.size)])
  )
}

const BAR_WIDTH = 30

/** One redrawn line for a terminal: `[=====>      ] 12.3MB/45.6MB  2/5 layers`. */
export const progressBar = (p: PullProgress): string => {
  const fraction = p.totalBytes > 0 ? Math.min(1, p.downloadedBytes / p.totalBytes) : p.phase === "done" ? 1 : 0
  const filled = Math.round(fraction * BAR_WIDTH)
  const bar = `${"=".repeat(Math.max(0, filled - 1))}${filled > 0 ? (filled === BAR_WIDTH ? "=" : ">") : ""}`.padEnd(BAR_WIDTH)
  const done = p.layers.filter((l) => l.cached || l.downloadedBytes >= l.totalBytes).length
  return `${p.phase.padEnd(11)} [${bar}] ${size(p.downloadedBytes)}/${size(p.totalBytes)}  ${done}/${p.layers.length} layers`
}

/**
 * Plain lines for a log or a pipe: what changed since `previous` (a layer finished, a phase
 * began), never a line per chunk.
 */
export const progressLines = (p: PullProgress, previous: PullProgress | undefined): Array<string> => {
  const lines: Array<string> = []
  if (p.phase !== previous?.phase && p.phase !== "done") lines.push(`${p.reference}: ${p.phase}`)
  const wasDone = new Set(previous?.layers.filter((l) => l.cached || l.downloadedBytes >= l.totalBytes).map((l) => l.digest))
  for (const l of p.layers) {
    if (wasDone.has(l.digest)) continue
    if (l.cached) lines.push(`${l.digest.slice(0, 19)}: already present`)
    else if (l.downloadedBytes >= l.totalBytes) lines.push(`${l.digest.slice(0, 19)}: downloaded ${size(l.totalBytes)}`)
  }
  if (p.phase === "done" && previous?.phase !== "done") lines.push(`${p.reference}: done, ${size(p.downloadedBytes)} downloaded`)
  return lines
}

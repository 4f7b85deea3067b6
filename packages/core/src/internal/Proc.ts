/**
 * Facts about host processes from /proc: whether a recorded process is still the same one
 * (a pid plus its start time, so a reused pid does not count), and its CPU time.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"

/** A process, identified across time: its pid and its start time (clock ticks since boot). */
export interface ProcessRef {
  readonly pid: number
  readonly startTime: string
}

interface Stat {
  readonly state: string
  readonly utime: number
  readonly stime: number
  readonly startTime: string
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
const readStat = (pid: number): Stat | undefined => {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  return { state: fields[0]!, utime: Number(fields[11]), stime: Number(fields[12]), startTime: fields[19]! }
}

export const refOf = (pid: number): ProcessRef | undefined => {
  const stat = readStat(pid)
  return stat ? { pid, startTime: stat.startTime } : undefined
}

export const selfRef = (): ProcessRef => refOf(process.pid)!

/** True while the process runs (a zombie has ended). */
export const isAlive = (ref: ProcessRef | undefined): boolean => {
  if (!ref) return false
  const stat = readStat(ref.pid)
  return stat !== undefined && stat.startTime === ref.startTime && stat.state !== "Z" && stat.state !== "X"
}

let ticksPerSecond: number | undefined

/** User + system CPU time of a live process, in ms; undefined once it is gone. */
export const cpuTimeMs = (pid: number): number | undefined => {
  const stat = readStat(pid)
  if (!stat) return undefined
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  return ((stat.utime + stat.stime) * 1000) / ticksPerSecond
}

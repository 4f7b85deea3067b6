/**
 * Facts about host processes: whether a recorded process is still the same one (a pid plus its
 * start time, so a reused pid does not count), and its CPU time. Linux reads /proc; other
 * systems (macOS) ask `ps`, since Node has no call for another process's start time.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"

/** A process, identified across time: its pid and its start time (as the system reports it). */
export interface ProcessRef {
  readonly pid: number
  readonly startTime: string
}

interface Stat {
  /** One letter, as ps and /proc say it (`R`, `S`, `Z`, ...). */
  readonly state: string
  readonly cpuMs: number
  readonly startTime: string
}

let ticksPerSecond: number | undefined

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
const readProcStat = (pid: number): Stat | undefined => {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  return { state: fields[0]!, cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond, startTime: fields[19]! }
}

/** `[[dd-]hh:]mm:ss[.cc]`, the CPU time `ps -o time=` prints, in ms. */
const parsePsTime = (text: string): number => {
  const [days, rest] = text.includes("-") ? [Number(text.split("-")[0]), text.split("-")[1]!] : [0, text]
  const parts = rest.split(":").map(Number)
  const seconds = parts.reduce((acc, n) => acc * 60 + n, 0)
  return Math.round((days * 86_400 + seconds) * 1000)
}

/** One line of `ps -o stat=,lstart=,time=`: state flags, the start as a date of five words, CPU time. */
export const parsePsLine = (line: string): Stat | undefined => {
  const words = line.trim().split(/\s+/)
  if (words.length < 7) return undefined
  return { state: words[0]![0]!, startTime: words.slice(1, 6).join(" "), cpuMs: parsePsTime(words[6]!) }
}

const readPsStat = (pid: number): Stat | undefined => {
  try {
    return parsePsLine(execFileSync("ps", ["-o", "stat=,lstart=,time=", "-p", String(pid)], { stdio: ["ignore", "pipe", "ignore"] }).toString())
  } catch {
    // ps exits 1 when there is no such process.
    return undefined
  }
}

/** How this host answers; `ps` is chosen by tests to exercise the non-Linux path here. */
export type ProcSource = "proc" | "ps"

const sourceOf = (source?: ProcSource): ProcSource => source ?? (process.platform === "linux" ? "proc" : "ps")

const readStat = (pid: number, source?: ProcSource): Stat | undefined =>
  !Number.isInteger(pid) || pid <= 0 ? undefined : sourceOf(source) === "proc" ? readProcStat(pid) : readPsStat(pid)

export const refOf = (pid: number, source?: ProcSource): ProcessRef | undefined => {
  const stat = readStat(pid, source)
  return stat ? { pid, startTime: stat.startTime } : undefined
}

export const selfRef = (): ProcessRef => refOf(process.pid)!

/** True when both name the same process (a pid reused later is another process). */
export const sameProcess = (a: ProcessRef | undefined, b: ProcessRef | undefined): boolean =>
  a !== undefined && b !== undefined && a.pid === b.pid && a.startTime === b.startTime

/** True while the process runs (a zombie has ended). */
export const isAlive = (ref: ProcessRef | undefined, source?: ProcSource): boolean => {
  if (!ref) return false
  const stat = readStat(ref.pid, source)
  return stat !== undefined && stat.startTime === ref.startTime && stat.state !== "Z" && stat.state !== "X"
}

/** User + system CPU time of a live process, in ms; undefined once it is gone. */
export const cpuTimeMs = (pid: number, source?: ProcSource): number | undefined => readStat(pid, source)?.cpuMs

// Density: what an idle box costs the host (see bench/README.md).
//   For each N in BENCH_BOXES (default "1,10,50"): create and start N busybox boxes (default
//   options: network on, 512 MiB), let them settle (BENCH_SETTLE_S, default 60 s after the last
//   start: a guest is busy for its first minute or so), then per box: PSS (/proc/PID/smaps_rollup) summed per process kind (QEMU, supervisor,
//   passt+pasta, virtiofsd, bwrap) and CPU (utime+stime) over an idle window (BENCH_IDLE_S,
//   default 30 s); host MemAvailable before / with the boxes / after, and loadavg. Then `true`
//   in every box (all must answer) and every box removed. Target: <= 80 MiB PSS per idle box.
//   BENCH_DETAIL=1 also prints one QEMU's largest mappings and one guest's /proc/meminfo.
//   BENCH_WARM=1 creates the boxes `warm`: resumed from one template snapshot instead of booted.
import { Boxlite } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { report, TARGETS } from "./targets.js"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`
const counts = (process.env.BENCH_BOXES ?? "1,10,50").split(",").map(Number)
const settleMs = Number(process.env.BENCH_SETTLE_S ?? 60) * 1000
const idleMs = Number(process.env.BENCH_IDLE_S ?? 30) * 1000
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 2)
const detail = process.env.BENCH_DETAIL === "1"
const warm = process.env.BENCH_WARM === "1"
const CLK_TCK = 100 // USER_HZ on Linux x86_64 and arm64

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const read = (file) => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return undefined // the process ended
  }
}
const memAvailableMib = () => Number(/MemAvailable:\s+(\d+)/.exec(read("/proc/meminfo"))[1]) / 1024
const loadavg = () => os.loadavg().map((l) => l.toFixed(2)).join(" ")
const ksm = () => {
  const k = (name) => read(`/sys/kernel/mm/ksm/${name}`)?.trim()
  return k("run") === "1" ? `on (pages_sharing ${k("pages_sharing")})` : "off"
}

/** Every process: pid -> { ppid, comm, cmdline }. */
const processTable = () => {
  const table = new Map()
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    const stat = read(`/proc/${pid}/stat`)
    const cmdline = read(`/proc/${pid}/cmdline`)
    if (!stat || cmdline === undefined) continue
    const close = stat.lastIndexOf(")")
    table.set(pid, { ppid: stat.slice(close + 2).split(" ")[1], comm: stat.slice(stat.indexOf("(") + 1, close), cmdline: cmdline.replaceAll("\0", " ") })
  }
  return table
}

const kindOf = ({ comm, cmdline }) =>
  comm.startsWith("qemu-system") ? "qemu"
  : cmdline.startsWith("boxlite-supervisor") ? "supervisor"
  : comm.startsWith("passt") || comm.startsWith("pasta") ? "passt"
  : comm.includes("virtiofsd") ? "virtiofsd"
  : comm === "bwrap" ? "bwrap"
  : "other"
const KINDS = ["qemu", "supervisor", "passt", "virtiofsd", "bwrap", "other"]

/**
 * The processes of each box: its supervisor (it names itself `boxlite-supervisor <id>`) and
 * all its descendants (bwrap, QEMU, passt, pasta, virtiofsd).
 */
const boxProcesses = (ids) => {
  const table = processTable()
  const children = new Map()
  for (const [pid, p] of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid])
  return ids.map((id) => {
    const root = [...table].find(([, p]) => p.cmdline.startsWith(`boxlite-supervisor ${id}`))?.[0]
    const pids = []
    for (let queue = root ? [root] : []; queue.length > 0;) {
      const pid = queue.shift()
      pids.push(pid)
      queue.push(...(children.get(pid) ?? []))
    }
    return pids.map((pid) => ({ pid, kind: kindOf(table.get(pid)) }))
  })
}

const pssMib = (pid) => Number(/^Pss:\s+(\d+)/m.exec(read(`/proc/${pid}/smaps_rollup`) ?? "Pss: 0")[1]) / 1024
const cpuTicks = (pid) => {
  const stat = read(`/proc/${pid}/stat`)
  if (!stat) return 0
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return Number(fields[11]) + Number(fields[12]) // utime, stime
}

/** One QEMU's mappings by resident size: where its PSS goes. */
const qemuMappings = (pid) => {
  const rows = []
  let current
  for (const line of (read(`/proc/${pid}/smaps`) ?? "").split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (m) rows.push(current = { size: (parseInt(m[2], 16) - parseInt(m[1], 16)) / 2 ** 20, perms: m[3], name: m[4] || "[anon]", pss: 0 })
    else if (line.startsWith("Pss:")) current.pss = Number(line.split(/\s+/)[1]) / 1024
  }
  return rows.sort((a, b) => b.pss - a.pss).slice(0, 8)
}

const inBatches = async (items, size, f) => {
  const out = []
  for (let i = 0; i < items.length; i += size) out.push(...await Promise.all(items.slice(i, i + size).map(f)))
  return out
}

const round = async (runtime, n) => {
  const memBefore = memAvailableMib()
  const loadBefore = loadavg()
  const startedAt = performance.now()
  const boxes = await inBatches(Array.from({ length: n }, (_, i) => i), concurrency, async () => {
    const box = await runtime.create({ image, warm })
    await box.start()
    return box
  })
  const startMs = performance.now() - startedAt
  await sleep(settleMs)

  const procs = boxProcesses(boxes.map((b) => b.id))
  if (procs.some((ps) => !ps.some((p) => p.kind === "qemu"))) throw new Error("a box has no QEMU process")
  const before = procs.map((ps) => ps.map((p) => cpuTicks(p.pid)))
  // KSM (host-wide, off by default) merges guest pages at the price of ksmd's CPU.
  const ksmd = [...processTable()].find(([, p]) => p.comm === "ksmd")?.[0]
  const ksmdBefore = ksmd ? cpuTicks(ksmd) : 0
  await sleep(idleMs)
  const ksmdCpu = ksmd ? (cpuTicks(ksmd) - ksmdBefore) / CLK_TCK / (idleMs / 1000) * 100 : 0
  const percent = (ticks) => ticks / CLK_TCK / (idleMs / 1000) * 100
  const cpuByKind = procs.map((ps, i) => Object.fromEntries(KINDS.map((k) => [k, percent(ps.reduce((sum, p, j) => p.kind === k ? sum + cpuTicks(p.pid) - before[i][j] : sum, 0))])))
  const cpu = cpuByKind.map((c) => KINDS.reduce((s, k) => s + c[k], 0))
  const pss = procs.map((ps) => Object.fromEntries(KINDS.map((k) => [k, ps.filter((p) => p.kind === k).reduce((s, p) => s + pssMib(p.pid), 0)])))
  const memWith = memAvailableMib()
  const ksmState = ksm()
  const loadIdle = loadavg()

  if (detail) {
    const qemu = procs[0].find((p) => p.kind === "qemu").pid
    console.log("\none QEMU's largest mappings (PSS MiB / size MiB):")
    for (const m of qemuMappings(qemu)) console.log(`  ${m.pss.toFixed(1).padStart(7)} / ${m.size.toFixed(0).padStart(5)}  ${m.perms} ${m.name}`)
    const execution = await boxes[0].exec("cat", ["/proc/meminfo"])
    const meminfo = await execution.stdout().text()
    await execution.wait()
    console.log("one guest's /proc/meminfo (kB):", meminfo.split("\n").filter((l) => /^(MemTotal|MemFree|MemAvailable|Buffers|Cached|Shmem|Slab|KernelStack|PageTables|AnonPages):/.test(l)).map((l) => l.replace(/\s+/g, " ").replace(" kB", "")).join(", "))
  }

  const answered = await Promise.all(boxes.map(async (box) => {
    try {
      return (await (await box.exec("true")).wait()).exitCode === 0
    } catch {
      return false
    }
  }))
  await inBatches(boxes, 4, (box) => box.remove())
  await sleep(2000)
  const memAfter = memAvailableMib()

  const total = pss.map((p) => KINDS.reduce((s, k) => s + p[k], 0))
  const mib = (x) => `${x.toFixed(1)} MiB`
  console.log(`\n${n} ${warm ? "warm " : ""}idle boxes (started in ${(startMs / 1000).toFixed(1)} s, settled ${settleMs / 1000} s, idle window ${idleMs / 1000} s; KSM ${ksmState})`)
  console.log(`  PSS per box: median ${mib(median(total))} (${KINDS.filter((k) => pss.some((p) => p[k] > 0)).map((k) => `${k} ${median(pss.map((p) => p[k])).toFixed(1)}`).join(", ")}))`)
  console.log(`  CPU per idle box: median ${median(cpu).toFixed(2)} % of a core (${KINDS.filter((k) => pss.some((p) => p[k] > 0)).map((k) => `${k} ${median(cpuByKind.map((c) => c[k])).toFixed(2)}`).join(", ")}), max ${Math.max(...cpu).toFixed(2)} %, all ${n}: ${cpu.reduce((a, b) => a + b, 0).toFixed(1)} %`)
  if (ksmState !== "off") console.log(`  ksmd: ${ksmdCpu.toFixed(1)} % of a core`)
  console.log(`  host MemAvailable: before ${mib(memBefore)}, with the boxes ${mib(memWith)} (${mib((memBefore - memWith) / n)} per box), after removal ${mib(memAfter)}`)
  console.log(`  loadavg: before ${loadBefore}, idle ${loadIdle}, after ${loadavg()}`)
  console.log(`  exec \`true\`: ${answered.filter(Boolean).length}/${n} answered`)
  return {
    answered: answered.every(Boolean),
    row: { name: `PSS per idle box, ${n}${warm ? " warm" : ""} boxes, median`, value: median(total), unit: "MiB", target: TARGETS.idlePss }
  }
}

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-density-"))
  const runtime = new Boxlite({ homeDir: home })
  let ok = true
  const rows = []
  try {
    const info = await runtime.info()
    console.log(`host: ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, accelerator ${info.hypervisor.accelerator}`)
    // The image cache warm: the rounds measure boxes, not the one-time rootfs build.
    await (await runtime.create({ image, warm })).remove()
    for (const n of counts) {
      const { answered, row } = await round(runtime, n)
      ok = answered && ok
      rows.push(row)
    }
    if (warm) await runtime.snapshots.prune()
  } finally {
    await runtime.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
  report(rows)
  // Not a target missed: boxes that stopped answering (exit code 1 is for misses).
  if (!ok) process.exitCode = 2
}

await main()

// The CLI as a user runs it: `npx boxlite ...` from the repository root, one process per
// command, with its own home ($BOXLITE_HOME). Terminals (-t) come from util-linux's `script`.
import { afterAll, describe, expect, it } from "vitest"
import { Boxlite } from "boxlite"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { startRegistry } from "../../../oci/test/registry-fixture.js"
import { boxDirs, BUSYBOX, qemuProcessesUnder, tempHome } from "./helpers.js"

const repo = fileURLToPath(new URL("../../../../", import.meta.url))
const home = tempHome()
const homes = [home]

afterAll(async () => {
  // Detached boxes outlive the CLI by design: a failed test must not leave them running.
  for (const dir of homes) {
    const runtime = new Boxlite({ homeDir: dir })
    for (const box of await runtime.list()) await runtime.remove(box.id, { force: true })
    await runtime.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

interface Options {
  readonly input?: string
  readonly env?: Record<string, string>
}

const envOf = (options: Options) => ({ ...process.env, BOXLITE_HOME: home, BOXLITE_LOG: "", ...options.env })

/** `npx boxlite ...args` with pipes: its exit code, stdout and stderr. */
const boxlite = (args: ReadonlyArray<string>, options: Options = {}) => {
  const r = spawnSync("npx", ["boxlite", ...args], { cwd: repo, env: envOf(options), encoding: "utf8", input: options.input ?? "", timeout: 170_000 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`

/** `npx boxlite ...args` on a 30x100 terminal (`script` runs it on a pty); `input` is typed into it. */
const onTerminal = (args: ReadonlyArray<string>, options: Options = {}) => {
  const command = `stty rows 30 cols 100; exec npx boxlite ${args.map(quote).join(" ")}`
  const r = spawnSync("script", ["-qec", command, "/dev/null"], { cwd: repo, env: envOf(options), encoding: "utf8", input: options.input ?? "", timeout: 170_000 })
  // Line ends as the guest's terminal wrote them (\r\n) went through ours too (\r\r\n).
  return { code: r.status, out: r.stdout.replace(/\r+\n/g, "\n") }
}

const nothingLeft = () => {
  expect(boxDirs(home)).toEqual([])
  expect(qemuProcessesUnder(home)).toEqual([])
}

describe("usage, without a box", () => {
  it("npx boxlite --help and SUBCOMMAND --help exit 0; an unknown flag is named and exits 125; version", () => {
    const help = boxlite(["--help"])
    expect(help.code).toBe(0)
    for (const command of ["run", "create", "exec", "cp", "start", "restart", "stop", "pause", "resume", "suspend", "snapshot", "rm", "ls", "inspect", "logs", "pull", "images", "prune", "version"]) {
      expect(help.out).toMatch(new RegExp(`^  ${command}\\b`, "m"))
    }
    const runHelp = boxlite(["run", "--help"])
    expect(runHelp.code).toBe(0)
    expect(runHelp.out).toContain("boxlite run [flags] <image> <command...>")
    const unknown = boxlite(["run", "--cpu", "2", BUSYBOX, "true"])
    expect(unknown).toMatchObject({ code: 125, out: "" })
    expect(unknown.err).toContain("Unrecognized flag: --cpu in command boxlite run")
    expect(unknown.err).toContain("--cpus")
    const version = boxlite(["version"])
    expect(version.code).toBe(0)
    expect(version.out).toMatch(/^boxlite \d+\.\d+\.\d+\n/)
    expect(boxDirs(home)).toEqual([])
  }, 60_000)
})

describe("run", () => {
  it("prints the command's output, exits with its code, and leaves nothing (--rm or not)", () => {
    // Docker's reading: options end at IMAGE, so `-c` belongs to sh.
    // The image as the README names it, relative to the repository root.
    const ran = boxlite(["run", "--rm", "-m", "128", "-e", "GREETING=hi there", "-w", "/tmp", "oci:images/out/busybox:latest", "sh", "-c", `echo "$GREETING" $(pwd); echo err >&2; exit 3`])
    expect(ran).toEqual({ code: 3, out: "hi there /tmp\n", err: "err\n" })
    nothingLeft()
    // The layout it ran is an image of this home now, by its absolute path.
    const images = boxlite(["images"]).out.split("\n")
    expect(images[0]).toMatch(/^REPOSITORY {3,}TAG {3,}IMAGE ID {3,}CREATED {3,}SIZE$/)
    expect(images[1]).toMatch(new RegExp(`^oci:${repo}images/out/busybox {3,}latest {3,}[0-9a-f]{12} {3,}.* ago {3,}[\\d.]+[kM]?B$`))
  }, 180_000)

  it("a command that is not there exits 127, one that is not executable 126, with the reason; bad options 125 naming the flag", () => {
    const missing = boxlite(["run", "-m", "128", BUSYBOX, "no-such-command"])
    expect(missing.code).toBe(127)
    expect(missing.err).toMatch(/no-such-command.*not found/)
    const notExecutable = boxlite(["run", "-m", "128", BUSYBOX, "--", "/etc/passwd"])
    expect(notExecutable.code).toBe(126)
    expect(notExecutable.err).toContain("/etc/passwd")
    const tooSmall = boxlite(["run", "-m", "64", BUSYBOX, "true"])
    expect(tooSmall.code).toBe(125)
    expect(tooSmall.err).toMatch(/InvalidOptions: --memory: .*64/)
    expect(tooSmall.err).not.toContain("memoryMib")
    nothingLeft()
  }, 180_000)

  it("-i passes stdin to the command; without it the command reads end-of-file at once", () => {
    expect(boxlite(["run", "-i", "-m", "128", BUSYBOX, "sh", "-c", "cat; echo end"], { input: "line one\nline two\n" })).toEqual({
      code: 0, out: "line one\nline two\nend\n", err: ""
    })
    expect(boxlite(["run", "-m", "128", BUSYBOX, "sh", "-c", "cat; echo end"], { input: "never read\n" })).toEqual({ code: 0, out: "end\n", err: "" })
    nothingLeft()
  }, 180_000)

  it("-t runs the command on a terminal of ours' size; -it is an interactive one", () => {
    const tty = onTerminal(["run", "-t", "-m", "128", BUSYBOX, "sh", "-c", "tty; stty size; echo to-stderr >&2; exit 5"])
    expect(tty.code).toBe(5)
    expect(tty.out).toMatch(/\/dev\/pts\/\d+\n30 100\nto-stderr\n/)
    const interactive = onTerminal(["run", "-it", "-m", "128", BUSYBOX, "sh"], { input: "echo typed-$((6*7))\nexit 6\n" })
    expect(interactive.code).toBe(6)
    expect(interactive.out).toContain("typed-42")
    nothingLeft()
  }, 180_000)
})

describe("a detached box, command by command", () => {
  it("create, ls, exec (-i, -t, -it), inspect, logs, metrics, rm refused, restart, logs -f, stop, images, start, prune", async () => {
    // BOXLITE_LOG: the box's supervisor (launched by create) logs its steps to supervisor.log.
    const created = boxlite(["create", "--name", "cli-box", "--keep", "-m", "128", BUSYBOX], { env: { BOXLITE_LOG: "info" } })
    expect(created.code).toBe(0)
    const id = created.out.trim()
    expect(id).toMatch(/^[0-9A-Z]{26}$/)

    const ls = boxlite(["ls"]).out.split("\n")
    expect(ls[0]).toMatch(/^BOX ID {3,}IMAGE {3,}CREATED {3,}STATUS {3,}PORTS {3,}NAMES$/)
    expect(ls[1]).toMatch(new RegExp(`^${id} {3,}${BUSYBOX.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} {3,}.* ago {3,}running {3,}cli-box$`))
    expect(boxlite(["ls", "-q"]).out).toBe(`${id}\n`)

    expect(boxlite(["exec", "cli-box", "sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({ code: 3, out: "out\n", err: "err\n" })
    expect(boxlite(["exec", "-e", "X=1", "-w", "/tmp", id, "--", "sh", "-c", "echo $X $(pwd)"])).toEqual({ code: 0, out: "1 /tmp\n", err: "" })
    expect(boxlite(["exec", "-i", "cli-box", "cat"], { input: "piped\n" })).toEqual({ code: 0, out: "piped\n", err: "" })
    const tty = onTerminal(["exec", "-t", "cli-box", "sh", "-c", "tty; echo err >&2"])
    expect(tty.code).toBe(0)
    expect(tty.out).toMatch(/\/dev\/pts\/\d+\nerr\n/)
    const interactive = onTerminal(["exec", "-it", "cli-box", "sh"], { input: "echo piped-$((1+1))\nexit 4\n" })
    expect(interactive.code).toBe(4)
    expect(interactive.out).toContain("piped-2")
    expect(boxlite(["exec", "nope", "true"])).toMatchObject({ code: 125, err: expect.stringContaining(`BoxNotFound`) })

    // cp both ways, as docker cp: a tree in (modes and links kept), a file out, a missing path typed.
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "bl-cp-"))
    fs.mkdirSync(path.join(scratch, "tree/sub"), { recursive: true })
    fs.writeFileSync(path.join(scratch, "tree/sub/run.sh"), "echo ran\n", { mode: 0o755 })
    fs.symlinkSync("sub/run.sh", path.join(scratch, "tree/link"))
    expect(boxlite(["cp", path.join(scratch, "tree"), "cli-box:/tmp"])).toMatchObject({ code: 0 })
    expect(boxlite(["exec", "cli-box", "sh", "-c", "stat -c %a /tmp/tree/sub/run.sh; readlink /tmp/tree/link; sh /tmp/tree/link"])).toEqual({ code: 0, out: "755\nsub/run.sh\nran\n", err: "" })
    expect(boxlite(["cp", "cli-box:/etc/hostname", path.join(scratch, "hostname")])).toMatchObject({ code: 0 })
    expect(fs.readFileSync(path.join(scratch, "hostname"), "utf8").length).toBeGreaterThan(0)
    expect(boxlite(["cp", "cli-box:/no/such/file", scratch])).toMatchObject({ code: 125, err: expect.stringContaining("PathNotFound") })
    expect(boxlite(["cp", scratch, path.join(scratch, "x")])).toMatchObject({ code: 125, err: expect.stringContaining("BOX:PATH") })
    fs.rmSync(scratch, { recursive: true, force: true })

    const [inspected] = JSON.parse(boxlite(["inspect", "cli-box"]).out)
    expect(inspected).toMatchObject({ id, name: "cli-box", status: "running", image: BUSYBOX, autoRemove: false, memoryMib: 128, pid: expect.any(Number) })
    expect(JSON.parse(boxlite(["metrics", id]).out)).toMatchObject({ cpuTimeMs: expect.any(Number), memoryUsageBytes: expect.any(Number) })

    const logs = boxlite(["logs", "cli-box"])
    expect(logs.code).toBe(0)
    expect(logs.out).toContain("boxlite-agent: ready")
    expect(logs.err).toContain(`message="box running"`)

    const refused = boxlite(["rm", "cli-box"])
    expect(refused.code).toBe(125)
    expect(refused.err).toContain("BoxStateError")
    expect(refused.err).toContain("rm -f")
    expect(refused.err).not.toContain("force: true")

    expect(boxlite(["restart", "cli-box"])).toEqual({ code: 0, out: "cli-box\n", err: "" })
    const [restarted] = JSON.parse(boxlite(["inspect", id]).out)
    expect(restarted).toMatchObject({ status: "running", pid: expect.any(Number) })
    expect(restarted.pid).not.toBe(inspected.pid)

    // logs -f follows until the box stops, then exits.
    const follower = spawn("npx", ["boxlite", "logs", "-f", "cli-box"], { cwd: repo, env: envOf({}), stdio: ["ignore", "pipe", "pipe"] })
    let followed = ""
    let followedErr = ""
    follower.stdout.on("data", (d: Buffer) => (followed += d.toString()))
    follower.stderr.on("data", (d: Buffer) => (followedErr += d.toString()))
    const followerExit = new Promise<number | null>((resolve) => follower.on("exit", resolve))
    for (let i = 0; i < 100 && !followed.includes("boxlite-agent: ready"); i++) await new Promise((r) => setTimeout(r, 100))
    expect(boxlite(["stop", "cli-box"])).toMatchObject({ code: 0, out: "cli-box\n" })
    expect(await followerExit).toBe(0)
    expect(followedErr).toMatch(/message=stopping .*reason=requested/)

    expect(boxlite(["ls"]).out).toMatch(new RegExp(`^${id} .* stopped {3,}cli-box$`, "m"))
    const images = boxlite(["images"]).out.split("\n")
    expect(images[0]).toMatch(/^REPOSITORY {3,}TAG {3,}IMAGE ID {3,}CREATED {3,}SIZE$/)
    expect(images[1]).toMatch(new RegExp(`^oci:${repo}images/out/busybox {3,}latest `))

    expect(boxlite(["start", "cli-box"])).toMatchObject({ code: 0, out: "cli-box\n" })
    expect(boxlite(["exec", "cli-box", "echo", "again"]).out).toBe("again\n")
    expect(boxlite(["stop", "cli-box"]).code).toBe(0)

    // prune asks first; no answer (end of input) is no.
    expect(boxlite(["prune"]).code).toBe(1)
    expect(boxlite(["ls", "-q"]).out).toBe(`${id}\n`)
    const pruned = boxlite(["prune", "-f"])
    expect(pruned.code).toBe(0)
    expect(pruned.out).toContain(`Deleted box ${id}`)
    expect(pruned.out).toMatch(/Total reclaimed space: /)
    expect(boxlite(["ls", "-q"]).out).toBe("")
    // Its root filesystem went with the prune: the layout is no longer an image of this home.
    expect(boxlite(["images"]).out).not.toContain("oci:")
    nothingLeft()
  }, 300_000)

  it("restart refuses a box that its stop would remove, naming --keep; stop removes it", () => {
    const id = boxlite(["create", "-m", "128", BUSYBOX]).out.trim()
    const refused = boxlite(["restart", id])
    expect(refused.code).toBe(125)
    expect(refused.err).toContain("--keep")
    expect(JSON.parse(boxlite(["inspect", id]).out)[0]).toMatchObject({ status: "running", autoRemove: true })
    expect(boxlite(["stop", id]).code).toBe(0)
    expect(boxlite(["inspect", id])).toMatchObject({ code: 125, err: expect.stringContaining("BoxNotFound") })
    nothingLeft()
  }, 180_000)
})

describe("pause, suspend and snapshots", () => {
  it("pause refuses execs until resume; snapshot create, ls, clone; rm of a used snapshot refused; suspend and exec resumes; prune", () => {
    const id = boxlite(["create", "--name", "snapsrc", "-m", "256", BUSYBOX]).out.trim()
    expect(boxlite(["exec", "snapsrc", "sh", "-c", "echo saved > /root/x"]).code).toBe(0)
    expect(boxlite(["pause", "snapsrc"])).toMatchObject({ code: 0, out: "snapsrc\n" })
    expect(boxlite(["ls"]).out).toMatch(/ paused /)
    const refused = boxlite(["exec", "snapsrc", "true"])
    expect(refused.code).toBe(125)
    expect(refused.err).toContain("paused: resume it first")
    expect(boxlite(["unpause", "snapsrc"]).code).toBe(0)
    const snapshot = boxlite(["snapshot", "create", "--name", "cli-snap", "snapsrc"])
    expect(snapshot.code).toBe(0)
    const snapshotId = snapshot.out.trim()
    expect(snapshotId).toMatch(/^[0-9A-Z]{26}$/)
    const listed = boxlite(["snapshot", "ls"]).out
    expect(listed).toMatch(/^SNAPSHOT ID +NAME +BOX +IMAGE +CREATED +MEMORY +SIZE$/m)
    expect(listed).toContain(`${snapshotId}   cli-snap   ${id}`)
    const clone = boxlite(["snapshot", "clone", "--name", "snapclone", "cli-snap"])
    expect(clone.code).toBe(0)
    expect(boxlite(["exec", "snapclone", "cat", "/root/x"])).toMatchObject({ code: 0, out: "saved\n" })
    const inUse = boxlite(["snapshot", "rm", "cli-snap"])
    expect(inUse.code).toBe(125)
    expect(inUse.err).toContain("in use by box snapclone")
    expect(boxlite(["suspend", "snapsrc"]).code).toBe(0)
    expect(JSON.parse(boxlite(["inspect", "snapsrc"]).out)[0]).toMatchObject({ status: "suspended" })
    expect(qemuProcessesUnder(path.join(home, "boxes", id))).toEqual([])
    expect(boxlite(["exec", "snapsrc", "cat", "/root/x"])).toMatchObject({ code: 0, out: "saved\n" })
    expect(boxlite(["rm", "-f", "snapsrc", "snapclone"]).code).toBe(0)
    expect(boxlite(["snapshot", "prune"]).out).toContain(`Deleted snapshot ${snapshotId}`)
    expect(boxlite(["snapshot", "ls"]).out.trim().split("\n")).toHaveLength(1)
    // run --warm: the first makes the template, the second starts from it.
    expect(boxlite(["run", "--warm", "-m", "160", BUSYBOX, "echo", "one"])).toMatchObject({ code: 0, out: "one\n" })
    expect(boxlite(["run", "--warm", "-m", "160", BUSYBOX, "echo", "two"])).toMatchObject({ code: 0, out: "two\n" })
    expect(boxlite(["snapshot", "ls"]).out).toMatch(/^\S+ +warm-[0-9a-f]{16} /m)
    expect(boxlite(["snapshot", "prune"]).code).toBe(0)
    nothingLeft()
  }, 240_000)
})

describe("pull", () => {
  it("plain progress lines when not on a terminal, a bar on one; images lists the pull; prune keeps it", async () => {
    const registry = await startRegistry()
    try {
      await registry.pushBusybox("library/busybox:latest")
      const reference = `${registry.host}/library/busybox:latest`
      const pulled = boxlite(["pull", "--insecure-registry", registry.host, reference])
      expect(pulled.code).toBe(0)
      expect(pulled.out).toMatch(new RegExp(`^${reference} sha256:[0-9a-f]{64}\n$`))
      const lines = pulled.err.trimEnd().split("\n")
      expect(lines[0]).toBe(`${reference}: resolving`)
      expect(lines).toContain(`${reference}: downloading`)
      expect(lines.some((l) => /^sha256:[0-9a-f]{12}: downloaded /.test(l))).toBe(true)
      expect(lines.at(-1)).toMatch(new RegExp(`^${reference}: done, `))
      expect(pulled.err).not.toContain("\r")

      const images = boxlite(["images"]).out.split("\n")
      expect(images[1]).toMatch(new RegExp(`^${registry.host}/library/busybox {3,}latest {3,}[0-9a-f]{12} {3,}.* ago {3,}[\\d.]+[kM]B$`))

      // On a terminal (in a fresh home: nothing cached), one line redrawn in place.
      const other = tempHome()
      homes.push(other)
      const bar = onTerminal(["pull", "--insecure-registry", registry.host, reference], { env: { BOXLITE_HOME: other } })
      expect(bar.code).toBe(0)
      expect(bar.out).toMatch(/\r\x1b\[Kdownloading +\[=*>? *\] /)
      expect(bar.out).toMatch(/done +\[={30}\] .* 1\/1 layers\n/)

      expect(boxlite(["prune", "-f"]).code).toBe(0)
      expect(boxlite(["images"]).out).toContain(`${registry.host}/library/busybox`)
    } finally {
      await registry.stop()
    }
  }, 120_000)
})

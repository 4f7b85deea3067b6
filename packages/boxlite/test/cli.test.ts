/** The CLI's parsing and output, without a VM: what `boxlite` makes of argv, and how it prints. */
import { BoxStateError, ExecError, InvalidOptions } from "@boxlite/core"
import { afterEach, describe, expect, it, vi } from "vitest"
import { dockerArgv } from "../src/cli/argv.js"
import { VERSION } from "../src/cli/commands.js"
import { ago, boxTable, imageTable, progressBar, progressLines } from "../src/cli/format.js"
import { describeError, execFailureCode, main } from "../src/cli/main.js"

describe("Docker's reading of argv", () => {
  it("ends options at IMAGE (run) or BOX (exec): the rest is the command, flags and all", () => {
    expect(dockerArgv(["run", "-it", "--rm", "-e", "A=1", "img", "sh", "-c", "echo -n x"])).toEqual(["run", "-it", "--rm", "-e", "A=1", "img", "--", "sh", "-c", "echo -n x"])
    expect(dockerArgv(["exec", "-w", "/tmp", "--env=B=2", "box", "ls", "-l"])).toEqual(["exec", "-w", "/tmp", "--env=B=2", "box", "--", "ls", "-l"])
    // A cluster ending in a value flag takes the next word.
    expect(dockerArgv(["run", "-ie", "A=1", "img", "cat"])).toEqual(["run", "-ie", "A=1", "img", "--", "cat"])
    expect(dockerArgv(["run", "--memory", "128", "img", "true"])).toEqual(["run", "--memory", "128", "img", "--", "true"])
  })

  it("leaves an explicit --, a missing command and the other commands alone", () => {
    expect(dockerArgv(["run", "img", "--", "sh", "--", "x"])).toEqual(["run", "img", "--", "sh", "--", "x"])
    expect(dockerArgv(["run", "-t", "img"])).toEqual(["run", "-t", "img"])
    expect(dockerArgv(["rm", "-f", "box"])).toEqual(["rm", "-f", "box"])
    expect(dockerArgv([])).toEqual([])
  })
})

describe("main: usage", () => {
  const output = () => {
    const out: Array<string> = []
    const err: Array<string> = []
    vi.spyOn(console, "log").mockImplementation((...a: Array<unknown>) => void out.push(a.join(" ")))
    vi.spyOn(console, "error").mockImplementation((...a: Array<unknown>) => void err.push(a.join(" ")))
    return { out: () => out.join("\n"), err: () => err.join("\n") }
  }
  afterEach(() => void vi.restoreAllMocks())

  it("--help and SUBCOMMAND --help print usage on stdout and exit 0", async () => {
    const o = output()
    expect(await main(["--help"])).toBe(0)
    for (const command of ["run", "create", "exec", "cp", "start", "stop", "restart", "rm", "ls", "inspect", "logs", "metrics", "pull", "images", "prune", "info", "mcp", "version"]) {
      expect(o.out()).toMatch(new RegExp(`\\n  ${command}\\b`))
    }
    expect(await main(["run", "--help"])).toBe(0)
    expect(o.out()).toContain("boxlite run [flags] <image> <command...>")
    expect(o.out()).toMatch(/--interactive, -i/)
    expect(o.out()).toMatch(/--tty, -t/)
    expect(await main(["logs", "-h"])).toBe(0)
    expect(o.out()).toMatch(/--follow, -f/)
    expect(o.err()).toBe("")
  })

  it("an unknown flag or command is named, with where to read more, and exits 125", async () => {
    const o = output()
    expect(await main(["run", "--bogus", "img", "true"])).toBe(125)
    expect(o.err()).toContain("Unrecognized flag: --bogus in command boxlite run")
    expect(o.err()).toContain("See 'boxlite run --help'.")
    expect(await main(["lss"])).toBe(125)
    expect(o.err()).toContain(`Unknown subcommand "lss"`)
    expect(await main(["run", "--memory", "lots", "img", "true"])).toBe(125)
    expect(o.err()).toContain(`Invalid value for flag --memory: "lots"`)
    expect(await main(["run"])).toBe(125)
    expect(o.err()).toContain("Missing required argument: image")
    expect(await main(["exec", "box"])).toBe(125)
    expect(o.err()).toContain("Missing required argument: command")
    // No usage on stdout: the error alone, as Docker prints it.
    expect(o.out()).toBe("")
  })

  it("--version and version", async () => {
    const o = output()
    expect(await main(["--version"])).toBe(0)
    expect(o.out()).toContain(`boxlite v${VERSION}`)
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/)
    // -v is Docker's volume flag of run, not --version.
    expect(await main(["run", "-v", "/srv:/srv", "img", "true"])).toBe(125)
    expect(o.err()).toContain("Unrecognized flag: -v")
  })
})

describe("errors", () => {
  it("name CLI flags, not API options", () => {
    expect(describeError(new InvalidOptions("memoryMib", "Expected a value between 128 and 65536 (got 100)"))).toBe(
      "InvalidOptions: --memory: Expected a value between 128 and 65536 (got 100)"
    )
    expect(describeError(new InvalidOptions("exec.workingDir", "must be absolute"))).toBe("InvalidOptions: -w: must be absolute")
    expect(describeError(new InvalidOptions("exec.timeoutMs", "Expected a positive integer"))).toBe("InvalidOptions: --timeout: Expected a positive integer")
    expect(describeError(new BoxStateError("box b is running"))).toBe("BoxStateError: box b is running")
  })

  it("a command that cannot be started is 127 (not found) or 126 (not executable), as in Docker", () => {
    expect(execFailureCode(new ExecError("cannot run nosuch: nosuch: not found in PATH", ["nosuch"], 127, "nosuch: not found in PATH\n"))).toBe(127)
    expect(execFailureCode(new ExecError("cannot run /etc/passwd: not an executable file", ["/etc/passwd"], 126, "not an executable file\n"))).toBe(126)
    expect(execFailureCode(new ExecError("the box's supervisor died", ["sh"]))).toBeUndefined()
    expect(execFailureCode(new ExecError("the box went away"))).toBeUndefined()
    expect(execFailureCode(new BoxStateError("not found"))).toBeUndefined()
  })
})

describe("output", () => {
  const now = Date.parse("2026-01-01T12:00:00Z")
  const box = {
    id: "01ABC", name: "web", status: "running", image: "python:slim", autoRemove: false, cpus: 1, memoryMib: 512,
    createdAt: new Date(now - 5 * 60_000), pid: 42, ports: [{ protocol: "tcp", hostIp: "127.0.0.1", hostPort: 8080, guestPort: 80 }], reason: undefined
  } as const

  it("ls: docker ps -a's columns, aligned; a failed box says why", () => {
    const text = boxTable([box, { ...box, id: "01DEF", name: undefined, status: "failed", reason: "the VM exited (code 1)", ports: [] }], now)
    const [header, first, second] = text.split("\n")
    expect(header).toMatch(/^BOX ID {3,}IMAGE {3,}CREATED {3,}STATUS {3,}PORTS {3,}NAMES$/)
    expect(first).toMatch(/^01ABC {3,}python:slim {3,}5 minutes ago {3,}running {3,}127\.0\.0\.1:8080->80\/tcp {3,}web$/)
    expect(second).toContain("failed: the VM exited (code 1)")
    expect(first!.indexOf("python")).toBe(header!.indexOf("IMAGE"))
  })

  it("images: a header, registry images and oci: layouts split into repository and tag", () => {
    const image = (reference: string) => ({
      reference, manifestDigest: `sha256:${"ab".repeat(32)}`, configDigest: "sha256:c", platform: { os: "linux", architecture: "amd64" },
      pulledAt: new Date(now - 3_600_000).toISOString(), size: 2_100_000
    })
    const text = imageTable([image("docker.io/library/busybox:latest"), image("oci:/srv/images/busybox:1.36"), image("oci:/srv/plain")], now)
    const lines = text.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^REPOSITORY {3,}TAG {3,}IMAGE ID {3,}CREATED {3,}SIZE$/)
    expect(lines[1]).toMatch(/^docker\.io\/library\/busybox {3,}latest {3,}abababababab {3,}1 hour ago {3,}2\.1MB$/)
    expect(lines[2]).toMatch(/^oci:\/srv\/images\/busybox {3,}1\.36 {3,}abababababab /)
    expect(lines[3]).toMatch(/^oci:\/srv\/plain {3,}latest /)
  })

  it("ago", () => {
    expect(ago(new Date(now), now)).toBe("Less than a second ago")
    expect(ago(new Date(now - 1000), now)).toBe("1 second ago")
    expect(ago(new Date(now - 2 * 86_400_000), now)).toBe("2 days ago")
  })

  it("pull: a bar on a terminal, a line per layer and phase elsewhere", () => {
    const layer = (digest: string, downloadedBytes: number, cached = false) => ({ digest: `sha256:${digest.repeat(64)}`, downloadedBytes, totalBytes: 1_000_000, cached })
    const events = [
      { reference: "busybox", phase: "resolving", layers: [], downloadedBytes: 0, totalBytes: 0 },
      { reference: "busybox", phase: "downloading", layers: [layer("a", 0, true), layer("b", 500_000)], downloadedBytes: 500_000, totalBytes: 2_000_000 },
      { reference: "busybox", phase: "downloading", layers: [layer("a", 0, true), layer("b", 600_000)], downloadedBytes: 600_000, totalBytes: 2_000_000 },
      { reference: "busybox", phase: "done", layers: [layer("a", 0, true), layer("b", 1_000_000)], downloadedBytes: 1_000_000, totalBytes: 2_000_000 }
    ] as const
    expect(progressBar(events[1])).toMatch(/^downloading \[=======> {22}\] 500\.0kB\/2\.0MB {2}1\/2 layers$/)
    const lines = events.flatMap((e, i) => progressLines(e, events[i - 1]))
    expect(lines).toEqual([
      "busybox: resolving",
      "busybox: downloading",
      "sha256:aaaaaaaaaaaa: already present",
      "sha256:bbbbbbbbbbbb: downloaded 1.0MB",
      "busybox: done, 1.0MB downloaded"
    ])
  })
})

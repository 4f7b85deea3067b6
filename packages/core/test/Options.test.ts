import { describe, expect, it } from "vitest"
import { Effect, Exit } from "effect"
import { InvalidOptions, mergeEnv, resolveBoxOptions, resolveExecOptions, resolveSnapshotOptions } from "@boxlite/core"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const fieldOf = async (effect: Effect.Effect<unknown, InvalidOptions>) => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons[0]
  return reason && "error" in reason ? (reason.error as InvalidOptions).field : "defect"
}

describe("box options", () => {
  it("applies the reference's defaults", async () => {
    expect(await Effect.runPromise(resolveBoxOptions({}))).toEqual({
      image: "python:slim", name: undefined, cpus: 1, memoryMib: 512, diskSizeGb: undefined, workingDir: undefined, env: [], user: undefined, network: "nat", egress: { deny: [] }, allowHostLoopback: false, ports: [], volumes: [], autoRemove: true, detach: false, readyTimeoutMs: 60_000, logMaxBytes: 1024 * 1024, warm: false
    })
  })

  it("accepts env as a record or as pairs", async () => {
    expect((await Effect.runPromise(resolveBoxOptions({ env: { A: "1" } }))).env).toEqual([["A", "1"]])
    expect((await Effect.runPromise(resolveBoxOptions({ env: [["A", "1"], ["B", "2"]] }))).env).toEqual([["A", "1"], ["B", "2"]])
  })

  it.each([
    [{ cpus: 0 }, "cpus"], [{ cpus: 10_000 }, "cpus"], [{ memoryMib: 127 }, "memoryMib"], [{ memoryMib: 65537 }, "memoryMib"],
    [{ image: " " }, "image"], [{ workingDir: "x" }, "workingDir"], [{ env: [["", "v"]] }, "env"], [{ env: { "A=B": "v" } }, "env"],
    [{ autoRemove: "yes" }, "autoRemove"], [{ detach: 1 }, "detach"], [{ user: "a b" }, "user"], [{ diskSizeGb: 0 }, "diskSizeGb"],
    [{ ports: [[70000, 80]] }, "ports"], [{ ports: [{ hostPort: 1, guestPort: 2, protocol: "sctp" }] }, "ports"],
    [{ ports: [{ hostPort: 1, guestPort: 2, hostIp: "localhost" }] }, "ports"], [{ network: "none", ports: [[8080, 80]] }, "ports"],
    [{ ports: [[8080, 80], [8080, 81]] }, "ports[1]"], [{ volumes: [["relative", "/x"]] }, "volumes"],
    [{ volumes: [["/tmp", "x"]] }, "volumes"], [{ volumes: [["/nonexistent/dir", "/x"]] }, "volumes[0].hostPath"],
    [{ volumes: [["/tmp", "/x"], ["/etc", "/x"]] }, "volumes[1].guestPath"], [{ network: "bridge" }, "network"],
    [{ network: { mode: "nat", allow: ["10.0.0.1", "db.test:443", "10.0.0.0/33"] } }, "network.allow[2]"],
    [{ network: { mode: "nat", deny: ["private", "host:0"] } }, "network.deny[1]"], [{ network: { mode: "none", deny: ["private"] } }, "network"],
    [{ network: { mode: "nat", allow: "private" } }, "network.allow"], [{ readyTimeoutMs: 0 }, "readyTimeoutMs"], [{ logMaxBytes: 100 }, "logMaxBytes"], [{ gpus: 1 }, "gpus"],
    [{ warm: "yes" }, "warm"], [{ fromSnapshot: "" }, "fromSnapshot"], [{ fromSnapshot: 7 }, "fromSnapshot"]
  ])("%j is refused naming %s", async (options, field) => {
    expect(await fieldOf(resolveBoxOptions(options as never))).toBe(field)
  })

  it("normalizes the reference's tuples for ports and volumes", async () => {
    const options = await Effect.runPromise(resolveBoxOptions({ ports: [[8080, 80, "udp"], { hostPort: 0, guestPort: 22 }], volumes: [["/tmp", "/data", "ro"], { hostPath: "/etc", guestPath: "/cfg" }] }))
    expect(options.ports).toEqual([
      { protocol: "udp", hostIp: "127.0.0.1", hostPort: 8080, guestPort: 80 },
      { protocol: "tcp", hostIp: "127.0.0.1", hostPort: 0, guestPort: 22 }
    ])
    expect(options.volumes).toMatchObject([{ hostPath: "/tmp", guestPath: "/data", readOnly: true }, { hostPath: "/etc", guestPath: "/cfg", readOnly: false }])
  })

  it("records what each volume's path names at create: symlinks resolved, its identity, its kind", async () => {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "bl-opt-")))
    fs.mkdirSync(path.join(dir, "data"))
    fs.writeFileSync(path.join(dir, "app.conf"), "x")
    fs.symlinkSync(path.join(dir, "data"), path.join(dir, "link"))
    const options = await Effect.runPromise(resolveBoxOptions({ volumes: [[path.join(dir, "link"), "/data"], [path.join(dir, "app.conf"), "/etc/app.conf", "ro"]] }))
    const data = fs.statSync(path.join(dir, "data"), { bigint: true })
    expect(options.volumes[0]).toEqual({
      hostPath: path.join(dir, "link"), guestPath: "/data", readOnly: false,
      source: { path: path.join(dir, "data"), kind: "directory", dev: String(data.dev), ino: String(data.ino), birth: String(data.birthtimeNs) }
    })
    expect(options.volumes[1]!.source).toMatchObject({ path: path.join(dir, "app.conf"), kind: "file" })
    // It survives the state store's JSON.
    expect(JSON.parse(JSON.stringify(options.volumes))).toEqual(options.volumes)
    fs.rmSync(dir, { recursive: true })
  })

  it("refuses a volume that is neither a directory nor a regular file", async () => {
    expect(await fieldOf(resolveBoxOptions({ volumes: [["/dev/null", "/dev/host-null"]] }))).toBe("volumes[0].hostPath")
  })

  it("network: the string forms, or a mode with allow (allow-list mode) and deny entries kept as given", async () => {
    expect(await Effect.runPromise(resolveBoxOptions({ network: "none" }))).toMatchObject({ network: "none", egress: { deny: [] } })
    const policy = await Effect.runPromise(resolveBoxOptions({ network: { mode: "nat", allow: ["private:53", "db.test"], deny: ["10.9.0.0/16"] } }))
    expect(policy).toMatchObject({ network: "nat", egress: { allow: ["private:53", "db.test"], deny: ["10.9.0.0/16"] } })
    expect((await Effect.runPromise(resolveBoxOptions({ network: { mode: "nat", deny: ["1.2.3.4"] } }))).egress).toEqual({ deny: ["1.2.3.4"] })
  })

  it("tty: true is a 24x80 terminal, false or absent none", async () => {
    expect((await Effect.runPromise(resolveExecOptions({ tty: true }))).tty).toEqual({ rows: 24, cols: 80 })
    expect((await Effect.runPromise(resolveExecOptions({ tty: { rows: 5, cols: 9 } }))).tty).toEqual({ rows: 5, cols: 9 })
    expect((await Effect.runPromise(resolveExecOptions({ tty: false }))).tty).toBeUndefined()
  })

  it("exec options name their field under exec.", async () => {
    expect(await fieldOf(resolveExecOptions({ timeoutMs: 1.5 }))).toBe("exec.timeoutMs")
    expect(await fieldOf(resolveExecOptions({ cwd: "/" } as never))).toBe("exec.cwd")
    expect(await fieldOf(resolveExecOptions({ tty: { rows: 0, cols: 80 } }))).toBe("exec.tty")
    expect(await fieldOf(resolveExecOptions({ tty: { rows: 24, cols: 70000 } }))).toBe("exec.tty")
  })

  it("merges env layers, later ones winning", () => {
    expect(mergeEnv([["PATH", "/bin"], ["A", "1"]], [["A", "2"]], [["B", "3"]])).toEqual([["PATH", "/bin"], ["A", "2"], ["B", "3"]])
  })
})

describe("snapshot options", () => {
  it("take a name spelt as box names are; anything else is refused naming the field", async () => {
    expect(await Effect.runPromise(resolveSnapshotOptions({ name: "base-1.0" }))).toEqual({ name: "base-1.0" })
    expect(await Effect.runPromise(resolveSnapshotOptions(undefined))).toEqual({})
    expect(await fieldOf(resolveSnapshotOptions({ name: "two words" }))).toBe("name")
    expect(await fieldOf(resolveSnapshotOptions({ nmae: "x" } as never))).toBe("nmae")
  })
})

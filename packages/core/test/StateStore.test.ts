import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { resolveBoxOptions } from "@boxlite/core"
import { availableBackends, openSqlite, type SqliteBackend } from "../src/internal/Sqlite.js"
import { type BoxRecord, layerSqlite, StateStore } from "../src/StateStore.js"

const withStoreOn = <A, E>(home: string, f: (store: StateStore["Service"]) => Effect.Effect<A, E>, backend?: SqliteBackend) =>
  Effect.runPromise(Effect.provide(Effect.flatMap(StateStore.use(Effect.succeed), f), layerSqlite(home, { create: true, backend })))

/** A database file opened directly, as an earlier version or another process would. */
const rawDatabase = (file: string, backend?: SqliteBackend) => {
  fs.closeSync(fs.openSync(file, "a"))
  return openSqlite(file, { backend })
}

const major = Number(process.versions.node.split(".")[0])
const minor = Number(process.versions.node.split(".")[1])

const record = async (id: string): Promise<BoxRecord> => ({
  id, name: undefined, status: "configured", image: "busybox", options: await Effect.runPromise(resolveBoxOptions({ image: "busybox" })),
  runConfig: { env: [] } as unknown as BoxRecord["runConfig"], base: "/base", createdAt: new Date(), pid: undefined, supervisor: undefined,
  ports: [], booted: false, reason: undefined, layers: [], snapshot: undefined, restore: undefined, driver: "qemu", diskFormat: "qcow2"
})

describe("the SQLite binding", () => {
  it("loads on this Node: node:sqlite where Node has it unflagged (>= 22.13), else better-sqlite3", () => {
    const backends = availableBackends()
    if (major > 22 || (major === 22 && minor >= 13)) expect(backends[0]).toBe("node:sqlite")
    else expect(backends).toEqual(["better-sqlite3"])
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    const db = rawDatabase(path.join(home, "boxlite.db"))
    expect(db.prepare("SELECT 1 + 1 AS two").get()).toEqual(expect.objectContaining({ two: 2 }))
    db.close()
  })

  it("does not create a missing database file (a deleted home stays deleted)", () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    for (const backend of availableBackends()) {
      expect(() => openSqlite(path.join(home, "boxlite.db"), { backend })).toThrow(/does not exist|unable to open/)
      expect(fs.readdirSync(home)).toEqual([])
    }
  })

  it.runIf(availableBackends().length < 2)("a binding this Node cannot load is a StorageError naming it, and leaves nothing behind", async () => {
    const missing = (["node:sqlite", "better-sqlite3"] as const).find((b) => !availableBackends().includes(b))!
    const home = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-")), "home")
    const error = await Effect.runPromise(Effect.flip(Effect.provide(StateStore.use(() => Effect.void), layerSqlite(home, { create: true, backend: missing }))))
    expect(error).toMatchObject({ _tag: "StorageError", message: expect.stringContaining(`the SQLite binding ${missing} does not load on Node ${process.versions.node}`) })
    expect(fs.readdirSync(home)).toEqual([])
  })

  it.runIf(availableBackends().length === 2)("a home written through one binding is read through the other (a user switching Node)", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    const r = await record("SWITCH")
    await withStoreOn(home, (store) => store.insert({ ...r, name: "moved" }), "better-sqlite3")
    const found = await withStoreOn(home, (store) => Effect.andThen(store.update("SWITCH", { status: "stopped" }), store.find("moved")), "node:sqlite")
    expect(found).toMatchObject({ id: "SWITCH", status: "stopped" })
    expect(await withStoreOn(home, (store) => store.find("SWITCH"), "better-sqlite3")).toMatchObject({ status: "stopped" })
  })
})

// .ci/run sets BOXLITE_NODE24 (scripts/node24.sh): run on Node 20, this test is a home used by
// Node 20 on better-sqlite3 and by Node 24 on node:sqlite in turn, as a user switching Node does.
const node24 = process.env["BOXLITE_NODE24"]
describe.runIf(node24 !== undefined)("a home shared by this Node and Node 24", () => {
  it("each reads and changes what the other wrote", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    const r = await record("CROSS")
    await withStoreOn(home, (store) => store.insert({ ...r, name: "crossed" }))
    const script = `
      import { Effect } from "effect"
      import { layerSqlite, StateStore } from "@boxlite/core"
      const found = await Effect.runPromise(Effect.provide(
        StateStore.use((store) => Effect.tap(store.find("crossed"), () => store.update("CROSS", { status: "stopped" }))),
        layerSqlite(process.argv[1], { create: false })))
      console.log(JSON.stringify({ node: process.versions.node, status: found?.status }))`
    const child = spawnSync(node24!, ["--input-type=module", "-e", script, home], { cwd: process.cwd(), encoding: "utf8" })
    expect(child.stderr).toBe("")
    expect(JSON.parse(child.stdout)).toEqual({ node: expect.stringMatching(/^24\./), status: "configured" })
    expect(await withStoreOn(home, (store) => store.find("CROSS"))).toMatchObject({ status: "stopped", name: "crossed" })
  })
})

describe.each(availableBackends())("StateStore on %s", (backend) => {
  const withStore = <A, E>(home: string, f: (store: StateStore["Service"]) => Effect.Effect<A, E>) => withStoreOn(home, f, backend)

  it("lets exactly one process claim the start of a box, and only while it is not active", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    const r = await record("B1")
    const claims = await withStore(home, (store) =>
      Effect.gen(function*() {
        yield* store.insert(r)
        const first = yield* store.claimStart("B1", { pid: 1, startTime: "10" })
        const second = yield* store.claimStart("B1", { pid: 2, startTime: "20" })
        const wrongOwner = yield* store.updateIfSupervisor("B1", { pid: 2, startTime: "20" }, { status: "running" })
        const rightOwner = yield* store.updateIfSupervisor("B1", { pid: 1, startTime: "10" }, { status: "failed", supervisor: undefined })
        const third = yield* store.claimStart("B1", { pid: 3, startTime: "30" })
        return { first, second, wrongOwner, rightOwner, third, now: yield* store.find("B1") }
      }))
    expect(claims).toMatchObject({ first: true, second: false, wrongOwner: false, rightOwner: true, third: true })
    expect(claims.now).toMatchObject({ status: "starting", supervisor: { pid: 3, startTime: "30" }, launching: true })
  })

  it("marks a claim as its launcher's until a supervisor takes the box over", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    const r = await record("B2")
    const seen = await withStore(home, (store) =>
      Effect.gen(function*() {
        yield* store.insert(r)
        const inserted = (yield* store.find("B2"))!.launching
        yield* store.claimStart("B2", { pid: 1, startTime: "10" })
        const claimed = (yield* store.find("B2"))!.launching
        yield* store.updateIfSupervisor("B2", { pid: 1, startTime: "10" }, { supervisor: { pid: 2, startTime: "20" } })
        return { inserted, claimed, tookOver: (yield* store.find("B2"))!.launching }
      }))
    expect(seen).toEqual({ inserted: false, claimed: true, tookOver: false })
  })

  it("adds the new columns to a home made by the first release, keeping its boxes", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    const old = rawDatabase(path.join(home, "boxlite.db"), backend)
    old.exec(`CREATE TABLE boxes (id TEXT PRIMARY KEY, name TEXT UNIQUE, status TEXT NOT NULL, image TEXT NOT NULL,
      options TEXT NOT NULL, created_at INTEGER NOT NULL, pid INTEGER)`)
    old.prepare("INSERT INTO boxes VALUES ('OLD', 'kept', 'stopped', 'busybox', ?, 1, NULL)").run(JSON.stringify((await record("x")).options))
    old.close()
    const found = await withStore(home, (store) => store.find("kept"))
    expect(found).toMatchObject({ id: "OLD", status: "stopped", ports: [], booted: false, supervisor: undefined, driver: "qemu", diskFormat: "qcow2" })
  })

  it("keeps a WAL journal (synchronous NORMAL, busy timeout 30 s), records names uniquely, renames snapshots and deletes once", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    const r = await record("U1")
    const result = await withStore(home, (store) =>
      Effect.gen(function*() {
        yield* store.insert({ ...r, name: "same" })
        const duplicate = yield* Effect.flip(store.insert({ ...r, id: "U2", name: "same" }))
        const snapshot = { id: "S1", name: "snap", boxId: "U1", image: "busybox", createdAt: new Date(1), options: r.options, runConfig: r.runConfig, base: "/base", layers: [], state: { file: "/s", bytes: 1, sha256: "0", signature: "x" }, sizeBytes: 1 }
        yield* store.insertSnapshot(snapshot)
        yield* store.renameSnapshot("S1", undefined)
        yield* store.increment("boxesCreated")
        yield* store.increment("boxesCreated")
        return {
          duplicate: duplicate.message,
          renamed: yield* store.findSnapshot("S1"),
          byOldName: yield* store.findSnapshot("snap"),
          first: yield* store.delete("U1"),
          second: yield* store.delete("U1"),
          counters: yield* store.counters
        }
      }))
    expect(result).toMatchObject({ duplicate: 'a box named "same" already exists', byOldName: undefined, first: true, second: false })
    expect(result.renamed).toMatchObject({ id: "S1", createdAt: new Date(1) })
    expect(result.renamed?.name).toBeUndefined()
    expect(result.counters.boxesCreated).toBe(2)
    // The same settings on either binding (their own defaults differ: synchronous FULL in node:sqlite).
    const db = rawDatabase(path.join(home, "boxlite.db"), backend)
    expect({ ...db.prepare("PRAGMA journal_mode").get() as object, ...db.prepare("PRAGMA synchronous").get() as object, ...db.prepare("PRAGMA busy_timeout").get() as object })
      .toEqual({ journal_mode: "wal", synchronous: 1, timeout: 30000 })
    db.close()
  })

  it("waits for another process's write lock instead of failing with SQLITE_BUSY", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-store-"))
    const file = path.join(home, "boxlite.db")
    const r = await record("W1")
    await withStore(home, (store) => store.list)
    // Another process takes the write lock and holds it for 1.5 s.
    const holder = spawn(process.execPath, ["--no-warnings", "-e", `
      const sqlite = process.getBuiltinModule?.("node:sqlite")
      const db = sqlite ? new sqlite.DatabaseSync(process.argv[1]) : new (require("better-sqlite3"))(process.argv[1])
      db.exec("BEGIN IMMEDIATE")
      console.log("locked")
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500)
      db.exec("COMMIT")
    `, file], { cwd: process.cwd(), stdio: ["ignore", "pipe", "inherit"] })
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("locked") && resolve())
      holder.on("exit", (code) => reject(new Error(`the lock holder exited with ${code}`)))
    })
    const inserted = await withStore(home, (store) => Effect.andThen(store.insert(r), store.find("W1")))
    expect(inserted).toMatchObject({ id: "W1" })
    await new Promise((resolve) => holder.exitCode === null ? holder.on("exit", resolve) : resolve(undefined))
    expect(holder.exitCode).toBe(0)
  })
})

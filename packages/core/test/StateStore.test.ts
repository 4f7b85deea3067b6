import { describe, expect, it } from "vitest"
import Database from "better-sqlite3"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { resolveBoxOptions } from "@boxlite/core"
import { type BoxRecord, layerSqlite, StateStore } from "../src/StateStore.js"

const withStore = <A>(home: string, f: (store: StateStore["Service"]) => Effect.Effect<A>) =>
  Effect.runPromise(Effect.provide(Effect.flatMap(StateStore.use(Effect.succeed), f), layerSqlite(home)))

const record = async (id: string): Promise<BoxRecord> => ({
  id, name: undefined, status: "configured", image: "busybox", options: await Effect.runPromise(resolveBoxOptions({ image: "busybox" })),
  runConfig: { env: [] } as unknown as BoxRecord["runConfig"], base: "/base", createdAt: new Date(), pid: undefined, supervisor: undefined,
  ports: [], booted: false, reason: undefined, layers: [], snapshot: undefined, restore: undefined, driver: "qemu", diskFormat: "qcow2"
})

describe("StateStore", () => {
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
    const old = new Database(path.join(home, "boxlite.db"))
    old.exec(`CREATE TABLE boxes (id TEXT PRIMARY KEY, name TEXT UNIQUE, status TEXT NOT NULL, image TEXT NOT NULL,
      options TEXT NOT NULL, created_at INTEGER NOT NULL, pid INTEGER)`)
    old.prepare("INSERT INTO boxes VALUES ('OLD', 'kept', 'stopped', 'busybox', ?, 1, NULL)").run(JSON.stringify((await record("x")).options))
    old.close()
    const found = await withStore(home, (store) => store.find("kept"))
    expect(found).toMatchObject({ id: "OLD", status: "stopped", ports: [], booted: false, supervisor: undefined, driver: "qemu", diskFormat: "qcow2" })
  })
})

// The waits of a box handle run on Effect's Clock (Schedule), not Date.now: a test moves time
// with TestClock and sees the outcome of a 30 s wait at once (issue 16).
import { describe, expect, it } from "vitest"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { BoxStateError } from "../src/Errors.js"
import { resolveBoxOptions } from "../src/Options.js"
import { BoxHandle } from "../src/internal/BoxHandle.js"
import { isAlive, refOf, selfRef } from "../src/internal/Proc.js"
import type { SupervisorPool } from "../src/internal/SupervisorPool.js"
import { type BoxRecord, layerSqlite, StateStore } from "../src/StateStore.js"

const record = (id: string, change: Partial<BoxRecord>): Effect.Effect<BoxRecord> =>
  Effect.map(Effect.orDie(resolveBoxOptions({ image: "busybox", readyTimeoutMs: 5_000, autoRemove: false })), (options) => ({
    id, name: undefined, status: "configured", image: "busybox", options,
    runConfig: { env: [] } as unknown as BoxRecord["runConfig"], base: "/base", createdAt: new Date(), pid: undefined, supervisor: undefined,
    ports: [], booted: false, reason: undefined, layers: [], snapshot: undefined, restore: undefined, driver: "qemu", diskFormat: "qcow2", ...change
  }))

const noSupervisors = { take: () => { throw new Error("must not launch") }, refill: () => {} } as unknown as SupervisorPool

/** Runs `f` on a box handle over a fresh home, on the TestClock. */
const withBox = <A, E>(change: Partial<BoxRecord>, f: (box: BoxHandle, store: StateStore["Service"]) => Effect.Effect<A, E>) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-waits-"))
  return Effect.runPromiseExit(
    Effect.gen(function*() {
      const store = yield* StateStore
      const r = yield* record("WAIT", change)
      yield* store.insert(r)
      const box = new BoxHandle(r, { homeDir: home, store, supervisors: noSupervisors, hypervisorInfo: Effect.succeed(undefined), onRemoved: () => {} })
      return yield* f(box, store)
    }).pipe(Effect.provide(layerSqlite(home)), Effect.provide(TestClock.layer()), Effect.ensuring(Effect.sync(() => fs.rmSync(home, { recursive: true, force: true }))))
  )
}

/** Advances the TestClock by `step` until `fiber` is done, letting real I/O (a child's death) happen in between. */
const driveUntilDone = <A, E>(fiber: Fiber.Fiber<A, E>, step: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1_000 && fiber.pollUnsafe() === undefined; i++) {
      yield* TestClock.adjust(step)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
    return yield* Fiber.await(fiber)
  })

describe("box handle waits", () => {
  it("a box another process keeps 'starting' fails the start with BoxStateError once readyTimeoutMs + 30 s have passed, not before", async () => {
    const exit = await withBox({ status: "starting", supervisor: selfRef() }, (box) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.forkChild(box.start)
        yield* TestClock.adjust("30 seconds")
        const early = fiber.pollUnsafe()
        yield* TestClock.adjust("6 seconds")
        return { early, outcome: yield* Fiber.await(fiber) }
      }))
    if (!Exit.isSuccess(exit)) throw new Error(String(exit.cause))
    expect(exit.value.early).toBeUndefined()
    const outcome = exit.value.outcome
    const error = Exit.isFailure(outcome) ? outcome.cause.reasons.map((r) => ("error" in r ? r.error : r))[0] : outcome
    expect(error).toBeInstanceOf(BoxStateError)
    expect(String((error as BoxStateError).message)).toMatch(/stayed "starting" too long/)
  })

  it("a supervisor that does not finish a stop is killed after 30 s and the box is stopped", async () => {
    const child = spawn("sleep", ["300"], { stdio: "ignore" })
    try {
      await new Promise((resolve) => child.once("spawn", resolve))
      const supervisor = refOf(child.pid!)!
      const exit = await withBox({ status: "running", supervisor, pid: child.pid }, (box, store) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.forkChild(box.stop)
          yield* TestClock.adjust("29 seconds")
          const aliveBefore = isAlive(supervisor)
          const outcome = yield* driveUntilDone(fiber, "1 second")
          return { aliveBefore, outcome, after: yield* store.find("WAIT") }
        }))
      if (!Exit.isSuccess(exit)) throw new Error(String(exit.cause))
      expect(exit.value.aliveBefore).toBe(true)
      expect(Exit.isSuccess(exit.value.outcome)).toBe(true)
      expect(isAlive(supervisor)).toBe(false)
      expect(exit.value.after).toMatchObject({ status: "stopped", supervisor: undefined })
    } finally {
      child.kill("SIGKILL")
    }
  })
})

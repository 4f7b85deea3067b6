// Opening a runtime, without a VM: what it tidies up in the home.
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { layer } from "../src/Runtime.js"
import { noVmPlatform } from "./noVmPlatform.js"

const homes: Array<string> = []
afterEach(() => homes.splice(0).forEach((home) => fs.rmSync(home, { recursive: true, force: true })))


const open = (homeDir: string) => Effect.runPromise(Effect.scoped(Effect.asVoid(Layer.build(layer({ homeDir }).pipe(Layer.provide(noVmPlatform))))))

describe("opening a runtime", () => {
  it("removes box and snapshot directories that no record claims once they are 10 minutes old, and keeps younger ones", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-runtime-"))
    homes.push(home)
    const dirs = ["boxes/OLD", "boxes/YOUNG", "snapshots/OLD", "snapshots/YOUNG"]
    for (const dir of dirs) fs.mkdirSync(path.join(home, dir), { recursive: true })
    const longAgo = new Date(Date.now() - 11 * 60_000)
    for (const dir of ["boxes/OLD", "snapshots/OLD"]) fs.utimesSync(path.join(home, dir), longAgo, longAgo)
    await open(home)
    expect(fs.readdirSync(path.join(home, "boxes"))).toEqual(["YOUNG"])
    expect(fs.readdirSync(path.join(home, "snapshots"))).toEqual(["YOUNG"])
  })
})

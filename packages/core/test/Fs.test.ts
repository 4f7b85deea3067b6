// File system failures in the runtime are typed StorageErrors, not defects (issue 16).
import { afterAll, describe, expect, it } from "vitest"
import { Effect, Exit, Logger } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { StorageError } from "../src/Errors.js"
import { orWarn, readDirIfExists, removeTree, statIfExists } from "../src/internal/Fs.js"
import { readLayouts } from "../src/internal/Layouts.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>) => (Exit.isFailure(exit) ? exit.cause.reasons.map((r) => ("error" in r ? r.error : r))[0] : undefined)

describe("file system effects", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-fs-"))
  const file = path.join(dir, "file")
  fs.writeFileSync(file, "x")
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it("a missing path is no failure; a path that cannot be read is a StorageError naming it", async () => {
    expect(await Effect.runPromise(readDirIfExists(path.join(dir, "missing")))).toEqual([])
    expect(await Effect.runPromise(statIfExists(path.join(dir, "missing")))).toBeUndefined()
    await Effect.runPromise(removeTree(path.join(dir, "missing")))
    for (const effect of [readDirIfExists(file), statIfExists(path.join(file, "child")), readLayouts(file)]) {
      const error = failureOf(await Effect.runPromiseExit(effect as Effect.Effect<unknown, StorageError>))
      expect(error).toBeInstanceOf(StorageError)
      expect((error as StorageError).message).toMatch(/ENOTDIR/)
      expect((error as StorageError).message).toContain(file)
    }
  })

  it("orWarn turns a failed cleanup into a logged warning", async () => {
    const logged: Array<string> = []
    const logger = Logger.make(({ message }) => void logged.push(String(message)))
    const result = await Effect.runPromise(orWarn(readDirIfExists(file)).pipe(Effect.provide(Logger.layer([logger]))))
    expect(result).toBeUndefined()
    expect(logged.join("\n")).toMatch(/cannot read .*ENOTDIR/)
  })
})

// <home>/config.json read by every entry point: a registry mirror written only there serves
// `new Boxlite()` and `npx boxlite run` (a real docker-registry on 127.0.0.1 publishing the
// offline busybox as Docker Hub's library/busybox; these machines reach no public registry, so
// a pull that works came through the mirror), its box defaults shape boxes, code's options win.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { Boxlite, SimpleBox } from "boxlite"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type RegistryFixture, startRegistry } from "../../../oci/test/registry-fixture.js"
import { boxDirs, qemuProcessesUnder, tempHome } from "./helpers.js"

const repo = fileURLToPath(new URL("../../../../", import.meta.url))
const homes: Array<string> = []

/** A fresh home (nothing pulled) whose config.json is `config`. */
const homeWith = (config: unknown): string => {
  const home = tempHome()
  homes.push(home)
  fs.writeFileSync(path.join(home, "config.json"), JSON.stringify(config, null, 2))
  return home
}

/** `npx boxlite ...args` from the repository root on `home`. */
const boxlite = (home: string, args: ReadonlyArray<string>) => {
  const r = spawnSync("npx", ["boxlite", ...args], { cwd: repo, env: { ...process.env, BOXLITE_HOME: home, BOXLITE_LOG: "" }, encoding: "utf8", input: "", timeout: 170_000 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

describe("config.json", () => {
  let registry: RegistryFixture
  let mirrors: { registries: Record<string, { mirrors: Array<string> }> }

  beforeAll(async () => {
    registry = await startRegistry()
    await registry.pushBusybox("library/busybox:latest")
    mirrors = { registries: { "docker.io": { mirrors: [registry.url] } } }
  })
  afterEach(() => {
    for (const home of homes) {
      expect(qemuProcessesUnder(home)).toEqual([])
      expect(boxDirs(home)).toEqual([])
    }
  })
  afterAll(async () => {
    await registry.stop()
    for (const home of homes) fs.rmSync(home, { recursive: true, force: true })
  })

  it("its mirror serves new Boxlite(), its defaults shape the box, and the options in code win", async () => {
    const home = homeWith({ ...mirrors, defaults: { memoryMib: 256, env: { FROM_CONFIG: "config", BOTH: "config" } } })
    await using runtime = new Boxlite({ homeDir: home })
    await using box = new SimpleBox({ image: "busybox:latest", env: { BOTH: "code" }, runtime })
    const result = await box.exec("sh", "-c", "echo $FROM_CONFIG $BOTH; grep MemTotal /proc/meminfo")
    expect(result.stdout).toMatch(/^config code\nMemTotal: +\d+ kB\n$/)
    // 256 MiB less what the kernel keeps: well under the 512 MiB BoxLite would give.
    expect(Number(/(\d+) kB/.exec(result.stdout)![1])).toBeLessThan(256 * 1024)
    expect((await box.info()).memoryMib).toBe(256)
    expect((await runtime.images.list()).map((i) => i.reference)).toEqual(["docker.io/library/busybox:latest"])

    const given = await runtime.create({ image: "busybox:latest", memoryMib: 384 })
    expect((await given.info()).memoryMib).toBe(384)
    await given.remove()
  }, 240_000)

  it("its mirror serves npx boxlite run", () => {
    const home = homeWith(mirrors)
    const run = boxlite(home, ["run", "busybox:latest", "echo", "pulled through the mirror"])
    expect(run.err).toBe("")
    expect(run.out).toBe("pulled through the mirror\n")
    expect(run.code).toBe(0)
    expect(boxlite(home, ["images"]).out).toContain("docker.io/library/busybox")
  }, 240_000)

  it("a bad config.json: the CLI exits 125 naming the file and the field, and nothing is pulled or made", () => {
    const home = homeWith({ ...mirrors, defaults: { memoryMib: 1 } })
    const run = boxlite(home, ["run", "busybox:latest", "true"])
    expect(run.code).toBe(125)
    expect(run.err).toContain(`InvalidOptions: config.json:defaults.memoryMib`)
    expect(run.err).toContain(path.join(home, "config.json"))
    expect(fs.existsSync(path.join(home, "images", "blobs"))).toBe(false)
  }, 60_000)
})

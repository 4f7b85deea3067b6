import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { ContentStore, layer, make, type PullProgress } from "../src/index.js"
import {
  BUSYBOX_LAYOUT, busyboxManifest, busyboxManifestDigest, type RegistryFixture, removeTempDirs, sha256, startProxy, startRegistry, tempDir
} from "./registry-fixture.js"

let registry: RegistryFixture
/** Counts requests to the registry, by path, so tests can tell what was downloaded. */
let counting: Awaited<ReturnType<typeof startProxy>>
const requests: Array<string> = []

beforeAll(async () => {
  registry = await startRegistry()
  await registry.pushBusybox("busybox:latest")
  counting = await startProxy(registry.url, (req) => {
    requests.push(req.url ?? "")
    return false
  })
}, 30_000)

afterAll(async () => {
  await counting?.close()
  await registry?.stop()
  removeTempDirs()
})

const insecure = () => ({ registries: { [counting.host]: { insecure: true } } })
const blobNames = (dir: string) => fs.readdirSync(path.join(dir, "blobs/sha256")).sort()

describe("pull into the content store", () => {
  it("pulls by tag, verifies and stores the blobs, and downloads nothing the second time", async () => {
    const dir = tempDir("store-")
    const store = make(dir)
    const { config, layers } = busyboxManifest()
    requests.length = 0
    const image = await Effect.runPromise(store.pull(`${counting.host}/busybox:latest`, insecure()))
    expect(image.manifestDigest).toBe(busyboxManifestDigest())
    expect(image.configDigest).toBe(config.digest)
    expect(image.reference).toBe(`${counting.host}/busybox:latest`)
    expect(image.layers.map((l) => [l.digest, l.size, l.compression])).toEqual(layers.map((l) => [l.digest, l.size, "gzip"]))
    for (const l of image.layers) expect(sha256(fs.readFileSync(l.path))).toBe(l.digest)
    expect(blobNames(dir)).toEqual([busyboxManifestDigest(), config.digest, layers[0]!.digest].map((d) => d.slice(7)).sort())
    expect(requests.filter((r) => r.includes("/blobs/"))).toHaveLength(2)

    requests.length = 0
    const again = await Effect.runPromise(store.pull(`${counting.host}/busybox:latest`, insecure()))
    expect(again).toEqual(image)
    expect(requests.filter((r) => r.includes("/blobs/"))).toEqual([])
  })

  it("pulls by digest", async () => {
    const store = make(tempDir("store-"))
    const ref = `${counting.host}/busybox@${busyboxManifestDigest()}`
    const image = await Effect.runPromise(store.pull(ref, insecure()))
    expect(image.manifestDigest).toBe(busyboxManifestDigest())
    expect(await Effect.runPromise(store.resolveLocal(ref))).toEqual(image)
  })

  it("reports progress that adds up to the layer sizes", async () => {
    const events: Array<PullProgress> = []
    await Effect.runPromise(make(tempDir("store-")).pull(`${counting.host}/busybox:latest`, { ...insecure(), onProgress: (e) => events.push(e) }))
    const sizes = busyboxManifest().layers.map((l) => l.size)
    const total = sizes.reduce((a, b) => a + b, 0)
    expect(events[0]?.phase).toBe("resolving")
    expect(events.at(-1)).toMatchObject({ phase: "done", downloadedBytes: total, totalBytes: total })
    expect(events.at(-1)?.layers.map((l) => [l.downloadedBytes, l.totalBytes, l.cached])).toEqual(sizes.map((s) => [s, s, false]))
    const downloading = events.filter((e) => e.phase === "downloading").map((e) => e.downloadedBytes)
    expect(downloading.length).toBeGreaterThan(2)
    expect(downloading).toEqual([...downloading].sort((a, b) => a - b))
  })

  it("survives two pulls of the same image at once, keeping one copy of each blob", async () => {
    const dir = tempDir("store-")
    const store = make(dir)
    const [a, b] = await Promise.all([
      Effect.runPromise(store.pull(`${counting.host}/busybox:latest`, insecure())),
      Effect.runPromise(make(dir).pull(`${counting.host}/busybox:latest`, insecure()))
    ])
    expect(a.layers).toEqual(b.layers)
    // Three blobs (manifest, config, layer) and no temp files left behind.
    expect(blobNames(dir)).toHaveLength(3)
  })

  it("lists, inspects, removes and prunes", async () => {
    const dir = tempDir("store-")
    const program = Effect.gen(function*() {
      const store = yield* ContentStore
      const byTag = `${counting.host}/busybox:latest`
      const byDigest = `${counting.host}/busybox@${busyboxManifestDigest()}`
      yield* store.pull(byTag, insecure())
      yield* store.pull(byDigest, insecure())

      const list = yield* store.list
      expect(list.map((i) => i.reference)).toEqual([byDigest, byTag].sort())
      const { config, layers } = busyboxManifest()
      expect(list[0]).toMatchObject({ manifestDigest: busyboxManifestDigest(), configDigest: config.digest, platform: { os: "linux" }, size: config.size + layers[0]!.size })

      const details = yield* store.inspect(byTag)
      expect(details.config.cmd.length + details.config.entrypoint.length).toBeGreaterThan(0)
      expect(details.layers.map((l) => l.digest)).toEqual(layers.map((l) => l.digest))

      yield* store.remove(byTag)
      expect(yield* store.resolveLocal(byTag)).toBeUndefined()
      expect(String(yield* Effect.flip(store.remove(byTag)))).toMatch(/ImageNotFound.*has not been pulled/s)
      // The digest reference still uses every blob.
      expect(yield* store.prune()).toEqual({ removedBlobs: 0, freedBytes: 0 })

      yield* store.remove(byDigest)
      const freed = yield* store.prune()
      expect(freed.removedBlobs).toBe(3)
      expect(freed.freedBytes).toBe(config.size + layers[0]!.size + fs.statSync(path.join(BUSYBOX_LAYOUT, "blobs/sha256", busyboxManifestDigest().slice(7))).size)
      expect(yield* store.list).toEqual([])
    })
    await Effect.runPromise(Effect.provide(program, layer({ dir })))
  })

  it("refuses oci: references and keeps blobs named in keepDigests", async () => {
    const store = make(tempDir("store-"))
    expect(String(await Effect.runPromise(Effect.flip(store.pull("oci:/some/layout"))))).toMatch(/InvalidReference.*read in place/s)
    await Effect.runPromise(store.pull(`${counting.host}/busybox:latest`, insecure()))
    await Effect.runPromise(store.remove(`${counting.host}/busybox:latest`))
    const layerDigest = busyboxManifest().layers[0]!.digest
    const result = await Effect.runPromise(store.prune([layerDigest]))
    expect(result.removedBlobs).toBe(2)
    expect(blobNames(store.dir)).toEqual([layerDigest.slice(7)])
  })
})

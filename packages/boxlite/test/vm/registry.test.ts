import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Boxlite, ImageNotFound, type PullProgress, RegistryError, SimpleBox } from "boxlite"
import { execFileSync } from "node:child_process"
import { startRegistry, type RegistryFixture } from "../../../oci/test/registry-fixture.js"
import { boxDirs, PYTHON, qemuProcessesUnder, tempHome } from "./helpers.js"

describe("images from a registry", () => {
  let registry: RegistryFixture
  const home = tempHome()
  let runtime: Boxlite

  beforeAll(async () => {
    registry = await startRegistry()
    // The offline Python image, published as Docker Hub's library/python:slim on a local mirror.
    execFileSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", PYTHON, `docker://${registry.host}/library/python:slim`])
    runtime = new Boxlite({ homeDir: home, registries: { "docker.io": { mirrors: [`http://${registry.host}`] }, [registry.host]: { insecure: true } } })
  })
  afterAll(async () => {
    await runtime.close()
    await registry.stop()
  })

  it("pulls python:slim through the docker.io mirror with progress, then boots it", async () => {
    const events: Array<PullProgress> = []
    const info = await runtime.images.pull("python:slim", { onProgress: (e) => events.push(e) })
    expect(info.reference).toBe("docker.io/library/python:slim")
    const last = events.at(-1)!
    expect(last.phase).toBe("done")
    expect(last.downloadedBytes).toBe(last.totalBytes)
    expect((await runtime.images.list()).map((i) => i.reference)).toEqual(["docker.io/library/python:slim"])
    expect((await runtime.images.inspect("python:slim")).config.cmd).toEqual(["python3"])

    await using box = new SimpleBox({ image: "python:slim", runtime })
    const result = await box.exec("python", "-c", "print('from the registry')")
    expect(result.stdout).toBe("from the registry\n")
  }, 300_000)

  it("create pulls a missing image by itself", async () => {
    execFileSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", PYTHON, `docker://${registry.host}/tools/py:1`])
    const box = await runtime.create({ image: `${registry.host}/tools/py:1` })
    expect((await box.info()).image).toBe(`${registry.host}/tools/py:1`)
    await box.remove()
  }, 300_000)

  it("an unknown image is ImageNotFound and an unreachable registry a RegistryError, with nothing left behind", async () => {
    const missing = await runtime.create({ image: `${registry.host}/nope/nothing:1` }).catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(ImageNotFound)
    expect(String(missing)).toContain("nope/nothing")
    const unreachable = await runtime.create({ image: "127.0.0.1:1/app:1" }).catch((e: unknown) => e)
    expect(unreachable).toBeInstanceOf(RegistryError)
    expect(qemuProcessesUnder(home)).toEqual([])
    expect(boxDirs(home)).toEqual([])
  })

  it("remove + prune free the image's blobs and base once no box uses them", async () => {
    const box = await runtime.create({ image: "python:slim", autoRemove: false })
    await runtime.images.remove("python:slim")
    await runtime.images.remove(`${registry.host}/tools/py:1`)
    const whileUsed = await runtime.images.prune()
    expect(whileUsed.removedBases).toBe(0)
    await box.remove()
    const after = await runtime.images.prune()
    expect(after.removedBases).toBe(1)
    expect(await runtime.images.list()).toEqual([])
  }, 300_000)
})

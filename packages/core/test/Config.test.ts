// <home>/config.json without a VM: decoding, the merge with what code passes, errors naming the
// file and the field, and that opening a runtime reads it (its mirror is asked for a pull).
import { Effect, Exit, Layer } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { decodeConfig, mergeRegistries, readConfig, validateRegistries } from "../src/Config.js"
import { InvalidOptions } from "../src/Errors.js"
import { resolveBoxOptions } from "../src/Options.js"
import { Boxlite } from "../src/promise/Boxlite.js"
import { layer, Runtime } from "../src/Runtime.js"
import { noVmPlatform } from "./noVmPlatform.js"

const homes: Array<string> = []
afterEach(() => homes.splice(0).forEach((home) => fs.rmSync(home, { recursive: true, force: true })))

const tempHome = (config?: unknown): string => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "bl-config-"))
  homes.push(home)
  if (config !== undefined) fs.writeFileSync(path.join(home, "config.json"), typeof config === "string" ? config : JSON.stringify(config))
  return home
}

const failure = async (effect: Effect.Effect<unknown, InvalidOptions>): Promise<InvalidOptions> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const reason = exit.cause.reasons[0]
  if (!reason || !("error" in reason)) throw new Error("expected a typed failure")
  return reason.error as InvalidOptions
}

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

describe("decoding config.json", () => {
  it("takes registries in the runtime option's shape and box defaults", async () => {
    const config = {
      registries: {
        "docker.io": { mirrors: ["http://127.0.0.1:5000", "mirror.example"] },
        "registry.example:5443": { ca: PEM, auth: { username: "u", password: "p" } },
        "ghcr.io": { auth: { token: "t" } },
        "127.0.0.1:5001": { insecure: true }
      },
      defaults: { image: "alpine:3", cpus: 1, memoryMib: 256, env: { A: "1" }, network: { mode: "nat", deny: ["private"] }, readyTimeoutMs: 90_000 }
    }
    expect(await Effect.runPromise(decodeConfig(config, "/h/config.json"))).toEqual(config)
    expect(await Effect.runPromise(decodeConfig({}, "/h/config.json"))).toEqual({})
  })

  it.each([
    [[], "config.json"],
    ["x", "config.json"],
    [{ registry: {} }, "config.json:registry"],
    [{ registries: [] }, "config.json:registries"],
    [{ registries: { "https://docker.io": {} } }, `config.json:registries["https://docker.io"]`],
    [{ registries: { "docker.io": "http://m" } }, `config.json:registries["docker.io"]`],
    [{ registries: { "docker.io": { mirror: ["http://m"] } } }, `config.json:registries["docker.io"].mirror`],
    [{ registries: { "docker.io": { mirrors: "http://m" } } }, `config.json:registries["docker.io"].mirrors`],
    [{ registries: { "docker.io": { mirrors: ["ftp://m"] } } }, `config.json:registries["docker.io"].mirrors`],
    [{ registries: { "docker.io": { insecure: "yes" } } }, `config.json:registries["docker.io"].insecure`],
    [{ registries: { "docker.io": { ca: "/etc/ca.pem" } } }, `config.json:registries["docker.io"].ca`],
    [{ registries: { "docker.io": { auth: { username: "u" } } } }, `config.json:registries["docker.io"].auth`],
    [{ registries: { "docker.io": { auth: { token: "t", username: "u", password: "p" } } } }, `config.json:registries["docker.io"].auth`],
    [{ defaults: [] }, "config.json:defaults"],
    [{ defaults: { memoryMib: 64 } }, "config.json:defaults.memoryMib"],
    [{ defaults: { env: { "A=B": "1" } } }, "config.json:defaults.env"],
    [{ defaults: { network: { mode: "nat", allow: ["10.0.0.0/33"] } } }, "config.json:defaults.network.allow[0]"],
    // One box's own, or what a box is: not defaults.
    [{ defaults: { name: "x" } }, "config.json:defaults.name"],
    [{ defaults: { ports: [[8080, 80]] } }, "config.json:defaults.ports"],
    [{ defaults: { volumes: [["/tmp", "/x"]] } }, "config.json:defaults.volumes"],
    [{ defaults: { autoRemove: false } }, "config.json:defaults.autoRemove"],
    [{ defaults: { memory_mib: 256 } }, "config.json:defaults.memory_mib"]
  ])("%j is InvalidOptions naming %s", async (config, field) => {
    const error = await failure(decodeConfig(config, "/h/config.json"))
    expect(error).toBeInstanceOf(InvalidOptions)
    expect(error.field).toBe(field)
    expect(error.message).toContain("/h/config.json")
  })

  it("says what an unknown key probably meant", async () => {
    expect((await failure(decodeConfig({ defaults: { memory_mib: 256 } }, "/h/config.json"))).message).toContain(`did you mean "memoryMib"?`)
    expect((await failure(decodeConfig({ regsitries: {} }, "/h/config.json"))).message).toContain(`did you mean "registries"?`)
  })

  it("reads <home>/config.json: none is an empty config, bad JSON or an unreadable file is InvalidOptions(config.json)", async () => {
    expect(await Effect.runPromise(readConfig(tempHome()))).toEqual({})
    expect(await Effect.runPromise(readConfig(tempHome({ defaults: { cpus: 1 } })))).toEqual({ defaults: { cpus: 1 } })
    const badJson = tempHome("{ \"defaults\": ")
    const error = await failure(readConfig(badJson))
    expect(error.field).toBe("config.json")
    expect(error.message).toContain(`${badJson}/config.json is not valid JSON`)
    const directory = tempHome()
    fs.mkdirSync(path.join(directory, "config.json"))
    expect((await failure(readConfig(directory))).message).toContain("cannot read")
  })
})

describe("what code passes wins", () => {
  it("registries: per host, each field code gives; the file's other fields and hosts stay", () => {
    const fromConfig = { "docker.io": { mirrors: ["http://m1"], insecure: false }, "ghcr.io": { auth: { token: "t" } } }
    expect(mergeRegistries(fromConfig, { "docker.io": { insecure: true }, "quay.io": { mirrors: ["http://m2"] } })).toEqual({
      "docker.io": { mirrors: ["http://m1"], insecure: true },
      "ghcr.io": { auth: { token: "t" } },
      "quay.io": { mirrors: ["http://m2"] }
    })
    expect(mergeRegistries(fromConfig, { "docker.io": { mirrors: ["http://m3"], insecure: undefined } })["docker.io"]).toEqual({ mirrors: ["http://m3"], insecure: false })
    expect(mergeRegistries(undefined, undefined)).toEqual({})
  })

  it("box defaults: a field given replaces the default, env is merged by variable", async () => {
    const defaults = { image: "alpine:3", memoryMib: 256, env: { A: "from-config", B: "from-config" }, network: "none" as const }
    const resolved = await Effect.runPromise(resolveBoxOptions({ memoryMib: 1024, env: [["B", "from-code"], ["C", "from-code"]], network: undefined }, defaults))
    expect(resolved).toMatchObject({ image: "alpine:3", memoryMib: 1024, cpus: 1, network: "none" })
    expect(resolved.env).toEqual([["A", "from-config"], ["B", "from-code"], ["C", "from-code"]])
    expect((await Effect.runPromise(resolveBoxOptions(undefined, defaults))).image).toBe("alpine:3")
    // A bad value in code is still named as the code's.
    expect((await failure(resolveBoxOptions({ memoryMib: 1 }, defaults))).field).toBe("memoryMib")
  })

  it("the runtime's registries option is checked with the same rules", async () => {
    expect((await failure(validateRegistries({ "docker.io": { mirrors: [7] } }))).field).toBe(`registries["docker.io"].mirrors`)
    expect(await Effect.runPromise(validateRegistries(undefined))).toEqual({})
  })
})


/** A registry that has nothing: records the paths asked, answers 404. */
const emptyRegistry = async () => {
  const paths: Array<string> = []
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? "")
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "unknown" }] }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { paths, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

describe("opening a runtime reads config.json", () => {
  it("its mirror is asked first, and a field code gives for the same registry is added", async () => {
    const mirror = await emptyRegistry()
    try {
      // 127.0.0.1:1 listens to nothing: after the mirror's 404 the pull ends on this machine.
      const home = tempHome({ registries: { "127.0.0.1:1": { mirrors: [mirror.url] } } })
      const failed = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const runtime = yield* Layer.build(layer({ homeDir: home, registries: { "127.0.0.1:1": { insecure: true } } }).pipe(Layer.provide(noVmPlatform)))
        return yield* Effect.flip(Runtime.use((r) => r.images.pull("127.0.0.1:1/library/busybox:latest")).pipe(Effect.provide(runtime)))
      })))
      expect(mirror.paths[0]).toBe("/v2/library/busybox/manifests/latest")
      // The registry itself was then asked over plain HTTP (insecure, from code), not TLS.
      expect(failed.message).toContain("http://127.0.0.1:1")
    } finally {
      await mirror.close()
    }
  })

  it("a bad file makes every call of the Promise face reject with InvalidOptions naming config.json and the field", async () => {
    const home = tempHome({ defaults: { cpus: 0 } })
    await using runtime = new Boxlite({ homeDir: home }, noVmPlatform)
    const error = await runtime.list().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidOptions)
    expect((error as InvalidOptions).field).toBe("config.json:defaults.cpus")
    expect(await runtime.create({}).catch((e: unknown) => (e as InvalidOptions).field)).toBe("config.json:defaults.cpus")
  })

  it("a bad registries option in code is InvalidOptions naming it", async () => {
    await using runtime = new Boxlite({ homeDir: tempHome(), registries: { "docker.io": { insecure: "no" as unknown as boolean } } }, noVmPlatform)
    expect(await runtime.list().catch((e: unknown) => (e as InvalidOptions).field)).toBe(`registries["docker.io"].insecure`)
  })
})

// The fake driver's own promises beyond the contract: its environment, saved state checked on restore.
import { BootError, HypervisorUnavailable, SnapshotError, type VmSpec } from "@boxlite/driver"
import { decodeJson, encodeFrame, encodeJson, FrameDecoder, FrameType, Thawed } from "@boxlite/agent-protocol"
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Duplex } from "node:stream"
import { afterAll, describe, expect, it } from "vitest"
import { driver, make, optionsFromEnv, writeFakeGuest } from "../src/index.js"

const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-fd-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))
const guest = writeFakeGuest(path.join(work, "guest"))

let boxes = 0
const specOf = (overrides: Partial<VmSpec> = {}): VmSpec => {
  const dir = path.join(work, `box${++boxes}`)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, "disk.qcow2"), "")
  return { boxId: `01FAKEDRIVERTEST${boxes}`, dir, ...guest, rootDisk: path.join(dir, "disk.qcow2"), cpus: 1, memoryMib: 256, network: undefined, volumes: [], ...overrides }
}

const withEnv = async <A>(vars: Record<string, string>, body: () => Promise<A>): Promise<A> => {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  try {
    return await body()
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? delete process.env[k] : (process.env[k] = v)
  }
}

/** Sends a frame and resolves with the payload of the first frame of type `expected` that comes back. */
const answer = (channel: Duplex, type: number, payload: Uint8Array, expected: number, stream = 0) =>
  new Promise<Uint8Array>((resolve) => {
    const decoder = new FrameDecoder()
    const onData = (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.type === expected) {
          channel.off("data", onData)
          resolve(frame.payload)
        }
      }
    }
    channel.on("data", onData)
    channel.write(encodeFrame(type, stream, payload))
  })

describe("the fake driver's environment (test-only)", () => {
  it("reads BOXLITE_FAKE_FAULT and BOXLITE_FAKE_CAPS, and says what is wrong with them", async () => {
    expect(optionsFromEnv({})).toEqual({})
    expect(optionsFromEnv({ BOXLITE_FAKE_FAULT: "boot-fails", BOXLITE_FAKE_CAPS: `{"diskFormats":["raw"],"volumes":false}` }))
      .toEqual({ fault: "boot-fails", capabilities: { diskFormats: ["raw"], volumes: false } })
    expect(optionsFromEnv({ BOXLITE_FAKE_FAULT: "boot-fail" })).toMatch(/BOXLITE_FAKE_FAULT=boot-fail is not one of boot-fails, /)
    expect(optionsFromEnv({ BOXLITE_FAKE_CAPS: `{"diskFormats":["vmdk"]}` })).toMatch(/BOXLITE_FAKE_CAPS is not JSON of capabilities/)
    // A typo must not quietly run the fault-free path: the driver is unavailable, saying why.
    const broken = await withEnv({ BOXLITE_FAKE_CAPS: "{not json" }, async () => driver.make())
    const error = await Effect.runPromise(Effect.flip(broken.info))
    expect(error).toBeInstanceOf(HypervisorUnavailable)
    expect(error.message).toContain("BOXLITE_FAKE_CAPS")
    const raw = await withEnv({ BOXLITE_FAKE_CAPS: `{"diskFormats":["raw"]}` }, async () => driver.make())
    expect(raw.capabilities.diskFormats).toEqual(["raw"])
  })

  it("refuses a spec asking what it did not declare", async () => {
    const noNet = make({ capabilities: { network: false, diskFormats: ["raw"] } })
    const net = { allowHostLoopback: false, ports: [] }
    for (const spec of [specOf({ network: net, rootDiskFormat: "raw" }), specOf({ rootDiskFormat: "qcow2" })]) {
      const error = await Effect.runPromise(Effect.flip(Effect.scoped(noNet.start(spec))))
      expect(error).toBeInstanceOf(BootError)
    }
  })
})

describe("the fake driver's saved state", () => {
  it("restores what it saved, and refuses a damaged or foreign state", async () => {
    const fake = make()
    const spec = specOf()
    const scope = Scope.makeUnsafe()
    const vm = await Effect.runPromise(Scope.provide(fake.start(spec), scope))
    await answer(vm.agent, FrameType.HELLO, encodeJson({ version: 1 }), FrameType.HELLO_ACK)
    await answer(vm.agent, FrameType.EXEC, encodeJson({ argv: ["true"], env: [] }), FrameType.EXIT, 7)
    await vm.control!.pause()
    const saved = await vm.control!.saveState(path.join(spec.dir, "state"))
    expect((fs.statSync(saved.file).mode & 0o777).toString(8)).toBe("600")
    await Effect.runPromise(Scope.close(scope, Exit.void))

    // Restored: frozen until THAW, then it numbers streams on from where it was.
    const again = Scope.makeUnsafe()
    const restored = await Effect.runPromise(Scope.provide(fake.start({ ...spec, restore: saved }), again))
    const thawed = decodeJson(Thawed, await answer(restored.agent, FrameType.THAW, encodeJson({ timeMs: Date.now(), fresh: true }), FrameType.THAWED))
    expect(thawed).toEqual({ nextStream: 8 })
    await Effect.runPromise(Scope.close(again, Exit.void))

    const foreign = await Effect.runPromise(Effect.flip(Effect.scoped(fake.start({ ...spec, cpus: 2, restore: saved }))))
    expect(foreign).toMatchObject({ _tag: "SnapshotError", reason: "incompatible" })
    fs.appendFileSync(saved.file, " ")
    const damaged = await Effect.runPromise(Effect.flip(Effect.scoped(fake.start({ ...spec, restore: saved }))))
    expect(damaged).toBeInstanceOf(SnapshotError)
    expect(damaged).toMatchObject({ reason: "corrupt" })
  })
})

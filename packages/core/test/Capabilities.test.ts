// What a box asks of a driver that cannot do it: refused before anything is made, naming the option.
import type { DriverCapabilities } from "@boxlite/driver"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { unsupportedOption } from "../src/internal/Capabilities.js"
import { type BoxOptions, resolveBoxOptions } from "../src/Options.js"

const ALL: DriverCapabilities = {
  diskFormats: ["qcow2"], network: true, portForwards: true, egressPolicy: true, volumes: true, snapshots: true, agentTransport: "vsock"
}
const check = async (can: Partial<DriverCapabilities>, options: BoxOptions) =>
  unsupportedOption("fake", { ...ALL, ...can }, await Effect.runPromise(resolveBoxOptions({ image: "alpine", ...options })))

describe("unsupportedOption", () => {
  it("lets through what the driver can do", async () => {
    expect(await check({}, { ports: [[8080, 80]], volumes: [["/tmp", "/mnt"]], network: { mode: "nat", deny: ["private"] } })).toBeUndefined()
    expect(await check({ network: false, portForwards: false, egressPolicy: false, volumes: false }, { network: "none" })).toBeUndefined()
  })

  it("names the field of each thing it cannot", async () => {
    const cases: Array<[Partial<DriverCapabilities>, BoxOptions, string, RegExp]> = [
      [{ network: false }, {}, "network", /gives boxes no network/],
      [{ portForwards: false }, { ports: [[8080, 80]] }, "ports", /cannot forward host ports/],
      [{ egressPolicy: false }, { network: { mode: "nat", allow: ["10.0.0.0/8"] } }, "network", /allow\/deny/],
      [{ egressPolicy: false }, { network: { mode: "nat", deny: ["private"] } }, "network", /allow\/deny/],
      [{ volumes: false }, { volumes: [["/tmp", "/mnt"]] }, "volumes", /cannot share host directories/],
      [{ diskFormats: [] }, {}, "image", /no disk format/]
    ]
    for (const [can, options, field, message] of cases) {
      const refusal = await check(can, options)
      expect(refusal?._tag).toBe("InvalidOptions")
      expect(refusal?.field).toBe(field)
      expect(refusal?.message).toMatch(/the fake driver/)
      expect(refusal?.message).toMatch(message)
    }
  })

  it("a driver without an egress policy still runs boxes with the default network", async () => {
    expect(await check({ egressPolicy: false }, {})).toBeUndefined()
  })
})

import { describe, expect, it } from "vitest"
import { INITIAL_WINDOW } from "@boxlite/agent-protocol"
import { OutputQueue } from "../src/internal/OutputQueue.js"

const CHUNK = 32 * 1024

/** A queue with the guest's side simulated: `inFlight` is what the guest may not send more of. */
const setup = () => {
  const guest = { inFlight: 0 }
  const queue = new OutputQueue((bytes) => (guest.inFlight -= bytes))
  const send = () => {
    guest.inFlight += CHUNK
    return queue.push(new Uint8Array(CHUNK))
  }
  const fillWindow = () => {
    while (guest.inFlight + CHUNK <= INITIAL_WINDOW) send()
  }
  return { guest, queue, fillWindow }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("OutputQueue: a reader that stops half way never blocks the process for good", () => {
  it("a reader that read one chunk and walked away: the rest is dropped after the grace, credit returns", async () => {
    const { guest, queue, fillWindow } = setup()
    fillWindow()
    await queue.read()
    fillWindow()
    expect(guest.inFlight).toBe(INITIAL_WINDOW)
    queue.discardWhenAbandoned(50)
    await sleep(400)
    expect(guest.inFlight).toBe(0)
    queue.push(new Uint8Array(0))
    expect(await queue.read()).toBeNull()
  })

  it("a reader that keeps reading loses nothing", async () => {
    const { guest, queue, fillWindow } = setup()
    fillWindow()
    // A grace far above the reader's pauses, so a loaded machine's late timers do not matter.
    queue.discardWhenAbandoned(1000)
    let received = 0
    for (let round = 0; round < 20; round++) {
      await sleep(5)
      for (let i = 0; i < 2; i++) received += (await queue.read())!.length
      fillWindow()
    }
    expect(received).toBe(40 * CHUNK)
    expect(guest.inFlight).toBeLessThanOrEqual(INITIAL_WINDOW)
  })

  it("a stream that ended is left alone: a late reader still gets everything", async () => {
    const { queue } = setup()
    queue.push(new Uint8Array(10))
    queue.push(new Uint8Array(0))
    queue.discardWhenAbandoned(10)
    await sleep(50)
    expect((await queue.read())!.length).toBe(10)
    expect(await queue.read()).toBeNull()
  })
})

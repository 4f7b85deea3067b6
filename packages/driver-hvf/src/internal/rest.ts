/**
 * vfkit's REST API on its unix socket (doc/usage.md, "RESTful API"): `GET /vm/state` answers
 * `{ "state": "VirtualMachineStateRunning", ... }`; `POST /vm/state { "state": "Pause" | "Resume" |
 * "Stop" | "HardStop" }` answers 202 or 500 with `{ "error": "..." }`.
 */
import { Client } from "undici"

export type StateChange = "Pause" | "Resume" | "Stop" | "HardStop"

/** VZVirtualMachineState as vfkit names it. */
export const RUNNING = "VirtualMachineStateRunning"

export class VfkitRest {
  private readonly client: Client

  constructor(socketPath: string, private readonly timeoutMs = 5_000) {
    this.client = new Client("http://localhost", { socketPath, connect: { timeout: timeoutMs } })
  }

  async state(): Promise<string> {
    const res = await this.client.request({ path: "/vm/state", method: "GET", headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs })
    const body = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`vfkit GET /vm/state: HTTP ${res.statusCode} ${body}`)
    return String((JSON.parse(body) as { state?: unknown }).state)
  }

  async change(state: StateChange): Promise<void> {
    const res = await this.client.request({
      path: "/vm/state",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ state }),
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs
    })
    const body = await res.body.text()
    if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`vfkit ${state}: HTTP ${res.statusCode} ${body}`.trim())
  }

  close(): void {
    void this.client.destroy().catch(() => undefined)
  }
}

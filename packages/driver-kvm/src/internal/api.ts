/** cloud-hypervisor's REST API on its unix socket (`--api-socket`), through undici. */
import { Client } from "undici"

export interface ApiResponse {
  readonly status: number
  readonly body: string
}

export class CloudHypervisorApi {
  private readonly client: Client

  constructor(readonly socket: string, timeoutMs = 10_000) {
    this.client = new Client("http://localhost", { socketPath: socket, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, pipelining: 0 })
  }

  /** One call to /api/v1/<endpoint>; resolves with any status, rejects if the socket fails. */
  async call(method: "GET" | "PUT", endpoint: string, body?: unknown): Promise<ApiResponse> {
    const response = await this.client.request({
      method,
      path: `/api/v1/${endpoint}`,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } })
    })
    return { status: response.statusCode, body: await response.body.text() }
  }

  /** A call that must succeed (2xx); otherwise rejects with cloud-hypervisor's own error text. */
  async expect(method: "GET" | "PUT", endpoint: string, body?: unknown): Promise<string> {
    const response = await this.call(method, endpoint, body)
    if (response.status < 200 || response.status >= 300) {
      throw new Error(`cloud-hypervisor ${method} ${endpoint}: HTTP ${response.status} ${response.body.trim()}`)
    }
    return response.body
  }

  close(): Promise<void> {
    return this.client.destroy()
  }
}

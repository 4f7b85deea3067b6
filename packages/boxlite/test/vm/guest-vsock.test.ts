// The guest agent's vsock channel, end to end. QEMU here has no vsock device (no
// /dev/vhost-vsock), but the guest kernel's loopback transport is real: with
// `boxlite.vsock.loopback=1` (tests only) a program in the guest connects to the agent at
// (VMADDR_CID_LOCAL, port) and speaks the agent protocol to it, while the host drives the same
// agent over virtio-serial. Without it (what drivers set) no guest process reaches the agent.
// The kernel command line gets the keys through BOXLITE_GUEST_CMDLINE_EXTRA (read by the box's
// supervisor).
import { afterAll, describe, expect, it } from "vitest"
import { Boxlite, SimpleBox } from "boxlite"
import * as fs from "node:fs"
import * as path from "node:path"
import { boxDirs, PYTHON, qemuProcessesUnder, tempHome } from "./helpers.js"

const PORT = 1024

// A minimal agent-protocol client (PROTOCOL.md): HELLO, then EXEC `echo hi` on stream 1;
// prints the agent's name, the exec's stdout and its exit status as one JSON line.
const CLIENT = String.raw`
import json, socket, struct, sys
try:
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect((1, int(sys.argv[1])))  # VMADDR_CID_LOCAL
except OSError as e:
    print(json.dumps({"connectError": type(e).__name__ + ": " + str(e)}))
    sys.exit(3)
def send(typ, stream, obj):
    p = json.dumps(obj).encode()
    s.sendall(struct.pack(">IBI", 5 + len(p), typ, stream) + p)
buf = b""
def recv():
    global buf
    while True:
        if len(buf) >= 4:
            n = struct.unpack(">I", buf[:4])[0]
            if len(buf) >= 4 + n:
                typ, stream = struct.unpack(">BI", buf[4:9])
                payload, buf = buf[9:4 + n], buf[4 + n:]
                return typ, stream, payload
        d = s.recv(65536)
        if not d:
            raise EOFError("the agent closed the connection")
        buf += d
send(1, 0, {"version": 1})                       # HELLO
typ, _, p = recv()
assert typ == 2, (typ, p)                        # HELLO_ACK
agent = json.loads(p)["agent"]
send(3, 1, {"argv": ["echo", "hi"]})             # EXEC
out, status = b"", None
while status is None:
    typ, stream, p = recv()
    if typ == 12:                                # ERROR
        raise RuntimeError(p)
    if stream == 1 and typ == 7:                 # STDOUT
        out += p
    elif stream == 1 and typ == 11:              # EXIT
        status = json.loads(p)
print(json.dumps({"agent": agent, "stdout": out.decode(), "exit": status}))
`

const homes: Array<string> = []
const runtimes: Array<Boxlite> = []
afterAll(async () => {
  for (const runtime of runtimes) await runtime.close()
  for (const home of homes) fs.rmSync(home, { recursive: true, force: true })
})

const newRuntime = (): Boxlite => {
  homes.push(tempHome())
  runtimes.push(new Boxlite({ homeDir: homes.at(-1)! }))
  return runtimes.at(-1)!
}

/**
 * Runs f with `extra` on the guest kernel command line of the boxes it starts: supervisors are
 * spawned when a box starts and read the variable then.
 */
const withCmdlineExtra = async (extra: string, f: () => Promise<void>): Promise<void> => {
  const saved = process.env["BOXLITE_GUEST_CMDLINE_EXTRA"]
  process.env["BOXLITE_GUEST_CMDLINE_EXTRA"] = extra
  try {
    await f()
  } finally {
    if (saved === undefined) delete process.env["BOXLITE_GUEST_CMDLINE_EXTRA"]
    else process.env["BOXLITE_GUEST_CMDLINE_EXTRA"] = saved
  }
}

/** The agent's lines on the guest console of a running box. */
const agentLines = async (box: SimpleBox): Promise<Array<string>> => {
  const log = fs.readFileSync(path.join(homes.at(-1)!, "boxes", (await box.start()).id, "console.log"), "utf8")
  return log.split(/\r?\n/).filter((line) => line.startsWith("boxlite-agent: "))
}

const expectNothingLeft = (home: string) => {
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
}

describe("guest agent over vsock", () => {
  it(`with boxlite.vsock=${PORT} and loopback the agent serves a session on vsock while the host's runs on virtio-serial`, async () => {
    const runtime = newRuntime()
    await withCmdlineExtra(`boxlite.vsock=${PORT} boxlite.vsock.loopback=1`, async () => {
      await using box = new SimpleBox({ image: PYTHON, runtime })
      const result = await box.exec("python3", "-c", CLIENT, String(PORT))
      expect(result).toEqual({ exitCode: 0, stdout: expect.any(String), stderr: "" })
      expect(JSON.parse(result.stdout)).toEqual({ agent: expect.stringMatching(/^boxlite-agent \d/), stdout: "hi\n", exit: { exitCode: 0 } })
      // A second connection after the first ended: the listener keeps accepting.
      expect(JSON.parse((await box.exec("python3", "-c", CLIENT, String(PORT))).stdout)).toMatchObject({ stdout: "hi\n" })
      // Nothing listens on another port.
      const other = await box.exec("python3", "-c", CLIENT, String(PORT + 1))
      expect(other.exitCode).toBe(3)
      expect(JSON.parse(other.stdout).connectError).toMatch(/ConnectionReset|ConnectionRefused/)
      expect(await agentLines(box)).toContain(`boxlite-agent: vsock port ${PORT} (and loopback: guest processes can connect, for tests only)`)
    })
    expectNothingLeft(homes.at(-1)!)
  }, 180_000)

  it(`with boxlite.vsock=${PORT} alone a process in the guest cannot reach the agent`, async () => {
    const runtime = newRuntime()
    await withCmdlineExtra(`boxlite.vsock=${PORT}`, async () => {
      await using box = new SimpleBox({ image: PYTHON, runtime })
      const result = await box.exec("python3", "-c", CLIENT, String(PORT))
      expect(result.exitCode).toBe(3)
      // AF_VSOCK exists (the agent listens), but there is no loopback transport to it.
      expect(JSON.parse(result.stdout).connectError).toMatch(/^OSError: \[Errno 19\]/)
      expect(await agentLines(box)).toContain(`boxlite-agent: vsock port ${PORT}`)
    })
    expectNothingLeft(homes.at(-1)!)
  }, 180_000)

  it("without the key the guest boots as before, with no vsock at all", async () => {
    expect(process.env["BOXLITE_GUEST_CMDLINE_EXTRA"]).toBeUndefined()
    const runtime = newRuntime()
    {
      await using box = new SimpleBox({ image: PYTHON, runtime })
      const result = await box.exec("python3", "-c", CLIENT, String(PORT))
      expect(result.exitCode).toBe(3)
      // The vsock modules are not loaded: the guest has no AF_VSOCK.
      expect(JSON.parse(result.stdout).connectError).toMatch(/^OSError: \[Errno 97\]/)
      expect((await agentLines(box)).filter((line) => line.includes("vsock"))).toEqual([])
    }
    expectNothingLeft(homes.at(-1)!)
  }, 180_000)
})

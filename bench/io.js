// I/O benchmarks beside their floors, measured in the same run (see bench/README.md).
//   volume read: a 1 GiB file read in the guest through a virtiofs volume, vs `dd` of the same
//   file on the host; forwarded TCP: 200 MB from a guest server to a host client through a
//   port forward, vs the same transfer between two host processes over loopback.
import { Boxlite } from "boxlite"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { report } from "./targets.js"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const MB = 1e6
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
// The client speaks first (one request byte, then the server streams): passt 2023-03 never sends
// the last ACK of the handshake it starts towards the guest until it has data from the host
// side to carry, so a guest server that waits for accept() before writing would wait for ever.
const SERVER = (port, bytes) => [
  "import socket",
  "s = socket.socket()",
  "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
  `s.bind(('0.0.0.0', ${port}))`,
  "s.listen(1)",
  "print(s.getsockname()[1], flush=True)",
  "chunk = memoryview(bytes(1 << 20))",
  "while True:",
  "    c, _ = s.accept()",
  "    if c.recv(1):",
  `        left = ${bytes}`,
  "        while left > 0:",
  "            left -= c.send(chunk[:min(left, len(chunk))])",
  "    c.close()"
].join("\n")

// The client is a Python process too, for both measurements: Node's stream reader, sharing an
// event loop with the runtime, tops out below what loopback carries and would lower the floor.
const CLIENT = [
  "import socket, sys, time",
  "port, expected = int(sys.argv[1]), int(sys.argv[2])",
  "start = time.perf_counter()",
  "c = socket.create_connection(('127.0.0.1', port), timeout=120)",
  "c.sendall(b'x')",
  "buf, got = bytearray(1 << 20), 0",
  "while n := c.recv_into(buf):",
  "    got += n",
  "print(got, time.perf_counter() - start)"
].join("\n")

/**
 * Connects, sends the request byte, reads `expected` bytes until EOF, returns MB/s. A short read
 * (the server is not listening yet: the guest resets, passt closes) or a stall rejects.
 */
const receive = (port, expected) => new Promise((resolve, reject) => {
  const client = spawn("python3", ["-c", CLIENT, String(port), String(expected)], { stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  client.stdout.on("data", (d) => (out += d))
  client.stderr.on("data", (d) => (out += d))
  client.on("close", () => {
    const [bytes, seconds] = out.trim().split(" ").map(Number)
    bytes === expected ? resolve(bytes / MB / seconds) : reject(new Error(`read ${out.trim() || "nothing"} of ${expected} bytes`))
  })
})

const retry = async (f) => {
  for (let i = 0; ; i++) {
    try {
      return await f()
    } catch (e) {
      if (i > 80) throw e
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

const main = async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-bench-io-"))
  const file = path.join(work, "big")
  execFileSync("sh", ["-c", `head -c 1073741824 /dev/urandom > ${file}`])
  const runtime = new Boxlite({ homeDir: path.join(work, "home") })
  const box = await runtime.create({ image, volumes: [[work, "/mnt/bench", "ro"]], ports: [{ hostPort: 0, guestPort: 9000 }], memoryMib: 1024 })

  const volume = []
  const host = []
  const dd = /copied, ([\d.]+) s/
  for (let i = 0; i < rounds; i++) {
    const inGuest = await box.exec("dd", ["if=/mnt/bench/big", "of=/dev/null", "bs=1M"])
    const stderr = await inGuest.stderr().text()
    await inGuest.wait()
    volume.push(1073741824 / MB / Number(dd.exec(stderr)[1]))
    const onHost = spawnSync("dd", [`if=${file}`, "of=/dev/null", "bs=1M"]).stderr.toString()
    host.push(1073741824 / MB / Number(dd.exec(onHost)[1]))
  }

  const bytes = 200 * MB
  await box.exec("python3", ["-c", SERVER(9000, bytes)])
  const forwarded = (await box.info()).ports[0].hostPort
  const local = spawn("python3", ["-c", SERVER(0, bytes)], { stdio: ["ignore", "pipe", "ignore"] })
  const localPort = Number(await new Promise((r) => local.stdout.once("data", r)))
  const tcp = []
  const tcpHost = []
  for (let i = 0; i < rounds; i++) {
    tcp.push(await retry(() => receive(forwarded, bytes)))
    tcpHost.push(await receive(localPort, bytes))
  }
  local.kill()
  await box.remove()
  await runtime.close()
  fs.rmSync(work, { recursive: true, force: true })

  console.log(`${rounds} rounds each`)
  report([
    { name: "1 GiB read through a read-only volume (dd in the guest), median", value: median(volume), unit: "MB/s", floor: median(host), floorName: "dd of the file on the host" },
    { name: "200 MB over a forwarded TCP port (guest server -> host client), median", value: median(tcp), unit: "MB/s", floor: median(tcpHost), floorName: "the same between two host processes" }
  ])
}

await main()

// The examples gallery runs as written: each file, as a user would run it, in its own home.
import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { boxDirs, qemuProcessesUnder, tempHome } from "./helpers.js"

const examples = fileURLToPath(new URL("../../../../examples/", import.meta.url))

const runsAndPrints = (file: string, expected: RegExp) => {
  const home = tempHome()
  const run = spawnSync(process.execPath, [file], { cwd: examples, env: { ...process.env, BOXLITE_HOME: home }, encoding: "utf8", timeout: 240_000 })
  expect(run.stderr).not.toMatch(/Error/)
  expect(run.status).toBe(0)
  expect(run.stdout).toMatch(expected)
  expect(qemuProcessesUnder(home)).toEqual([])
  expect(boxDirs(home)).toEqual([])
}

describe("examples gallery", () => {
  it.each([
    ["hello.mjs", /Hello from BoxLite! Python 3/],
    // Where cloud-hypervisor and real KVM are, the box runs on kvm.
    ["drivers.mjs", /kvm: (HypervisorUnavailable: [^\n]+|kvm over vsock[^\n]+)\nhvf: HypervisorUnavailable: the hvf driver runs on macOS only[^\n]*\nqemu: (tcg|kvm) over virtio-serial; disks qcow2\/raw; network, portForwards, egressPolicy, volumes, snapshots\na box on (kvm|qemu): Linux 6\./],
    ["simplebox.mjs", /stdout: "basic execution\\n" exit code: 0/],
    ["streaming.mjs", /stdin round trip: DATA SENT TO STDIN/],
    ["effect.mjs", /42/],
    ["images.mjs", /python:slim/],
    ["reattach.mjs", /after restart, the disk still has: written-before-the-restart/],
    ["snapshots.mjs", /snapshot prepared: \d+ MiB[\s\S]*clone 1 answered in \d+ ms: prepared once, its counter at [1-9]\d*\nclone 2 [\s\S]*paused: paused\nsuspended: suspended\nafter resume: prepared once/],
    ["files.mjs", /sorted on the host: apple, banana, cherry\nread back: \{"retries":3\}\nPathNotFound \(guest\): \/root\/no-such-file/],
    ["codebox.mjs", /run: Untrusted code belongs in a box\.\nExecError: exit code 1, ZeroDivisionError[\s\S]*runCode: 42\n[\s\S]*timeout: TimeoutError \| still there: 41/],
    ["browserbox.mjs", /title after the click: Hello, BoxLite[\s\S]*screenshot: \d+ bytes of PNG/],
    ["interactive.mjs", /\/dev\/pts\/\d+\r\n24 80\r\nI am root in boxlite[\s\S]*shell exited with 0/],
    ["serve.mjs", /stdout: ready\n[\s\S]*stdout: hello BoxLite\n[\s\S]*exit: \{"exitCode":3\}\n404: BoxNotFound[\s\S]*the library lists: serve-demo running\nremoved: 204/],
    ["computerbox.mjs", /screen: 1024x768[\s\S]*screenshot: 1024x768 png[\s\S]*the terminal saved: "Hello from ComputerBox: ünïcödé ✓\\n"/]
  ])("%s runs and prints what it shows", runsAndPrints, 300_000)

  // `await using` parses on Node >= 24 only; CI runs this one on Node 24 (.ci/run).
  it.runIf(Number(process.versions.node.split(".")[0]) >= 24)("using.mjs runs and prints what it shows", () =>
    runsAndPrints("using.mjs", /in the block: 42\nlisted while the block runs: using-demo running\nafter the block: 0 boxes named using-demo\nsomething failed in the block; the box is gone anyway: 0 boxes/), 300_000)
})

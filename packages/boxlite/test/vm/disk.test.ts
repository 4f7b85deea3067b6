import { afterAll, describe, expect, it } from "vitest"
import { Boxlite, InvalidOptions } from "boxlite"
import { execFileSync } from "node:child_process"
import { boxDirs, BUSYBOX, layoutWithConfig, sh, tempHome } from "./helpers.js"

const runtime = new Boxlite({ homeDir: tempHome() })
afterAll(() => runtime.close())

describe("disks", () => {
  it("diskSizeGb: the guest sees a disk of that size, and data survives stop and start", async () => {
    const box = await runtime.create({ image: BUSYBOX, diskSizeGb: 4, autoRemove: false })
    const sizeKb = Number((await sh(box, "df -k / | tail -1 | awk '{print $2}'")).out)
    expect(sizeKb).toBeGreaterThan(3.8 * 1024 * 1024)
    await sh(box, "echo persisted > /root/data.txt && sync")
    await box.stop()
    expect((await box.info()).status).toBe("stopped")
    await box.start()
    expect((await sh(box, "cat /root/data.txt")).out).toBe("persisted")
    await box.remove()
  })

  it("without diskSizeGb the disk is ephemeral: a restart begins from the image again", async () => {
    const box = await runtime.create({ image: BUSYBOX, autoRemove: false })
    await sh(box, "echo gone > /root/data.txt && sync")
    await box.stop()
    await box.start()
    expect((await sh(box, "cat /root/data.txt 2>&1 || echo missing")).out).toMatch(/missing/)
    await box.remove()
  })

  it("diskSizeGb smaller than the image is refused before anything starts", async () => {
    const error = await runtime.create({ image: BUSYBOX, diskSizeGb: 0 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidOptions)
    expect((error as InvalidOptions).field).toBe("diskSizeGb")
  })
})

describe("the image config is the default for commands", () => {
  it("uses the image's env, working dir and user, each overridable", async () => {
    const image = layoutWithConfig(BUSYBOX, (config) => {
      const c = config["config"] as Record<string, unknown>
      c["Env"] = [...(c["Env"] as Array<string>), "FROM_IMAGE=yes"]
      c["WorkingDir"] = "/etc"
      c["User"] = "nobody"
    })
    const box = await runtime.create({ image })
    expect((await sh(box, "echo $FROM_IMAGE $(pwd) $(id -u) $HOME")).out).toBe("yes /etc 65534 /nonexistent")
    const root = await box.exec("sh", ["-c", "id -u; pwd"], { user: "0:0", workingDir: "/" })
    expect(await root.stdout().text()).toBe("0\n/\n")
    const boxLevel = await runtime.create({ image, user: "root", workingDir: "/tmp", env: { FROM_IMAGE: "box" } })
    expect((await sh(boxLevel, "echo $FROM_IMAGE $(pwd) $(id -un)")).out).toBe("box /tmp root")
    await box.remove()
    await boxLevel.remove()
  })
})

describe("no leaks", () => {
  it("the home directory stays flat across 20 create/boot/remove cycles of the same image", async () => {
    const home = tempHome()
    const cycles = new Boxlite({ homeDir: home })
    // The state database's write-ahead log is left out: SQLite checkpoints it at ~4 MB.
    const du = () => Number(execFileSync("du", ["-sb", "--exclude=boxlite.db-wal", home]).toString().split("\t")[0])
    const cycle = async () => {
      const box = await cycles.create({ image: BUSYBOX })
      const write = await box.exec("dd", ["if=/dev/urandom", "of=/root/junk", "bs=1M", "count=8"])
      expect((await write.wait()).exitCode).toBe(0)
      await box.remove()
    }
    await cycle()
    const after1 = du()
    for (let i = 0; i < 19; i++) await cycle()
    const after20 = du()
    // Only the state database may grow a little, never by a box's disk.
    expect(after20 - after1).toBeLessThan(1024 * 1024)
    expect(boxDirs(home)).toEqual([])
    await cycles.close()
  }, 300_000)
})

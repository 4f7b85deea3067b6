import { RotatingLog } from "@boxlite/core"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"

const dirs: Array<string> = []
const tempLog = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-rotlog-"))
  dirs.push(dir)
  return path.join(dir, "console.log")
}
afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })))

describe("RotatingLog", () => {
  it("keeps the file under the cap and the bytes before in one rotated file, in order", () => {
    const file = tempLog()
    const log = RotatingLog.make(file, 100)
    let all = ""
    for (let i = 0; i < 1000; i++) {
      const line = `line ${i}\n`
      all += line
      log.write(line)
      expect(fs.statSync(file).size).toBeLessThanOrEqual(100)
    }
    log.close()
    const kept = fs.readFileSync(`${file}.1`, "utf8") + fs.readFileSync(file, "utf8")
    expect(fs.readFileSync(`${file}.1`).length).toBe(100)
    expect(all.endsWith(kept)).toBe(true)
    expect(kept.length).toBeGreaterThan(100)
    expect(fs.readdirSync(path.dirname(file)).sort()).toEqual(["console.log", "console.log.1"])
  })

  it("splits one write larger than the cap, and keeps only its end", () => {
    const file = tempLog()
    const log = RotatingLog.make(file, 10)
    log.write("0123456789abcdefghijklmnopqrstuvwxyz")
    log.close()
    expect(fs.readFileSync(`${file}.1`, "utf8")).toBe("ghijklmnop")
    expect(fs.readFileSync(file, "utf8")).toBe("qrstuvwxyz")
  })

  it("appends to what the file holds, counts it towards the cap, and creates files owner-only", () => {
    const file = tempLog()
    fs.writeFileSync(file, "12345678")
    const log = RotatingLog.make(file, 10)
    log.write("abcd")
    log.close()
    expect(fs.readFileSync(`${file}.1`, "utf8")).toBe("12345678ab")
    expect(fs.readFileSync(file, "utf8")).toBe("cd")
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(() => RotatingLog.make(file, 0)).toThrow(RangeError)
  })
})

// A box's files opened together for a jailed VMM: closed together, and none left open by a failure.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { openDescriptors } from "../src/index.js"

const isOpen = (fd: number) => {
  try {
    fs.fstatSync(fd)
    return true
  } catch {
    return false
  }
}

describe("openDescriptors", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-fds-"))
  const file = path.join(dir, "kernel")
  fs.writeFileSync(file, "k")

  it("gives the descriptors it opened and closes them all, once", () => {
    const files = openDescriptors((open) => ({ a: open(file, fs.constants.O_RDONLY), b: [open(file, fs.constants.O_RDONLY)] }))
    expect(isOpen(files.a) && isOpen(files.b[0]!)).toBe(true)
    files.close()
    expect(isOpen(files.a) || isOpen(files.b[0]!)).toBe(false)
    expect(() => files.close()).not.toThrow()
  })

  it("a file that does not open closes those opened before it, and throws", () => {
    let first = -1
    expect(() => openDescriptors((open) => ({ a: (first = open(file, fs.constants.O_RDONLY)), b: open(path.join(dir, "missing"), fs.constants.O_RDONLY) })))
      .toThrow(/ENOENT/)
    expect(first).toBeGreaterThanOrEqual(0)
    expect(isOpen(first)).toBe(false)
    fs.rmSync(dir, { recursive: true, force: true })
  })
})

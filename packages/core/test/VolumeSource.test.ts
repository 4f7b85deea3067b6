// Volume sources: opened without following any symlink, refused once they name something else.
import { afterAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { openNoFollow, openVolumeSource, resolveVolumeSource } from "../src/internal/VolumeSource.js"

const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "bl-src-")))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const fresh = (name: string) => {
  const dir = path.join(root, name)
  fs.mkdirSync(path.join(dir, "data"), { recursive: true })
  fs.writeFileSync(path.join(dir, "data", "file.txt"), "x")
  return dir
}

/** What an O_PATH descriptor leads to. */
const target = (fd: number) => fs.readlinkSync(`/proc/self/fd/${fd}`)

describe("volume sources", () => {
  it("opens a resolved path component by component and refuses a symlink anywhere in it", () => {
    const dir = fresh("walk")
    const fd = openNoFollow(path.join(dir, "data", "file.txt"))
    expect(target(fd)).toBe(path.join(dir, "data", "file.txt"))
    fs.closeSync(fd)
    fs.symlinkSync("/etc", path.join(dir, "etc-link"))
    expect(() => openNoFollow(path.join(dir, "etc-link", "hostname"))).toThrow(/etc-link is a symbolic link/)
    fs.symlinkSync("/etc/hostname", path.join(dir, "file-link"))
    expect(() => openNoFollow(path.join(dir, "file-link"))).toThrow(/file-link is a symbolic link/)
    expect(() => openNoFollow(`${dir}/data/../data`)).toThrow(/not a resolved path/)
  })

  it("reopens the same directory or file, and refuses one replaced by a symlink, another object or nothing", () => {
    const dir = fresh("swap")
    const directory = resolveVolumeSource(path.join(dir, "data"))
    const file = resolveVolumeSource(path.join(dir, "data", "file.txt"))
    expect(directory.kind).toBe("directory")
    expect(file.kind).toBe("file")
    for (const source of [directory, file]) fs.closeSync(openVolumeSource(source))

    // What a guest can do with write access to the directory: a symlink where the file was.
    fs.rmSync(path.join(dir, "data", "file.txt"))
    fs.symlinkSync("/etc/hostname", path.join(dir, "data", "file.txt"))
    expect(() => openVolumeSource(file)).toThrow(/file\.txt is a symbolic link/)
    fs.rmSync(path.join(dir, "data", "file.txt"))
    // A new file of the same name (ext4 may even give it the old inode number).
    fs.writeFileSync(path.join(dir, "data", "file.txt"), "a new file, same name")
    expect(() => openVolumeSource(file)).toThrow(/no longer the file the box was created with/)
    fs.rmSync(path.join(dir, "data", "file.txt"))
    expect(() => openVolumeSource(file)).toThrow(/ENOENT/)

    // The directory moved away and another put in its place, or a symlink to it.
    fs.renameSync(path.join(dir, "data"), path.join(dir, "moved"))
    fs.mkdirSync(path.join(dir, "data"))
    expect(() => openVolumeSource(directory)).toThrow(/no longer the directory/)
    fs.rmdirSync(path.join(dir, "data"))
    fs.symlinkSync(path.join(dir, "moved"), path.join(dir, "data"))
    expect(() => openVolumeSource(directory)).toThrow(/is a symbolic link/)
  })

  it("resolves the user's own symlinks once, at create", () => {
    const dir = fresh("create")
    fs.symlinkSync(path.join(dir, "data"), path.join(dir, "mine"))
    expect(resolveVolumeSource(path.join(dir, "mine")).path).toBe(path.join(dir, "data"))
    expect(() => resolveVolumeSource("/dev/null")).toThrow(/neither a directory nor a regular file/)
  })
})

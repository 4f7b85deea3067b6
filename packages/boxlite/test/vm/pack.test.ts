// What a user installs: `npm pack` of boxlite and the packages it depends on (ours are not on the
// registry: their tarballs go in together), installed into an empty project, which then runs a box.
// Third-party dependencies come from npm's cache (filled by `npm ci`) or the registry; the native
// one (better-sqlite3) is built from source as a user's install would, which is most of the time.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"
import { boxDirs, BUSYBOX, qemuProcessesUnder, tempHome } from "./helpers.js"

const repo = fileURLToPath(new URL("../../../../", import.meta.url))
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"))
const workspaces = (readJson(path.join(repo, "package.json")).workspaces as Array<string>).map((dir) => ({ dir, ...readJson(path.join(repo, dir, "package.json")) }))

/** boxlite and every workspace package it depends on, directly or not. */
const closure = (name: string, seen = new Set<string>()): Set<string> => {
  seen.add(name)
  const manifest = workspaces.find((w) => w.name === name)
  for (const dep of Object.keys(manifest.dependencies ?? {})) {
    if (workspaces.some((w) => w.name === dep) && !seen.has(dep)) closure(dep, seen)
  }
  return seen
}

// The environment of a user's shell: none of the npm_* variables `npm test` sets (workspace, prefix...).
const userEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
const npm = (args: Array<string>, cwd: string) => execFileSync("npm", args, { cwd, env: userEnv, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

const work = fs.mkdtempSync(path.join(os.tmpdir(), "bl-pack-"))
const home = tempHome()

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true })
  fs.rmSync(home, { recursive: true, force: true })
})

describe("the packed boxlite", () => {
  it("installs from its tarballs into an empty project and runs a box there", { timeout: 600_000 }, () => {
    const tarballs = path.join(work, "tarballs")
    fs.mkdirSync(tarballs)
    for (const name of closure("boxlite")) {
      const { dir } = workspaces.find((w) => w.name === name)
      let from = path.join(repo, dir)
      // A worktree may link guest/dist to another checkout's build, and npm pack skips symlinks:
      // pack a copy with the link followed (a clone's guest/dist is a directory: packed as is).
      if (fs.lstatSync(path.join(from, "dist"), { throwIfNoEntry: false })?.isSymbolicLink()) {
        const copy = path.join(work, "stage", dir)
        for (const f of ["package.json", "index.js", "index.d.ts", "dist"]) fs.cpSync(path.join(from, f), path.join(copy, f), { recursive: true, dereference: true })
        from = copy
      }
      npm(["pack", "--silent", "--pack-destination", tarballs, from], work)
    }
    const packed = fs.readdirSync(tarballs)
    expect(packed).toContain(`boxlite-${readJson(path.join(repo, "packages/boxlite/package.json")).version}.tgz`)
    expect(packed).toHaveLength(closure("boxlite").size)

    const app = path.join(work, "app")
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
    npm(["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", ...packed.map((t) => path.join(tarballs, t))], app)
    // Installed copies, not links back into this repository.
    const installed = path.join(app, "node_modules/boxlite")
    expect(fs.lstatSync(installed).isSymbolicLink()).toBe(false)
    expect(fs.existsSync(path.join(app, "node_modules/@boxlite/guest/dist/manifest.json"))).toBe(true)

    fs.writeFileSync(path.join(app, "main.js"), `import { Boxlite } from "boxlite"
import * as effectFace from "boxlite/effect"
const [image, homeDir] = process.argv.slice(2)
const runtime = new Boxlite({ homeDir })
try {
  const box = await runtime.create({ image })
  const run = await box.exec("sh", ["-c", "echo packed $(uname -s)"])
  const stdout = await run.stdout().text()
  const { exitCode } = await run.wait()
  await box.remove()
  console.log(JSON.stringify({ stdout, exitCode, resolved: import.meta.resolve("boxlite"), effectFace: Object.keys(effectFace).length > 0 }))
} finally {
  await runtime.close()
}
`)
    const out = execFileSync(process.execPath, ["main.js", BUSYBOX, home], { cwd: app, env: userEnv, encoding: "utf8" })
    const result = JSON.parse(out.trim().split("\n").at(-1) ?? "")
    expect(result).toMatchObject({ stdout: "packed Linux\n", exitCode: 0, effectFace: true })
    expect(fileURLToPath(result.resolved).startsWith(`${installed}/`)).toBe(true)
    expect(execFileSync(path.join(app, "node_modules/.bin/boxlite"), ["version"], { cwd: app, env: userEnv, encoding: "utf8" })).toContain(readJson(path.join(installed, "package.json")).version)

    expect(qemuProcessesUnder(home)).toEqual([])
    expect(boxDirs(home)).toEqual([])
  })
})

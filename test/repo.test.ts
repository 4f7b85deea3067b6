// The monorepo's tooling: nx sees the packages and their graph, every package is publishable.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"

const root = path.resolve(import.meta.dirname, "..")
const readJson = (file: string) => JSON.parse(fs.readFileSync(path.join(root, file), "utf8"))
const workspaces: Array<string> = readJson("package.json").workspaces
const manifests = workspaces.map((dir) => ({ dir, ...readJson(`${dir}/package.json`) }))
const names = new Set(manifests.map((m) => m.name))
const published = manifests.filter((m) => !m.private)
const internal = (deps: Record<string, string> | undefined) => Object.keys(deps ?? {}).filter((d) => names.has(d))

describe("nx", () => {
  it("draws the package graph offline, edges from the manifests, cached build/typecheck/test per package", { timeout: 60_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-nx-"))
    try {
      execFileSync("npx", ["nx", "graph", `--file=${dir}/graph.json`], {
        cwd: root,
        env: { ...process.env, NX_DAEMON: "false", NX_NO_CLOUD: "true" },
        stdio: "ignore"
      })
      const { graph } = JSON.parse(fs.readFileSync(`${dir}/graph.json`, "utf8"))
      for (const m of manifests) {
        const edges = graph.dependencies[m.name].map((d: { target: string }) => d.target).sort()
        expect(edges, m.name).toEqual([...new Set([...internal(m.dependencies), ...internal(m.devDependencies)])].sort())
        const targets = graph.nodes[m.name].data.targets
        if (m.dir.startsWith("packages/")) {
          for (const t of ["build", "typecheck", "test"]) expect(targets[t]?.cache, `${m.name}:${t}`).toBe(true)
        }
      }
      // The guest's build (kernel from apt, Go agent) keeps its own stamp: not an nx target.
      expect(graph.nodes["@boxlite/guest"].data.targets.build).toBeUndefined()
      // The root's scripts are the whole repo's: no targets that would recurse.
      expect(Object.keys(graph.nodes["boxlite-monorepo"].data.targets)).toEqual([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("publishable packages", () => {
  it("are boxlite and every @boxlite package under packages/ and guest/", () => {
    expect(published.map((m) => m.name).sort()).toEqual(
      manifests.filter((m) => m.dir.startsWith("packages/") || m.dir === "guest").map((m) => m.name).sort()
    )
    expect(published.map((m) => m.name)).toContain("boxlite")
  })

  it("declare what a registry needs, one version, exact versions between them", () => {
    const version = readJson("packages/boxlite/package.json").version
    for (const m of published) {
      expect(m.version, m.name).toBe(version)
      expect(m.license, m.name).toBe("Apache-2.0")
      expect(m.repository?.directory, m.name).toBe(m.dir)
      expect(m.repository?.url, m.name).toMatch(/^git\+https:\/\//)
      expect(m.files?.length, m.name).toBeGreaterThan(0)
      expect(m.exports?.["."], m.name).toBeDefined()
      expect(m.engines?.node, m.name).toBeDefined()
      if (m.name.startsWith("@")) expect(m.publishConfig?.access, m.name).toBe("public")
      for (const field of ["dependencies", "devDependencies"] as const) {
        for (const dep of internal(m[field])) {
          expect(names.has(dep) && !manifests.find((d) => d.name === dep).private, `${m.name} -> ${dep}`).toBe(true)
          expect(m[field][dep], `${m.name} -> ${dep}`).toBe(version)
        }
      }
    }
  })

  it("are released together by changesets", () => {
    const config = readJson(".changeset/config.json")
    const group: Array<string> = config.fixed[0]
    const inGroup = (name: string) => group.some((p) => (p.endsWith("/*") ? name.startsWith(p.slice(0, -1)) : name === p))
    for (const m of published) expect(inGroup(m.name), m.name).toBe(true)
    expect(config.access).toBe("public")
  })
})

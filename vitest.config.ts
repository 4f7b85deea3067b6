import { defineConfig } from "vitest/config"
import { fileURLToPath } from "node:url"

// vitest 5 reports failures with Map.groupBy (Node >= 21); Node 20 lacks it.
if (!("groupBy" in Map)) {
  Object.defineProperty(Map, "groupBy", {
    value: <T, K>(items: Iterable<T>, key: (item: T, index: number) => K): Map<K, Array<T>> => {
      const groups = new Map<K, Array<T>>()
      let index = 0
      for (const item of items) {
        const k = key(item, index++)
        const group = groups.get(k)
        if (group) group.push(item)
        else groups.set(k, [item])
      }
      return groups
    }
  })
}

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url))

// Tests import the workspace packages from source, so they need no build step.
const alias = {
  "@boxlite/agent-protocol": src("agent-protocol"),
  "@boxlite/oci": src("oci"),
  "@boxlite/storage": src("storage"),
  "@boxlite/core": src("core"),
  "@boxlite/driver-qemu": src("driver-qemu"),
  "@boxlite/boxes": src("boxes"),
  boxlite: src("boxlite")
}

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: { name: "unit", include: ["packages/*/test/**/*.test.ts"], exclude: ["packages/*/test/vm/**"] }
      },
      {
        // Boots real VMs under QEMU: slow under TCG, so generous timeouts and limited parallelism.
        resolve: { alias },
        test: {
          name: "vm",
          include: ["packages/*/test/vm/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false
        }
      }
    ]
  }
})

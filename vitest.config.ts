import { defineConfig } from "vitest/config"

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

export default defineConfig({
  test: {
    projects: [
      {
        // No VM, but real processes (supervisors, fake VMMs, python): 5 s was missed on a loaded 2-core host.
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts", "bench/test/**/*.test.ts", "test/**/*.test.ts"],
          exclude: ["packages/*/test/vm/**"],
          testTimeout: 20_000
        }
      },
      {
        // Boots real VMs under QEMU: slow under TCG, so generous timeouts and limited parallelism.
        test: {
          name: "vm",
          include: ["packages/*/test/vm/**/*.test.ts"],
          exclude: ["packages/*/test/vm/soak.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false
        }
      },
      {
        // Thousands of execs and a hundred boots: minutes under TCG, run on its own (SOAK_EXECS, SOAK_CYCLES scale it).
        test: {
          name: "soak",
          include: ["packages/*/test/vm/soak.test.ts"],
          testTimeout: 3_600_000,
          hookTimeout: 120_000,
          fileParallelism: false
        }
      }
    ]
  }
})

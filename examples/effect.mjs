// The Effect face: the Runtime as a service, a box as a scoped resource, typed errors.
//   node examples/effect.mjs
import { Effect, Stream } from "effect"
import { layer, Runtime, SimpleBox } from "boxlite/effect"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/python", import.meta.url))}:slim`

const program = Effect.gen(function*() {
  // Stopped and removed when the scope closes, also on failure or interruption.
  const box = yield* SimpleBox.scoped({ image })
  const result = yield* SimpleBox.run(box, "python", ["-c", "print(6 * 7)"])
  yield* Effect.log(`6 * 7 = ${result.stdout.trim()}`)

  const execution = yield* box.exec("sh", ["-c", "echo one; echo two"])
  const lines = yield* Stream.runCollect(execution.stdoutLines)
  yield* Effect.log(`lines: ${JSON.stringify(lines)}`)
  yield* execution.wait

  const runtime = yield* Runtime
  yield* Effect.log(`metrics: ${JSON.stringify(yield* runtime.metrics)}`)
}).pipe(
  Effect.scoped,
  Effect.catchTag("TimeoutError", (e) => Effect.logError(`timed out: ${e.message}`)),
  Effect.provide(layer())
)

await Effect.runPromise(program)

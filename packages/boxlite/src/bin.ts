#!/usr/bin/env node
/** `boxlite`: the command line (src/cli/). `boxlite --help` lists its commands. */
import { Exit, Runtime } from "effect"
import { run } from "./cli/main.js"

/**
 * Effect's runMain on Node, as @effect/platform-node's NodeRuntime.runMain does it: SIGINT and
 * SIGTERM interrupt the program, so its finalizers run, and the process exits with the
 * program's code (130 when interrupted). Exit at once: an input left open (a terminal behind
 * -i) would keep the process alive.
 */
const runMain = Runtime.makeRunMain(({ fiber, teardown }) => {
  const interrupt = () => fiber.interruptUnsafe()
  process.once("SIGINT", interrupt)
  process.once("SIGTERM", interrupt)
  fiber.addObserver((exit) => teardown(exit, (code) => process.exit(code)))
})

runMain(run(process.argv.slice(2)), {
  teardown: (exit, onExit) => (Exit.isSuccess(exit) ? onExit(exit.value as number) : Runtime.defaultTeardown(exit, onExit))
})

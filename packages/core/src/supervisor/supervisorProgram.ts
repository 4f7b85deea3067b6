/**
 * A supervisor program that imports each box's driver by name (see loadDriver): for platforms
 * without a bundle of their own, e.g. tests on @boxlite/driver-testkit's fake driver.
 *
 * The entry point of a supervisor process.
 */
import { runSupervisorMain } from "./Supervisor.js"

runSupervisorMain(process.argv.slice(2))

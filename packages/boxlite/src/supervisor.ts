/**
 * The program of a box's supervisor process (launched by the runtime, one per running box):
 * it runs the box on the same platform as `Boxlite.default()`.
 */
import { runSupervisorMain } from "@boxlite/core"
import { vmPlatform } from "./Platform.js"

runSupervisorMain(process.argv.slice(2), vmPlatform())

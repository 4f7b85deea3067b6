/**
 * The program of a box's supervisor process (launched by the runtime, one per running box): it
 * runs the box on its recorded driver, QEMU from this bundle, others imported by name.
 */
import { runSupervisorMain } from "@boxlite/core"
import { importDriver } from "./Platform.js"

runSupervisorMain(process.argv.slice(2), importDriver)

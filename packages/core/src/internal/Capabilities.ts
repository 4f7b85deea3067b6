/** What a box asks of its driver that the driver cannot do, said before anything is made. */
import type { DriverCapabilities } from "@boxlite/driver"
import { InvalidOptions } from "../Errors.js"
import type { ResolvedBoxOptions } from "../Options.js"

/** The first option `driver` cannot honour, as InvalidOptions naming it; undefined when it can run the box. */
export const unsupportedOption = (driver: string, can: DriverCapabilities, options: ResolvedBoxOptions): InvalidOptions | undefined => {
  const refuse = (field: string, what: string) => new InvalidOptions(field, `the ${driver} driver ${what}`)
  if (options.network !== "none" && !can.network) return refuse("network", `gives boxes no network: use network "none"`)
  if (options.ports.length > 0 && !can.portForwards) return refuse("ports", "cannot forward host ports")
  const rules = options.egress !== undefined && (options.egress.allow !== undefined || options.egress.deny.length > 0)
  if (rules && !can.egressPolicy) return refuse("network", "cannot enforce network allow/deny rules")
  if (options.volumes.length > 0 && !can.volumes) return refuse("volumes", "cannot share host directories")
  if (can.diskFormats.length === 0) return refuse("image", "boots no disk format this runtime makes")
  return undefined
}

/**
 * Egress rules as drivers enforce them: the runtime validates and stores them (BoxOptions.network),
 * a driver with `capabilities.egressPolicy` applies them outside the guest.
 */

/** The egress rules of a box with a network, as given (hostnames are resolved at each start). */
export interface Egress {
  /** Present: allow-list mode. */
  readonly allow?: ReadonlyArray<string>
  readonly deny: ReadonlyArray<string>
}

/** One parsed egress entry: a CIDR (a single address is /32), a hostname, or `private`. */
export interface EgressEntry {
  readonly kind: "cidr" | "host" | "private"
  /** `a.b.c.d/n` with the host bits cleared, the hostname, or `private`. */
  readonly value: string
  /** Inclusive destination port range (TCP and UDP); absent = every protocol and port. */
  readonly ports?: readonly [number, number]
}

const ipv4ToInt = (address: string): number | undefined => {
  const parts = address.split(".")
  if (parts.length !== 4 || !parts.every((n) => /^\d{1,3}$/.test(n) && Number(n) <= 255)) return undefined
  return parts.reduce((acc, n) => acc * 256 + Number(n), 0)
}
const intToIpv4 = (n: number): string => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".")
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/

/** Parses an entry of `network.allow` / `network.deny`; a string says what is wrong. */
export const parseEgressEntry = (entry: string): EgressEntry | string => {
  const colon = entry.lastIndexOf(":")
  const [target, portText] = colon === -1 ? [entry, undefined] : [entry.slice(0, colon), entry.slice(colon + 1)]
  let ports: readonly [number, number] | undefined
  if (portText !== undefined) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(portText)
    const [lo, hi] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [0, 0]
    if (!m || lo < 1 || hi > 65535 || lo > hi) return `port must be 1-65535 or a range lo-hi (got "${portText}")`
    ports = [lo, hi]
  }
  const withPorts = (e: Omit<EgressEntry, "ports">): EgressEntry => (ports ? { ...e, ports } : e)
  if (target === "private") return withPorts({ kind: "private", value: "private" })
  const slash = target.indexOf("/")
  const address = ipv4ToInt(slash === -1 ? target : target.slice(0, slash))
  if (address !== undefined) {
    const prefix = slash === -1 ? 32 : /^\d{1,2}$/.test(target.slice(slash + 1)) ? Number(target.slice(slash + 1)) : -1
    if (prefix < 0 || prefix > 32) return `prefix length must be 0-32 (got "${target}")`
    const network = prefix === 0 ? 0 : address - (address % 2 ** (32 - prefix))
    return withPorts({ kind: "cidr", value: `${intToIpv4(network)}/${prefix}` })
  }
  // All-numeric labels are a mistyped address, not a hostname.
  if (slash === -1 && HOSTNAME.test(target) && !/^[\d.]+$/.test(target)) return withPorts({ kind: "host", value: target.toLowerCase() })
  return `must be an IPv4 address, a CIDR, a hostname or "private", with an optional :port or :lo-hi (got "${entry}")`
}

/**
 * A VM's network: passt on a socketpair with QEMU, and the egress policy around it.
 *
 * The policy is enforced outside the guest, without root: passt runs in a user+network namespace
 * of the box's own whose nftables output chain decides what passt's sockets may reach; pasta
 * (passt's sibling, same build) connects that namespace to the host's network. Port forwards go
 * host -> pasta -> namespace -> passt -> guest. The guest can change nothing of it: the rules live
 * in a namespace it has no process in, and passt itself sandboxes into a user namespace of its
 * own below it (no capability over the rules).
 */
import { type Egress, type EgressEntry, type GuestNetwork, parseEgressEntry, type VmNetwork } from "@boxlite/driver"
import { spawnSync } from "node:child_process"
import * as dns from "node:dns"
import * as fs from "node:fs"
import type * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { type Helper, PASST_FD, startHelper } from "./helpers.js"

/**
 * The guest side of passt's network; the agent configures it. The MTU is passt's: with the
 * usual 1500, forwarded TCP runs at half the speed and passt truncates UDP datagrams over 1472
 * bytes to their first fragment.
 */
export const GUEST_NETWORK: GuestNetwork = { address: "10.0.2.15", prefixLength: 24, gateway: "10.0.2.2", dns: "10.0.2.3", mtu: 65520 }
import { findOnPath, isExecutable } from "./which.js"

/** Where scripts/build-passt.sh installs its passt and pasta. */
export const BUILT_PASST_DIR = "/usr/local/libexec/boxlite"

export interface PasstBuild {
  readonly passt: string
  /** pasta of the same build, if there is one. */
  readonly pasta: string | undefined
  /**
   * A passt from 2024 on (probed by an option it added, `--dns-host`): it ACKs a forwarded
   * connection's handshake at once (servers that speak first work), keeps UDP flows (replies to
   * a forwarded datagram find their client), and has what the namespace needs.
   */
  readonly current: boolean
}

/** A program on PATH, or in the sbin directories a non-root PATH often lacks (nft). */
const findProgram = (name: string): string | undefined => findOnPath(name, ["/usr/sbin", "/sbin"])

/** BOXLITE_PASST (a passt binary, pasta beside it), else scripts/build-passt.sh's, else PATH's. */
export const findPasst = (env: NodeJS.ProcessEnv = process.env): PasstBuild | undefined => {
  const passt = [env["BOXLITE_PASST"], path.join(BUILT_PASST_DIR, "passt"), findProgram("passt")].find((p) => p !== undefined && isExecutable(p))
  if (!passt) return undefined
  const pasta = path.join(path.dirname(passt), "pasta")
  const current = spawnSync(passt, ["--dns-host", "127.0.0.1", "--version"], { stdio: "ignore" }).status === 0
  return { passt, pasta: isExecutable(pasta) ? pasta : undefined, current }
}

/** `private` */
export const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"] as const

/**
 * Unreachable unless allowed by an entry of `allow` (besides the host's own addresses). The
 * gateway, 10.0.2.2, is the host as the guest sees it: reachable only with allowHostLoopback
 * (whose accept comes first), never an address on the host's own network.
 */
export const DENIED_BY_DEFAULT = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32", `${GUEST_NETWORK.gateway}/32`] as const

/** Every IPv4 address of every host interface, and the broadcast address of each subnet. */
export const hostAddresses = (interfaces: ReturnType<typeof os.networkInterfaces> = os.networkInterfaces()): Array<string> => {
  const out = new Set<string>()
  for (const a of Object.values(interfaces).flatMap((list) => list ?? [])) {
    if (a.family !== "IPv4") continue
    out.add(`${a.address}/32`)
    const prefix = Number(a.cidr?.split("/")[1] ?? 32)
    if (prefix < 31) {
      const ip = a.address.split(".").reduce((acc, n) => acc * 256 + Number(n), 0)
      const size = 2 ** (32 - prefix)
      const broadcast = ip - (ip % size) + size - 1
      out.add(`${[24, 16, 8, 0].map((s) => Math.floor(broadcast / 2 ** s) % 256).join(".")}/32`)
    }
  }
  return [...out]
}

/** An entry with its hostname resolved and `private` expanded. */
export interface ResolvedEntry {
  readonly cidrs: ReadonlyArray<string>
  readonly ports?: readonly [number, number]
}

export type Lookup = (hostname: string) => Promise<Array<string>>

const lookupIPv4: Lookup = async (hostname) => (await dns.promises.lookup(hostname, { all: true, family: 4 })).map((a) => a.address)

/** Resolves hostnames on the host (now, at start); one that does not resolve refuses the start. */
export const resolveEntries = async (entries: ReadonlyArray<string>, field: string, lookup: Lookup = lookupIPv4): Promise<Array<ResolvedEntry>> =>
  Promise.all(entries.map(async (text, i) => {
    const entry = parseEgressEntry(text) as EgressEntry | string
    if (typeof entry === "string") throw new Error(`network.${field}[${i}]: ${entry}`)
    const cidrs = entry.kind === "private"
      ? [...PRIVATE_RANGES]
      : entry.kind === "cidr"
      ? [entry.value]
      : await lookup(entry.value).then((addresses) => addresses.map((a) => `${a}/32`), (e: NodeJS.ErrnoException) => {
        throw new Error(`network.${field}[${i}]: cannot resolve ${entry.value} (${e.code ?? e.message})`)
      })
    if (cidrs.length === 0) throw new Error(`network.${field}[${i}]: ${entry.value} has no IPv4 address`)
    return entry.ports ? { cidrs, ports: entry.ports } : { cidrs }
  }))

export interface RulesetInput {
  /** Present: allow-list mode. */
  readonly allow: ReadonlyArray<ResolvedEntry> | undefined
  readonly deny: ReadonlyArray<ResolvedEntry>
  readonly hostAddresses: ReadonlyArray<string>
  readonly allowHostLoopback: boolean
}

const match = (entry: ResolvedEntry): Array<string> =>
  entry.cidrs.map((cidr) => {
    const daddr = `ip daddr ${cidr.endsWith("/32") ? cidr.slice(0, -3) : cidr}`
    if (!entry.ports) return daddr
    const [lo, hi] = entry.ports
    return `${daddr} meta l4proto { tcp, udp } th dport ${lo === hi ? lo : `${lo}-${hi}`}`
  })

/**
 * The namespace's nftables ruleset. Order: the namespace's own loopback (where pasta splices
 * port forwards in; nothing else listens there) and replies of accepted connections; the box's
 * DNS (10.0.2.3, which pasta forwards to the host's resolver); the host's loopback through
 * 10.0.2.2 if allowed; `deny`; `allow`; the defaults; then everything (or, in allow-list mode,
 * nothing). Rejected packets are dropped in the output hook, so passt's connect() fails at once
 * and the guest sees a reset, not a timeout.
 */
export const egressRuleset = (input: RulesetInput): string => {
  const rules = [
    `oifname "lo" accept`,
    `ct state established,related accept`,
    `meta nfproto ipv6 drop`,
    `ip daddr ${GUEST_NETWORK.dns} meta l4proto { tcp, udp } th dport 53 accept`,
    ...(input.allowHostLoopback ? [`ip daddr ${GUEST_NETWORK.gateway} accept`] : []),
    ...input.deny.flatMap(match).map((m) => `${m} drop`),
    ...(input.allow ?? []).flatMap(match).map((m) => `${m} accept`),
    ...[...DENIED_BY_DEFAULT, ...input.hostAddresses].map((cidr) => `${match({ cidrs: [cidr] })[0]} drop`),
    ...(input.allow ? [`drop`] : [])
  ]
  return [
    "table inet boxlite {",
    "\tchain output {",
    "\t\ttype filter hook output priority filter; policy accept;",
    ...rules.map((r) => `\t\t${r}`),
    "\t}",
    "}",
    ""
  ].join("\n")
}

/** The namespace's ruleset for this box: hostnames resolved and the host's addresses read now. */
export const compileEgress = async (network: VmNetwork, lookup?: Lookup): Promise<string> => {
  const egress: Egress = network.egress ?? { deny: [] }
  return egressRuleset({
    allow: egress.allow ? await resolveEntries(egress.allow, "allow", lookup) : undefined,
    deny: await resolveEntries(egress.deny, "deny", lookup),
    hostAddresses: hostAddresses(),
    allowHostLoopback: network.allowHostLoopback
  })
}

/** Whether the box asked for rules of its own (not only the defaults). */
export const hasExplicitPolicy = (network: VmNetwork): boolean =>
  network.egress !== undefined && (network.egress.allow !== undefined || network.egress.deny.length > 0)

/**
 * The port passt listens on in the namespace for each forward (pasta connects there): the guest
 * port, so that messages name it, unless another forward of the protocol has it already.
 */
export const innerPorts = (ports: VmNetwork["ports"]): Array<number> => {
  const taken = new Set<string>()
  const guestPorts = new Set(ports.map((p) => `${p.protocol}/${p.guestPort}`))
  return ports.map((p) => {
    let port = p.guestPort
    for (let spare = 20000; taken.has(`${p.protocol}/${port}`); spare++) {
      if (!guestPorts.has(`${p.protocol}/${spare}`)) port = spare
    }
    taken.add(`${p.protocol}/${port}`)
    return port
  })
}

/**
 * passt's arguments. In the namespace: forwards from the inner ports, DNS to 10.0.2.3 (pasta
 * answers it there), and no gateway mapping (10.0.2.2 leaves passt as an ordinary address, which
 * pasta maps to the host's loopback only with allowHostLoopback). `direct` (an old passt on the
 * host's network, no policy): `--no-map-gw` unless the box may reach the host's loopback.
 */
export const passtArgs = (network: VmNetwork, where: "namespace" | "direct", vhostUserSocket?: string): Array<string> => [
  "--quiet", "--foreground",
  // A socketpair end (QEMU's stream netdev), or a vhost-user socket cloud-hypervisor connects to;
  // `--one-off` there as `--fd` implies it: passt quits when its VMM disconnects (or dies).
  ...(vhostUserSocket === undefined ? ["--fd", String(PASST_FD)] : ["--vhost-user", "--one-off", "--socket", vhostUserSocket]),
  "--ipv4-only",
  "--address", GUEST_NETWORK.address, "--netmask", "255.255.255.0", "--gateway", GUEST_NETWORK.gateway,
  "--dns-forward", GUEST_NETWORK.dns, "--mtu", String(GUEST_NETWORK.mtu),
  ...(where === "namespace"
    ? ["--dns-host", GUEST_NETWORK.dns, "--no-map-gw",
      ...network.ports.flatMap((p, i) => [p.protocol === "tcp" ? "-t" : "-u", `${innerPorts(network.ports)[i]}:${p.guestPort}`])]
    : [...(network.allowHostLoopback ? [] : ["--no-map-gw"]),
      ...network.ports.flatMap((p) => [p.protocol === "tcp" ? "-t" : "-u", `${p.hostIp}/${p.hostPort}:${p.guestPort}`])])
]

/**
 * pasta's arguments: join the namespace of `pid`, copy the host's address and routes into it,
 * listen on the box's host ports (and forward nothing from the namespace to the host: `-T/-U
 * none`), answer DNS at 10.0.2.3 with the host's resolver (a loopback one too), and map 10.0.2.2
 * to the host's loopback only with allowHostLoopback. Connections from the host's loopback are
 * spliced to the namespace's loopback (no tap hop for them).
 */
export const pastaArgs = (network: VmNetwork, pid: number, runAsRoot: boolean): Array<string> => {
  const specs = (protocol: "tcp" | "udp") => {
    const inner = innerPorts(network.ports)
    const list = network.ports.flatMap((p, i) => (p.protocol === protocol ? [`${p.hostIp}/${p.hostPort}:${inner[i]}`] : []))
    return list.length > 0 ? list : ["none"]
  }
  return [
    "--quiet", "--foreground", "--ipv4-only", "--config-net", "--no-dhcp",
    "-T", "none", "-U", "none",
    ...specs("tcp").flatMap((s) => ["-t", s]), ...specs("udp").flatMap((s) => ["-u", s]),
    "--host-lo-to-ns-lo", "--dns-forward", GUEST_NETWORK.dns,
    ...(network.allowHostLoopback ? ["--map-host-loopback", GUEST_NETWORK.gateway] : ["--no-map-gw"]),
    ...(runAsRoot ? ["--runas", "0:0"] : []),
    "--netns", `/proc/${pid}/ns/net`, "--userns", `/proc/${pid}/ns/user`
  ]
}

/** What a namespace needs on this host, or why it cannot have one. */
export interface NamespaceSupport {
  readonly ok: boolean
  readonly reason: string
  /** Root whose nobody cannot open /dev/net/tun: pasta keeps root (in its own sandbox). */
  readonly pastaAsRoot: boolean
}

/**
 * As root, the namespace belongs to nobody (passt in it is no root of the host's), and pasta drops
 * to nobody too, unless nobody cannot open /dev/net/tun: then both stay root (pasta must be able
 * to open the namespace of its owner's process, which it could not across users without
 * CAP_SYS_PTRACE), each in its own sandbox.
 */
const namespaceOwner = (isRoot: boolean, pastaAsRoot: boolean): Array<string> =>
  isRoot && !pastaAsRoot ? [findProgram("setpriv") ?? "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"] : []

/** Probes once per process: the passt build, nft, unshare, user namespaces, /dev/net/tun. */
export const probeNamespace = (build: PasstBuild, isRoot: boolean): NamespaceSupport => {
  const no = (reason: string): NamespaceSupport => ({ ok: false, reason, pastaAsRoot: false })
  if (!build.current) return no(`${build.passt} is older than 2024 (scripts/build-passt.sh builds a current one)`)
  if (!build.pasta) return no(`there is no pasta beside ${build.passt}`)
  for (const program of ["unshare", "nft", "ip"]) if (!findProgram(program)) return no(`${program} is not installed (apt-get install util-linux nftables iproute2)`)
  const [file, ...args] = [...namespaceOwner(isRoot, false), findProgram("unshare")!, "--user", "--map-root-user", "--net", findProgram("nft")!, "list", "ruleset"]
  if (spawnSync(file!, args, { stdio: "ignore" }).status !== 0) {
    return no("this user cannot create a user+network namespace and use nftables in it (`unshare --user --map-root-user --net nft list ruleset` fails)")
  }
  let tunMode = 0
  try {
    tunMode = fs.statSync("/dev/net/tun").mode
  } catch {
    return no("/dev/net/tun does not exist (modprobe tun)")
  }
  const othersReadWrite = (tunMode & 0o006) === 0o006
  if (isRoot) return { ok: true, reason: "", pastaAsRoot: !othersReadWrite }
  try {
    fs.accessSync("/dev/net/tun", fs.constants.R_OK | fs.constants.W_OK)
  } catch {
    return no(`pasta cannot open /dev/net/tun as ${os.userInfo().username} (Debian's udev makes it 0666: chmod 0666 /dev/net/tun)`)
  }
  return { ok: true, reason: "", pastaAsRoot: false }
}

const NAMESPACE_SCRIPT = [
  `"$IP" link set lo up`,
  `printf '%s\\n' "$RULES" | "$NFT" -f -`,
  `echo ready`,
  // passt reads the namespace's routes when it starts: wait for pasta to copy the host's.
  `i=0; until [ -n "$("$IP" -4 route show default)" ]; do i=$((i+1)); if [ $i -gt 1000 ]; then echo "pasta did not connect the namespace within 20 s" >&2; exit 1; fi; sleep 0.02; done`,
  `exec "$@"`
].join(" && ")

const linesOf = (stream: NodeJS.ReadableStream | null | undefined, onLine: (line: string) => void) => {
  let buffer = ""
  stream?.on("data", (d: Buffer) => {
    buffer += d.toString()
    for (let nl = buffer.indexOf("\n"); nl !== -1; nl = buffer.indexOf("\n")) {
      onLine(buffer.slice(0, nl))
      buffer = buffer.slice(nl + 1)
    }
  })
}

const exited = (helper: Helper) => helper.process.exitCode !== null || helper.process.signalCode !== null

/** Resolves when the namespace's rules are in (the script printed `ready`). */
const namespaceReady = (helper: Helper, timeoutMs: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the network namespace was not ready within ${timeoutMs} ms: ${helper.stderr()}`)), timeoutMs)
    linesOf(helper.process.stdout, (line) => {
      if (line !== "ready") return
      clearTimeout(timer)
      resolve()
    })
    helper.process.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`the network namespace could not be set up (its rules or passt): ${helper.stderr() || `code ${code}`}`))
    })
  })

export interface StartedNetwork {
  /** passt, and pasta when in a namespace: they live as long as the VM (see launch). */
  readonly helpers: ReadonlyArray<Helper>
  /** This process's end of the socketpair: QEMU's at PASST_FD, then destroyed here (unused in vhost-user mode: destroy it). */
  readonly fdForQemu: net.Socket
}

export interface NetworkPlan {
  readonly build: PasstBuild
  /** undefined: passt on the host's network, no egress policy (the driver has logged why). */
  readonly namespace: NamespaceSupport | undefined
  /** Why there is no namespace. */
  readonly reason: string
  readonly isRoot: boolean
}

/**
 * Starts passt (in its namespace, behind pasta, when the plan has one) on a socketpair whose
 * other end is for QEMU, or, given `vhostUserSocket`, as a vhost-user back end listening there
 * for cloud-hypervisor. passt quits when that end closes (`--fd` implies `--one-off`), or when
 * its vhost-user client disconnects, i.e. with the VMM; pasta quits when passt's namespace is
 * gone. setpriv's pdeathsig cannot tie them to this process: their own privilege drops and
 * sandboxes clear it.
 */
export const startNetwork = async (network: VmNetwork, plan: NetworkPlan, helpers: Array<Helper>, vhostUserSocket?: string): Promise<StartedNetwork> => {
  if (!plan.namespace) {
    const passt = startHelper("passt", [plan.build.passt, ...passtArgs(network, "direct", vhostUserSocket)], undefined, ["pipe"])
    helpers.push(passt)
    return { helpers: [passt], fdForQemu: passt.process.stdio[PASST_FD] as net.Socket }
  }
  const rules = await compileEgress(network)
  const argv = [...namespaceOwner(plan.isRoot, plan.namespace.pastaAsRoot), findProgram("unshare")!, "--user", "--map-root-user", "--net", "--", "sh", "-c", NAMESPACE_SCRIPT, "sh", plan.build.passt, ...passtArgs(network, "namespace", vhostUserSocket)]
  const passt = startHelper("passt", argv, undefined, ["pipe"], { IP: findProgram("ip")!, NFT: findProgram("nft")!, RULES: rules })
  helpers.push(passt)
  const fdForQemu = passt.process.stdio[PASST_FD] as net.Socket
  try {
    await namespaceReady(passt, 10_000)
    if (exited(passt)) throw new Error(`passt's namespace ended: ${passt.stderr()}`)
    const pasta = startHelper("pasta", [plan.build.pasta!, ...pastaArgs(network, passt.process.pid!, plan.namespace.pastaAsRoot)], undefined)
    helpers.push(pasta)
    return { helpers: [passt, pasta], fdForQemu }
  } catch (e) {
    fdForQemu.destroy()
    throw e
  }
}

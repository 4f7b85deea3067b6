import { describe, expect, it } from "vitest"
import { parseEgressEntry } from "@boxlite/driver"
import { egressRuleset, hostAddresses, innerPorts, passtArgs, pastaArgs, resolveEntries } from "@boxlite/driver-qemu"

const lookup = async (name: string) => {
  if (name === "db.test") return ["192.0.2.10", "192.0.2.11"]
  throw Object.assign(new Error("not found"), { code: "ENOTFOUND" })
}

describe("egress entries", () => {
  it.each([
    ["10.1.2.3", { kind: "cidr", value: "10.1.2.3/32" }],
    ["10.1.2.3/8", { kind: "cidr", value: "10.0.0.0/8" }],
    ["0.0.0.0/0:443", { kind: "cidr", value: "0.0.0.0/0", ports: [443, 443] }],
    ["db.test:5432", { kind: "host", value: "db.test", ports: [5432, 5432] }],
    ["Example.COM:8000-8999", { kind: "host", value: "example.com", ports: [8000, 8999] }],
    ["private", { kind: "private", value: "private" }],
    ["private:53", { kind: "private", value: "private", ports: [53, 53] }]
  ])("%s parses", (entry, parsed) => {
    expect(parseEgressEntry(entry)).toEqual(parsed)
  })

  it.each(["", "10.1.2.256", "10.1.2.3/33", "10.1.2.3/x", "1.2.3", "host:0", "host:70000", "host:9-8", "host:", "a b", "-bad.example", "::1", "10.0.0.0/8:1:2"])(
    "%j is refused with a reason",
    (entry) => {
      expect(typeof parseEgressEntry(entry)).toBe("string")
    }
  )

  it("resolves hostnames on the host and expands private; an unknown host refuses the start naming it", async () => {
    expect(await resolveEntries(["db.test:5432", "private", "10.0.0.1"], "allow", lookup)).toEqual([
      { cidrs: ["192.0.2.10/32", "192.0.2.11/32"], ports: [5432, 5432] },
      { cidrs: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"] },
      { cidrs: ["10.0.0.1/32"] }
    ])
    await expect(resolveEntries(["10.0.0.1", "nowhere.test"], "deny", lookup)).rejects.toThrow("network.deny[1]: cannot resolve nowhere.test (ENOTFOUND)")
  })
})

describe("egress ruleset", () => {
  const base = { allow: undefined, deny: [], hostAddresses: ["192.0.2.2/32", "192.0.2.255/32"], allowHostLoopback: false }

  it("by default drops the host's addresses, the gateway, loopback, link-local, multicast, broadcast and 0/8, after DNS and replies", () => {
    expect(egressRuleset(base)).toBe([
      "table inet boxlite {",
      "\tchain output {",
      "\t\ttype filter hook output priority filter; policy accept;",
      "\t\toifname \"lo\" accept",
      "\t\tct state established,related accept",
      "\t\tmeta nfproto ipv6 drop",
      "\t\tip daddr 10.0.2.3 meta l4proto { tcp, udp } th dport 53 accept",
      "\t\tip daddr 0.0.0.0/8 drop",
      "\t\tip daddr 127.0.0.0/8 drop",
      "\t\tip daddr 169.254.0.0/16 drop",
      "\t\tip daddr 224.0.0.0/4 drop",
      "\t\tip daddr 255.255.255.255 drop",
      "\t\tip daddr 10.0.2.2 drop",
      "\t\tip daddr 192.0.2.2 drop",
      "\t\tip daddr 192.0.2.255 drop",
      "\t}",
      "}",
      ""
    ].join("\n"))
  })

  it("deny comes before allow, allow before the defaults (re-allowing them), and allow ends in drop", () => {
    const rules = egressRuleset({
      ...base,
      allow: [{ cidrs: ["169.254.169.254/32"], ports: [80, 80] }, { cidrs: ["10.0.0.0/8"] }],
      deny: [{ cidrs: ["10.9.0.0/16"] }, { cidrs: ["10.1.1.1/32"], ports: [8000, 8999] }]
    }).split("\n").map((l) => l.trim())
    const at = (rule: string) => rules.indexOf(rule)
    expect(at("ip daddr 10.9.0.0/16 drop")).toBeGreaterThan(at("ip daddr 10.0.2.3 meta l4proto { tcp, udp } th dport 53 accept"))
    expect(at("ip daddr 10.1.1.1 meta l4proto { tcp, udp } th dport 8000-8999 drop")).toBeGreaterThan(0)
    expect(at("ip daddr 10.0.0.0/8 accept")).toBeGreaterThan(at("ip daddr 10.9.0.0/16 drop"))
    expect(at("ip daddr 169.254.169.254 meta l4proto { tcp, udp } th dport 80 accept")).toBeLessThan(at("ip daddr 169.254.0.0/16 drop"))
    expect(rules.at(-4)).toBe("drop")
  })

  it("lets 10.0.2.2 through (pasta maps it to the host's loopback) only with allowHostLoopback, else drops it", () => {
    expect(egressRuleset(base)).not.toContain("ip daddr 10.0.2.2 accept")
    expect(egressRuleset(base)).toContain("ip daddr 10.0.2.2 drop")
    const allowed = egressRuleset({ ...base, allowHostLoopback: true })
    expect(allowed.indexOf("ip daddr 10.0.2.2 accept")).toBeLessThan(allowed.indexOf("ip daddr 10.0.2.2 drop"))
  })

  it("takes every address of every host interface and each subnet's broadcast", () => {
    const interfaces = {
      lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", mac: "", internal: true, cidr: "127.0.0.1/8" }],
      eth0: [
        { address: "192.0.2.2", netmask: "255.255.255.0", family: "IPv4", mac: "", internal: false, cidr: "192.0.2.2/24" },
        { address: "fe80::1", netmask: "ffff::", family: "IPv6", mac: "", internal: false, cidr: "fe80::1/64", scopeid: 2 }
      ],
      ptp: [{ address: "10.8.0.1", netmask: "255.255.255.255", family: "IPv4", mac: "", internal: false, cidr: "10.8.0.1/32" }]
    } as const
    expect(hostAddresses(interfaces as never)).toEqual(["127.0.0.1/32", "127.255.255.255/32", "192.0.2.2/32", "192.0.2.255/32", "10.8.0.1/32"])
  })
})

describe("passt and pasta arguments", () => {
  const network = {
    allowHostLoopback: false,
    ports: [{ protocol: "tcp", hostIp: "127.0.0.1", hostPort: 8080, guestPort: 80 }, { protocol: "udp", hostIp: "0.0.0.0", hostPort: 5353, guestPort: 53 }]
  } as const

  it("in the namespace: passt forwards from inner ports, sends DNS to pasta at 10.0.2.3, never maps the gateway", () => {
    const args = passtArgs(network, "namespace")
    expect(args).toEqual(expect.arrayContaining(["--fd", "3", "--dns-forward", "10.0.2.3", "--dns-host", "10.0.2.3", "--no-map-gw", "--mtu", "65520"]))
    expect(args.join(" ")).toContain("-t 80:80 -u 53:53")
    expect(passtArgs({ ...network, allowHostLoopback: true }, "namespace")).toContain("--no-map-gw")
  })

  it("pasta listens on the host ports, forwards nothing out of the namespace, maps 10.0.2.2 only when allowed", () => {
    const args = pastaArgs(network, 42, false).join(" ")
    expect(args).toContain("-T none -U none -t 127.0.0.1/8080:80 -u 0.0.0.0/5353:53")
    expect(args).toContain("--no-map-gw")
    expect(args).toContain("--netns /proc/42/ns/net --userns /proc/42/ns/user")
    expect(args).not.toContain("--runas")
    expect(pastaArgs({ allowHostLoopback: true, ports: [] }, 42, true).join(" ")).toContain("-t none -u none --host-lo-to-ns-lo --dns-forward 10.0.2.3 --map-host-loopback 10.0.2.2 --runas 0:0")
  })

  it("passt listens in the namespace on the guest port, or on a spare one where a protocol's guest port is taken", () => {
    const port = (protocol: "tcp" | "udp", guestPort: number) => ({ protocol, hostIp: "127.0.0.1", hostPort: 1, guestPort })
    expect(innerPorts([port("tcp", 80), port("udp", 80), port("tcp", 80), port("tcp", 20000), port("tcp", 80)])).toEqual([80, 80, 20001, 20000, 20002])
  })

  it("direct (an old passt, no namespace): host ports on passt, the gateway unmapped unless allowed", () => {
    expect(passtArgs(network, "direct").join(" ")).toContain("--no-map-gw -t 127.0.0.1/8080:80 -u 0.0.0.0/5353:53")
    expect(passtArgs({ ...network, allowHostLoopback: true }, "direct")).not.toContain("--no-map-gw")
  })
})

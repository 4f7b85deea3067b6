// A platform on which nothing boots: a hypervisor that is not there, a supervisor module never
// started. For tests of what opening a runtime does without a VM.
import { Effect, Layer } from "effect"
import { GuestArtifacts, Hypervisor } from "@boxlite/driver"
import { HypervisorUnavailable } from "../src/Errors.js"
import { SupervisorEntry } from "../src/supervisor/SupervisorPool.js"

export const noVmPlatform = Layer.mergeAll(
  Layer.succeed(Hypervisor, Hypervisor.of({
    name: "none",
    capabilities: { diskFormats: ["qcow2"], network: false, portForwards: false, egressPolicy: false, volumes: false, snapshots: false, agentTransport: "vsock" },
    guestNetwork: { address: "10.0.2.15", prefixLength: 24, gateway: "10.0.2.2", dns: "10.0.2.3", mtu: 1500 },
    info: Effect.fail(new HypervisorUnavailable("no VMs in this test")),
    start: () => Effect.fail(new HypervisorUnavailable("no VMs in this test"))
  })),
  Layer.succeed(GuestArtifacts, GuestArtifacts.of({ files: Effect.fail(new HypervisorUnavailable("no guest in this test")) })),
  Layer.succeed(SupervisorEntry, SupervisorEntry.of({ module: "/nonexistent/supervisor.js" }))
)

/** The fake driver: a stand-in VMM process and an in-process agent; faults by environment (test-only). */
export * from "./FakeDriver.js"
/** The fake guest agent: the real protocol, a tiny deterministic command set. */
export * from "./FakeAgent.js"
/** The contract suite every driver runs (vitest cases). */
export * from "./Contract.js"
/** A VM test file's own network namespace (only lo): guest probes cannot leave the machine. */
export * from "./NetworkNamespace.js"

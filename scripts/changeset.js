// `npm run changeset -- <command>`: the changesets CLI on every Node we support. Its bin calls
// module.enableCompileCache (Node >= 22.1) before loading the CLI, which itself runs on Node 20.
await import("@changesets/cli")

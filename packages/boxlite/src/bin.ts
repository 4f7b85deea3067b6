#!/usr/bin/env node
/** `boxlite`: the command line (src/cli/). `boxlite --help` lists its commands. */
import { main } from "./cli/main.js"

const code = await main(process.argv.slice(2))
// Exit now: an input left open (a terminal behind -i) would keep the process alive.
process.exit(code)

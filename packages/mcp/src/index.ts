/** The MCP server (stdio by default) over a BoxLite runtime: `serve(runtime)`, or `makeServer` for a transport of your own. */
export { makeServer, serve, type ServerOptions, toolError } from "./Server.js"
/** The tools it offers, each with its effect/Schema arguments. */
export { tools } from "./Tools.js"
export { type Tool } from "./Tool.js"
/** The kinds of box create_box makes. */
export { BOX_KINDS, type BoxKind } from "./Session.js"

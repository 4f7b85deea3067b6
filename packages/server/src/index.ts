/** The REST API v1: endpoints and shapes as Schemas, and its OpenAPI document. */
export { Api, openApiDocument } from "./Api.js"
/** The server: `start` listens; `routes` is the API on a runtime, for tests. */
export { type RunningServer, routes, type ServerOptions, start } from "./Server.js"
/** `--listen` values and the one-server-per-home lock. */
export { type Listen, parseListen } from "./Listen.js"

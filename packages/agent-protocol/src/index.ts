/** Frame layout, codec, limits and the ProtocolError raised on a framing violation. */
export * from "./Frame.js"
/** JSON control messages (HELLO, EXEC, EXIT, ...) and the CREDIT payload. */
export * from "./Messages.js"
/** The shared test vectors, as a path (the Go agent reads the same file). */
export { vectorsPath } from "./Vectors.js"

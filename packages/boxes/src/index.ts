/** SimpleBox: run commands and get their collected output. */
export * as SimpleBoxEffect from "./SimpleBox.js"
export { type ExecOutput, SimpleBox } from "./SimpleBox.js"

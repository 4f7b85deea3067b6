/** SimpleBox: run commands and get their collected output. */
export * as SimpleBoxEffect from "./SimpleBox.js"
export { type ExecOutput, SimpleBox } from "./SimpleBox.js"
/** InteractiveBox: a shell (or any command) on a real terminal, wired to local streams. */
export { type AttachOptions, attachTerminal, InteractiveBox, type TerminalSize } from "./InteractiveBox.js"

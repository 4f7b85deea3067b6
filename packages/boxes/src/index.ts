/** SimpleBox: run commands and get their collected output. */
export * as SimpleBoxEffect from "./SimpleBox.js"
export { type ExecOutput, SimpleBox } from "./SimpleBox.js"
/** InteractiveBox: a shell (or any command) on a real terminal, wired to local streams. */
export { type AttachOptions, attachTerminal, InteractiveBox, type TerminalSize } from "./InteractiveBox.js"
/** ComputerBox: a desktop for computer-use agents (screenshots, mouse, keyboard) with a browser viewer. */
export * as ComputerBoxEffect from "./ComputerBox.js"
export { ComputerBox, type ComputerBoxOptions, type Desktop, type Screenshot, type ScrollDirection } from "./ComputerBox.js"

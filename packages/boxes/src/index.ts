/** SimpleBox: run commands and get their collected output. */
export * as SimpleBoxEffect from "./SimpleBox.js"
export { type ExecOutput, SimpleBox } from "./SimpleBox.js"
/** InteractiveBox: a shell (or any command) on a real terminal, wired to local streams. */
export { type AttachOptions, attachTerminal, InteractiveBox, type TerminalSize } from "./InteractiveBox.js"
/** CodeBox: Python programs, pip packages and a stateful interpreter (cells, rich results). */
export * as CodeBoxEffect from "./CodeBox.js"
export {
  CodeBox, type CodeBoxError, type CodeBoxOptions, type CodeError, type CodeExecution, type CodeResult, type CodeBoxService, ProgramFailed, type RunCodeOptions, type RunOptions
} from "./CodeBox.js"
/** BrowserBox: Chromium, Firefox or WebKit in a box, driven from the host through a forwarded endpoint. */
export * as BrowserBoxEffect from "./BrowserBox.js"
export { BrowserBox, BrowserError, type BrowserBoxOptions, type BrowserType } from "./BrowserBox.js"
/** ComputerBox: a desktop for computer-use agents (screenshots, mouse, keyboard) with a browser viewer. */
export * as ComputerBoxEffect from "./ComputerBox.js"
export { ComputerBox, type ComputerBoxOptions, type Desktop, type Screenshot, type ScrollDirection } from "./ComputerBox.js"

/** SimpleBox: run commands and get their collected output. */
export * as SimpleBoxEffect from "./SimpleBox.js"
export { type ExecOutput, SimpleBox } from "./SimpleBox.js"
/** InteractiveBox: a shell (or any command) on a real terminal, wired to local streams. */
export { type AttachOptions, attachTerminal, InteractiveBox, type TerminalSize } from "./InteractiveBox.js"
/** BrowserBox: Chromium, Firefox or WebKit in a box, driven from the host through a forwarded endpoint. */
export * as BrowserBoxEffect from "./BrowserBox.js"
export { BrowserBox, BrowserError, type BrowserBoxOptions, type BrowserType } from "./BrowserBox.js"

/** The Promise face of BoxLite, for code that does not use Effect. */
export { Box, Boxlite, Images, type Platform, Snapshots } from "./Boxlite.js"
/** A running command: streams, stdin, wait, kill. */
export { ExecStdin, Execution, OutputStream } from "./Execution.js"
/** A rejection as the Promise face gives it: a BoxliteError as is, anything else as UnexpectedError. */
export { asBoxliteError } from "./run.js"

/** The runtime (Promise face) on the default platform, and SimpleBox bound to it. */
export { Boxlite, ComputerBox, type ComputerBoxOptions, InteractiveBox, SimpleBox, type SimpleBoxOptions } from "./Boxlite.js"
/** Boxes and executions returned by the runtime. */
export { Box, ExecStdin, Execution, Images, OutputStream } from "@boxlite/core/promise"
export type { AttachOptions, ExecOutput, Screenshot, ScrollDirection, TerminalSize } from "@boxlite/boxes"
/** Options and result types. */
export type {
  BoxInfo, BoxOptions, BoxStatus, EnvInput, ExecOptions, ExecResult, ImageDetails, ImageInfo, PruneResult, PullProgress, RegistryConfig,
  RuntimeInfo, RuntimeMetrics, RuntimeOptions
} from "@boxlite/core"
/** Errors: every one extends BoxliteError. */
export {
  BootError, BoxliteError, BoxNotFound, BoxStateError, ExecError, HypervisorUnavailable, ImageError, ImageNotFound,
  InvalidOptions, ParseError, RegistryAuthError, RegistryError, StorageError, TimeoutError, UnexpectedError
} from "@boxlite/core"

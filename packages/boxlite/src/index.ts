/** The runtime (Promise face) on the default platform, and SimpleBox bound to it. */
export { Boxlite, BrowserBox, type BrowserBoxOptions, ComputerBox, type ComputerBoxOptions, InteractiveBox, SimpleBox, type SimpleBoxOptions } from "./Boxlite.js"
/** CodeBox bound to the default runtime: Python programs, pip packages, a stateful interpreter. */
export { CodeBox, type CodeBoxOptions } from "./Boxlite.js"
export { type CodeError, type CodeExecution, type CodeResult, ProgramFailed, type RunCodeOptions, type RunOptions } from "@boxlite/boxes"
/** Boxes and executions returned by the runtime. */
export { Box, ExecStdin, Execution, Images, OutputStream, Snapshots } from "@boxlite/core/promise"
export type { AttachOptions, BrowserType, ExecOutput, Screenshot, ScrollDirection, TerminalSize } from "@boxlite/boxes"
export { BrowserError } from "@boxlite/boxes"
/** Options and result types. */
export type {
  BoxInfo, BoxOptions, BoxStatus, CopyOutOptions, EnvInput, ExecOptions, ExecResult, ImageDetails, ImageInfo, PruneResult, PullProgress, RegistryConfig,
  RuntimeInfo, RuntimeMetrics, RuntimeOptions, SnapshotInfo, SnapshotOptions, SnapshotPruneReport, WriteFileOptions
} from "@boxlite/core"
/** Errors: every one extends BoxliteError. */
export {
  BootError, BoxliteError, BoxNotFound, BoxStateError, CopyError, ExecError, HypervisorUnavailable, ImageError, ImageNotFound,
  InvalidOptions, ParseError, PathNotFound, RegistryAuthError, RegistryError, SnapshotError, StorageError, TimeoutError, UnexpectedError
} from "@boxlite/core"
/** This package's version (`boxlite.version`, as the reference's `boxlite.__version__`). */
export { version } from "./version.js"

/** The Promise face with the default platform bound: what `import { Boxlite } from "boxlite"` gives. */
import type { BoxOptions, ExecOptions, RuntimeOptions } from "@boxlite/core"
import {
  BrowserBox as BrowserBoxBase, type BrowserBoxOptions as BrowserBoxBaseOptions, CodeBox as CodeBoxBase, type CodeBoxOptions as CodeBoxBaseOptions,
  ComputerBox as ComputerBoxBase, type ComputerBoxOptions as ComputerBoxBaseOptions, InteractiveBox as InteractiveBoxBase, SimpleBox as SimpleBoxBase
} from "@boxlite/boxes"
import { Boxlite as BoxliteBase } from "@boxlite/core/promise"
import { defaultPlatform } from "./Platform.js"

export class Boxlite extends BoxliteBase {
  private static shared: Boxlite | undefined

  /** A runtime of `options.homeDir` (default `$BOXLITE_HOME` or `~/.boxlite`) on `options.driver` (default `$BOXLITE_DRIVER` or QEMU). */
  constructor(options: RuntimeOptions = {}) {
    super(options, defaultPlatform(options.driver))
  }

  /** The process-wide runtime of the default home directory. */
  static default(): Boxlite {
    Boxlite.shared ??= new Boxlite()
    return Boxlite.shared
  }
}

/** Where a box class of this package is created: `runtime`, else `Boxlite.default()`. */
export interface OnRuntime {
  /** The runtime to create the box in; default `Boxlite.default()`. */
  readonly runtime?: Boxlite
}

/** The options without `runtime`, and the runtime: what the box classes of @boxlite/boxes take. */
const onRuntime = <O extends OnRuntime>(options: O): [Omit<O, "runtime">, Boxlite] => {
  const { runtime, ...boxOptions } = options
  return [boxOptions, runtime ?? Boxlite.default()]
}

export type SimpleBoxOptions = BoxOptions & OnRuntime
export type CodeBoxOptions = CodeBoxBaseOptions & OnRuntime
export type BrowserBoxOptions = BrowserBoxBaseOptions & OnRuntime
export type ComputerBoxOptions = ComputerBoxBaseOptions & OnRuntime

/** `await using box = new SimpleBox({ image })`: boots on first exec, removed on dispose. */
export class SimpleBox extends SimpleBoxBase {
  constructor(options: SimpleBoxOptions = {}) {
    super(...onRuntime(options))
  }
}

/** `await using box = new InteractiveBox({ image }); await box.wait()`: a shell on this terminal. */
export class InteractiveBox extends InteractiveBoxBase {
  constructor(options: SimpleBoxOptions = {}) {
    super(...onRuntime(options))
  }
}

/** `await using codebox = new CodeBox({ image }); await codebox.run(code)`: Python, pip and a stateful interpreter. */
export class CodeBox extends CodeBoxBase {
  constructor(options: CodeBoxOptions = {}) {
    super(...onRuntime(options))
  }
}

/** `await using browser = new BrowserBox({ browser: "chromium" }); await browser.start(); browser.endpoint()`. */
export class BrowserBox extends BrowserBoxBase {
  constructor(options: BrowserBoxOptions = {}) {
    super(...onRuntime(options))
  }
}

/** `await using desktop = new ComputerBox(); await desktop.waitUntilReady()`: a desktop, removed on dispose. */
export class ComputerBox extends ComputerBoxBase {
  constructor(options: ComputerBoxOptions = {}) {
    super(...onRuntime(options))
  }
}

export type { ExecOptions }

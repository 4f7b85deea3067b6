/**
 * The errors a driver raises, and their base. They are classes (so `instanceof` works for
 * Promise users) and tagged (so Effect users can `Effect.catchTag("BootError", ...)`); the
 * runtime's other errors (@boxlite/core) extend the same BoxliteError.
 */
import { Schema } from "effect"

/**
 * The base of every BoxLite error: a Schema-backed class, so a subclass defined with
 * `BoxliteError.extend<X>("X")({ _tag: Schema.tag("X"), ...fields })` is encoded and decoded
 * with its fields (e.g. across the supervisor's pipe) and still `instanceof BoxliteError`.
 */
export class BoxliteError extends Schema.Error<BoxliteError>("BoxliteError")({ message: Schema.String }) {
  /** Set by each subclass (a class field, or its Schema's `_tag`); "BoxliteError" on the base. */
  declare readonly _tag: string
}
// On the prototype, not as class members: a `_tag` field would overwrite the one a Schema
// subclass's constructor has just set, and each Schema subclass assigns its prototype a `name`,
// which a getter without a setter would refuse. An error's name is its tag.
Object.defineProperties(BoxliteError.prototype, {
  _tag: { value: "BoxliteError", writable: true, configurable: true },
  name: {
    get(this: BoxliteError) {
      return this._tag
    },
    set() {},
    configurable: true
  }
})

/** No usable hypervisor on this host (e.g. QEMU is not installed); says what to install. */
export class HypervisorUnavailable extends BoxliteError {
  override readonly _tag = "HypervisorUnavailable" as const
  constructor(message: string) {
    super({ message })
  }
}

/** The VM did not come up; `consoleTail` is the end of the guest's console log. */
export class BootError extends BoxliteError {
  override readonly _tag = "BootError" as const
  constructor(problem: string, readonly consoleTail: string) {
    super({ message: consoleTail ? `${problem}\n--- guest console (tail) ---\n${consoleTail}` : problem })
  }
}

/**
 * A snapshot cannot be taken, found or restored: `reason` says which. `incompatible`: it was
 * saved by another QEMU, guest kernel or agent, or for another machine shape (the message names
 * what differs); `corrupt`: its files are damaged or missing; `unsupported`: this box or driver
 * cannot be saved (e.g. a box with volumes); `in-use`: boxes were cloned from it.
 */
export class SnapshotError extends BoxliteError {
  override readonly _tag = "SnapshotError" as const
  constructor(readonly reason: "incompatible" | "corrupt" | "unsupported" | "in-use" | "not-found", message: string) {
    super({ message })
  }
}

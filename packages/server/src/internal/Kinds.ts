/**
 * Purpose-built boxes over the API: `POST /v1/boxes {"kind": "code", ...}` makes the
 * @boxlite/boxes box of that kind (its image and defaults), started, and keeps it here so
 * `actions/{method}` calls its methods (a CodeBox's interpreter, a BrowserBox's browser and a
 * ComputerBox's session live in this process). Only the methods of ACTIONS are callable.
 */
import { BrowserBox, CodeBox, ComputerBox, SimpleBox } from "@boxlite/boxes"
import { type BoxOptions, InvalidOptions } from "@boxlite/core"
import type { Box, Boxlite } from "@boxlite/core/promise"
import { ACTIONS } from "../Api.js"

export type Kind = keyof typeof ACTIONS

interface Made {
  readonly kind: Kind
  readonly object: SimpleBox | BrowserBox
  readonly box: Box
}

/** The kind boxes this server made, by box id. */
export class Kinds {
  private readonly made = new Map<string, Made>()

  constructor(private readonly runtime: Boxlite) {}

  /** A started box of `kind` (not "box"): detached, so it outlives the request and the server. */
  async create(kind: Exclude<Kind, "box">, options: BoxOptions & Record<string, unknown>): Promise<Box> {
    const given = { detach: true, ...options }
    let object: SimpleBox | BrowserBox
    let box: Box
    switch (kind) {
      case "browser": {
        const browser = new BrowserBox(given, this.runtime)
        await browser.start()
        object = browser
        box = browser.box
        break
      }
      default: {
        const simple = kind === "code" ? new CodeBox(given, this.runtime) : kind === "computer" ? new ComputerBox(given, this.runtime) : new SimpleBox(given, this.runtime)
        box = await simple.start()
        object = simple
      }
    }
    this.made.set(box.id, { kind, object, box })
    return box
  }

  kindOf(boxId: string): Kind {
    return this.made.get(boxId)?.kind ?? "box"
  }

  /** Calls `method` of the box's kind with `args`; its result as JSON. */
  async call(boxId: string, method: string, args: ReadonlyArray<unknown>): Promise<unknown> {
    const made = this.made.get(boxId)
    const kind = made?.kind ?? "box"
    if (!(ACTIONS[kind] as ReadonlyArray<string>).includes(method) || made === undefined) {
      const allowed = ACTIONS[kind].length > 0 ? ACTIONS[kind].join(", ") : "none"
      throw new InvalidOptions("method", `a ${kind} box has no action "${method}" (its actions: ${allowed})`)
    }
    const member = (made.object as unknown as Record<string, unknown>)[method]
    const result = typeof member === "function" ? await (member as (...a: Array<unknown>) => unknown).apply(made.object, [...args]) : member
    return result === undefined ? null : JSON.parse(JSON.stringify(result))
  }

  /** Ends a kind box's session (interpreter, browser, desktop) and removes the box; false if it is not one. */
  async remove(boxId: string): Promise<boolean> {
    const made = this.made.get(boxId)
    if (made === undefined) return false
    this.made.delete(boxId)
    await made.object.stop()
    return true
  }

  forget(boxId: string) {
    this.made.delete(boxId)
  }
}

/**
 * The boxes of one MCP session. Any box of the home can run commands and move files (as with
 * the CLI); the purpose-built ones this session created (a CodeBox's interpreter, a desktop, a
 * browser) also answer their own tools. Closing the session removes the boxes it created.
 */
import { type BoxOptions, InvalidOptions } from "@boxlite/core"
import type { Box, Boxlite } from "@boxlite/core/promise"
import { BrowserBox, type BrowserType, CodeBox, ComputerBox, SimpleBox } from "@boxlite/boxes"

export const BOX_KINDS = ["box", "code", "computer", "browser"] as const
export type BoxKind = (typeof BOX_KINDS)[number]

/** What create_box takes beside the box options: the kind's own settings. */
export interface KindOptions {
  readonly browser?: BrowserType
  readonly width?: number
  readonly height?: number
}

type Owned =
  | { readonly kind: "box"; readonly box: SimpleBox }
  | { readonly kind: "code"; readonly box: CodeBox }
  | { readonly kind: "computer"; readonly box: ComputerBox }
  | { readonly kind: "browser"; readonly box: BrowserBox }

interface BoxOfKind {
  readonly box: SimpleBox
  readonly code: CodeBox
  readonly computer: ComputerBox
  readonly browser: BrowserBox
}

const KIND_OF_OPTION: Readonly<Record<keyof KindOptions, BoxKind>> = { browser: "browser", width: "computer", height: "computer" }

export class Session {
  private readonly owned = new Map<string, Owned>()

  constructor(readonly runtime: Boxlite) {}

  /** Creates and starts a box of `kind` (a browser box also starts its browser). */
  async create(kind: BoxKind, options: BoxOptions, own: KindOptions): Promise<{ readonly id: string; readonly kind: BoxKind }> {
    for (const key of Object.keys(own) as Array<keyof KindOptions>) {
      if (KIND_OF_OPTION[key] !== kind) throw new InvalidOptions(key, `is an option of kind "${KIND_OF_OPTION[key]}" boxes (this one is "${kind}")`)
    }
    const owned = ((): Owned => {
      switch (kind) {
        case "box":
          return { kind, box: new SimpleBox(options, this.runtime) }
        case "code":
          return { kind, box: new CodeBox(options, this.runtime) }
        case "computer":
          return { kind, box: new ComputerBox({ ...options, ...own }, this.runtime) }
        case "browser":
          return { kind, box: new BrowserBox({ ...options, ...own }, this.runtime) }
      }
    })()
    // Each kind's start removes its box if it fails.
    await owned.box.start()
    const id = owned.box.id
    this.owned.set(id, owned)
    return { id, kind }
  }

  /** Any box of the home, by id or name. */
  box(idOrName: string): Promise<Box> {
    return this.runtime.get(idOrName)
  }

  /** The kind of a box this session created, if it did. */
  kindOf(id: string): BoxKind | undefined {
    return this.owned.get(id)?.kind
  }

  /** A box of `kind` this session created; InvalidOptions("box") for any other. */
  async ofKind<K extends BoxKind>(idOrName: string, kind: K): Promise<BoxOfKind[K]> {
    const { id } = await this.box(idOrName)
    const owned = this.owned.get(id)
    if (owned?.kind !== kind) {
      throw new InvalidOptions("box", `box ${idOrName} is not a "${kind}" box of this session (${owned ? `it is a "${owned.kind}" box` : "it was not created here"}): create one with create_box { kind: "${kind}" }`)
    }
    return owned.box as BoxOfKind[K]
  }

  /** Removes a box: one of this session as its kind stops it, any other by force. */
  async remove(idOrName: string): Promise<string> {
    const { id } = await this.box(idOrName)
    const owned = this.owned.get(id)
    this.owned.delete(id)
    if (owned) await owned.box.stop()
    else await this.runtime.remove(id, { force: true })
    return id
  }

  /** Removes every box this session created. */
  async close(): Promise<void> {
    const boxes = [...this.owned.values()]
    this.owned.clear()
    await Promise.allSettled(boxes.map((owned) => owned.box.stop()))
  }
}

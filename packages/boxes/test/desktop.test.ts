// The ComputerBox's argument checks and parsers, without a VM (the VM tests drive the real desktop).
import { describe, expect, it } from "vitest"
import { parseKeys, pngSize, typeChunks, validateSize } from "../src/internal/desktop.js"

describe("ComputerBox key syntax", () => {
  it("accepts keysyms, modifiers, combos and sequences as xdotool spells them", () => {
    expect(parseKeys("Return")).toEqual(["Return"])
    expect(parseKeys("ctrl+a")).toEqual(["ctrl+a"])
    expect(parseKeys(" ctrl+shift+t  Return ")).toEqual(["ctrl+shift+t", "Return"])
    expect(parseKeys("XF86AudioMute super+F1 0x20ac U20AC")).toEqual(["XF86AudioMute", "super+F1", "0x20ac", "U20AC"])
  })
  it("maps an unambiguous lower-case spelling and single characters to keysyms", () => {
    expect(parseKeys("return CTRL+escape")).toEqual(["Return", "ctrl+Escape"])
    expect(parseKeys("é ctrl+€")).toEqual(["U00E9", "ctrl+U20AC"])
    expect(parseKeys("ctrl++ +")).toEqual(["ctrl+plus", "plus"])
  })
  it("rejects unknown names, empty parts and empty input as InvalidOptions(keys)", () => {
    for (const bad of ["", "   ", "ctrl+nosuchkey", "Retrun", "ctrl+", "+a", "a bogus"]) {
      expect(() => parseKeys(bad)).toThrow(expect.objectContaining({ _tag: "InvalidOptions", field: "keys" }))
    }
  })
})

describe("ComputerBox typing", () => {
  it("keeps ASCII as is and lists each distinct non-ASCII character's keysym", () => {
    expect(typeChunks("-n abc\n")).toEqual([{ text: "-n abc\n", keysyms: [] }])
    expect(typeChunks("héé✓😀")).toEqual([{ text: "héé✓😀", keysyms: ["U00E9", "U2713", "U1F600"] }])
  })
  it("splits text so that no run needs more than 16 spare keycodes", () => {
    const text = "αβγδεζηθικλμνξοπρστυ"
    const chunks = typeChunks(text)
    expect(chunks.map((c) => c.text).join("")).toBe(text)
    expect(chunks.map((c) => c.keysyms.length)).toEqual([16, 4])
  })
})

describe("ComputerBox sizes", () => {
  it("reads a PNG's size and refuses what is not a PNG", () => {
    const png = Buffer.from("89504e470d0a1a0a0000000d49484452000004000000030008020000", "hex")
    expect(pngSize(png)).toEqual([1024, 768])
    expect(() => pngSize(Buffer.from("not a png at all, not at all"))).toThrow(expect.objectContaining({ _tag: "ParseError" }))
  })
  it("validates the screen size", () => {
    expect(validateSize("width", undefined, 1024)).toBe(1024)
    expect(() => validateSize("height", 100, 768)).toThrow(expect.objectContaining({ field: "height" }))
    expect(() => validateSize("width", 1000.5, 1024)).toThrow(expect.objectContaining({ field: "width" }))
  })
})

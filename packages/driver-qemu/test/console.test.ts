import { TailBuffer } from "@boxlite/driver-qemu"
import { describe, expect, it } from "vitest"

describe("TailBuffer", () => {
  it("keeps the last bytes across wrap-arounds and writes larger than itself", () => {
    const tail = new TailBuffer(8)
    expect(tail.tail(4).toString()).toBe("")
    tail.push(Buffer.from("abc"))
    expect(tail.tail(100).toString()).toBe("abc")
    tail.push(Buffer.from("defgh"))
    expect(tail.tail(100).toString()).toBe("abcdefgh")
    tail.push(Buffer.from("ij"))
    expect(tail.tail(100).toString()).toBe("cdefghij")
    expect(tail.tail(3).toString()).toBe("hij")
    tail.push(Buffer.from("0123456789XYZ"))
    expect(tail.tail(8).toString()).toBe("6789XYZ".padStart(8, "5"))
    let all = ""
    for (let i = 0; i < 100; i++) {
      const chunk = String(i).repeat(i % 5)
      all += chunk
      tail.push(Buffer.from(chunk))
      expect(tail.tail(8).toString()).toBe(("cdefghij0123456789XYZ".slice(-8) + all).slice(-8))
    }
  })
})

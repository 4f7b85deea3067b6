// One error model (issue 16): each error is defined once, on a Schema-backed BoxliteError, so the
// classes users import from @boxlite/core are the ones @boxlite/oci and @boxlite/storage raise,
// and a Schema-defined error crosses a process boundary with its fields.
import { describe, expect, it } from "vitest"
import * as Oci from "@boxlite/oci"
import * as Storage from "@boxlite/storage"
import { Effect, Schema } from "effect"
import { BoxliteError, ImageError, ImageNotFound, InvalidOptions, RegistryAuthError, RegistryError, StorageError } from "../src/Errors.js"

describe("errors", () => {
  it("are defined once: core re-exports the classes oci and storage raise", () => {
    expect(ImageNotFound).toBe(Oci.ImageNotFound)
    expect(RegistryError).toBe(Oci.RegistryError)
    expect(RegistryAuthError).toBe(Oci.RegistryAuthError)
    expect(StorageError).toBe(Storage.StorageError)
  })

  it("Schema-defined ones round-trip through their encoded form with tag, fields and class", () => {
    const error = new RegistryError({ registry: "ghcr.io", status: 503, message: "kept failing" })
    const encoded = JSON.parse(JSON.stringify(Schema.encodeUnknownSync(RegistryError)(error)))
    expect(encoded).toEqual({ _tag: "RegistryError", registry: "ghcr.io", status: 503, message: "kept failing" })
    const decoded = Schema.decodeUnknownSync(RegistryError)(encoded)
    expect(decoded).toBeInstanceOf(RegistryError)
    expect(decoded).toBeInstanceOf(BoxliteError)
    expect(decoded).toMatchObject({ _tag: "RegistryError", name: "RegistryError", registry: "ghcr.io", status: 503, message: "kept failing" })
  })

  it("every kind is a BoxliteError and an Error named by its tag, matched by catchTag", async () => {
    const errors = [
      new ImageNotFound({ reference: "oci:/x", message: "none" }),
      new ImageError({ reference: "oci:/x", message: "corrupt" }),
      new StorageError({ message: "disk full" }),
      new InvalidOptions("cpus", "must be at least 1"),
      new BoxliteError({ message: "base" })
    ]
    for (const error of errors) {
      expect(error).toBeInstanceOf(BoxliteError)
      expect(error).toBeInstanceOf(Error)
      expect(error.name).toBe(error._tag)
      expect(String(error)).toContain(error.message)
    }
    expect(errors.map((e) => e._tag)).toEqual(["ImageNotFound", "ImageError", "StorageError", "InvalidOptions", "BoxliteError"])
    const caught = await Effect.runPromise(
      Effect.fail(errors[0] as ImageNotFound | StorageError).pipe(Effect.catchTag("ImageNotFound", (e) => Effect.succeed(e.reference)))
    )
    expect(caught).toBe("oci:/x")
  })

  it("a Schema-defined error validates its fields when made", () => {
    expect(() => new RegistryAuthError({ registry: "r", status: "401" as unknown as number, message: "m" })).toThrow()
  })
})

import { describe, expect, it } from "vitest"
import { formatReference, InvalidReference, parseReference } from "../src/index.js"

describe("parseReference", () => {
  it.each([
    ["python:slim", "docker.io/library/python:slim"],
    ["alpine", "docker.io/library/alpine:latest"],
    ["ghcr.io/owner/repo:tag", "ghcr.io/owner/repo:tag"],
    ["123456.dkr.ecr.us-east-1.amazonaws.com/repo:tag", "123456.dkr.ecr.us-east-1.amazonaws.com/repo:tag"],
    ["localhost/app", "localhost/app:latest"],
    ["127.0.0.1:5000/ns/app:1.0", "127.0.0.1:5000/ns/app:1.0"],
    [`busybox@sha256:${"a".repeat(64)}`, `docker.io/library/busybox@sha256:${"a".repeat(64)}`],
    ["user/repo", "docker.io/user/repo:latest"]
  ])("%s -> %s", (raw, canonical) => {
    expect(formatReference(parseReference(raw))).toBe(canonical)
  })

  it("parses oci: layout references with and without a tag", () => {
    expect(parseReference("oci:/a/b:slim")).toMatchObject({ _tag: "Layout", path: "/a/b", tag: "slim" })
    expect(parseReference("oci:./out/busybox")).toMatchObject({ _tag: "Layout", path: "./out/busybox", tag: undefined })
    expect(parseReference("oci:/x:y/layout")).toMatchObject({ path: "/x:y/layout", tag: undefined })
  })

  it.each(["", "UPPER/case", "python:", "oci:", "a@sha256:short", "bad name"])("rejects %j", (raw) => {
    expect(() => parseReference(raw)).toThrow(InvalidReference)
  })
})

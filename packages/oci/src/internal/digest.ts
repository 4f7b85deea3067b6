/** Content digests (`sha256:<hex>`): which ones we accept and how they are computed. */
import { createHash, type Hash } from "node:crypto"

/** Only algorithms Node hashes, with exact hex lengths, so a digest is also a safe file name. */
const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/

export const isDigest = (value: string): boolean => DIGEST.test(value)

export const digestAlgorithm = (digest: string): string => digest.slice(0, digest.indexOf(":"))

export const newHash = (algorithm: string): Hash => createHash(algorithm)

export const digestOf = (bytes: Buffer, algorithm: string): string => `${algorithm}:${newHash(algorithm).update(bytes).digest("hex")}`

import { fileURLToPath } from "node:url"

/** Absolute path of vectors/frames.json, shared with the guest agent's tests. */
export const vectorsPath: string = fileURLToPath(new URL("../vectors/frames.json", import.meta.url))

// The contract suite run against the fake driver: what the fake promises is what every driver must.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { driverContract, FAKE_DRIVER_NAME, make, writeFakeGuest } from "../src/index.js"

const guestDir = fs.mkdtempSync(path.join(os.tmpdir(), "bl-fake-guest-"))
afterAll(() => fs.rmSync(guestDir, { recursive: true, force: true }))

driverContract(FAKE_DRIVER_NAME, { make: () => make(), guest: () => writeFakeGuest(guestDir), timeoutMs: 20_000 })

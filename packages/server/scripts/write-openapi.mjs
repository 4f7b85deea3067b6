// Writes openapi/boxlite.v1.json from the API's Schemas (after `npm run build`); a unit test checks the committed file equals it.
import * as fs from "node:fs"
import { openApiDocument } from "../dist/Api.js"

const file = new URL("../../../openapi/boxlite.v1.json", import.meta.url)
fs.writeFileSync(file, `${JSON.stringify(openApiDocument(), null, 2)}\n`)
console.log(`wrote ${file.pathname}`)

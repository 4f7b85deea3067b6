// BrowserBox: Chromium runs in a box, Playwright drives it from here over CDP.
//   node examples/browserbox.mjs
// The image defaults to the one scripts/install.sh builds (images/out/browser), or
// $BOXLITE_BROWSER_IMAGE. Under TCG the browser takes a while to start: be patient.
import { BrowserBox } from "boxlite"
import { chromium } from "playwright-core"

const box = new BrowserBox({ browser: "chromium" })
try {
  await box.start()
  console.log("endpoint:", box.endpoint())
  const browser = await chromium.connectOverCDP(box.endpoint())
  const page = await browser.newPage()
  page.setDefaultTimeout(120_000)
  await page.setContent(`<title>Made in a box</title><input id=q><button onclick="document.title = 'Hello, ' + q.value">Go</button>`)
  await page.fill("#q", "BoxLite")
  await page.click("button")
  console.log("title after the click:", await page.title())
  console.log("computed in the page:", await page.evaluate(() => `${navigator.userAgent.match(/HeadlessChrome\/[\d.]+/)[0]}, 6*7 = ${6 * 7}`))
  const png = await page.screenshot()
  console.log(`screenshot: ${png.length} bytes of PNG`)
  await browser.close()
} finally {
  await box.stop()
}

"""BrowserBox: browser automation with the browser in a box (the reference's browserbox_example.py).

Chromium with its DevTools endpoint (what Puppeteer's `browserURL` and Playwright's
`connect_over_cdp` take), driven here with nothing but the standard library's HTTP client; then
another browser engine, Firefox (WebDriver BiDi), by the same pattern. Under software
emulation a browser takes a minute or two to start: be patient.
    python3 browserbox_example.py
"""
import asyncio
import json
import time
import urllib.parse
import urllib.request

import boxlite


def devtools(endpoint, path, method="GET"):
    with urllib.request.urlopen(urllib.request.Request(endpoint + path, method=method), timeout=60) as response:
        return json.load(response)


async def chromium():
    print("=== Chromium ===")
    async with boxlite.BrowserBox() as browser:
        endpoint = browser.endpoint()
        print(f"Connect Puppeteer to: {endpoint}")
        # Playwright: `await playwright.chromium.connect_over_cdp(endpoint)`; here, the DevTools HTTP API.
        version = devtools(endpoint, "/json/version")
        print(f"browser: {version['Browser'].split('/')[0]}, protocol {version['Protocol-Version']}")
        page = "data:text/html," + urllib.parse.quote("<title>Made in a box</title><h1>Hello</h1>")
        devtools(endpoint, "/json/new?" + urllib.parse.quote(page, safe=""), method="PUT")
        for _ in range(180):  # a page loads slowly under software emulation
            titles = [t["title"] for t in devtools(endpoint, "/json/list") if t["type"] == "page"]
            if "Made in a box" in titles:
                break
            time.sleep(1)
        print(f"pages open in the box: {sorted(titles)}")


async def firefox():
    print("\n=== Firefox (cross-browser: the same box, another engine) ===")
    async with boxlite.BrowserBox(browser="firefox") as browser:
        print(f"WebDriver BiDi endpoint: {browser.endpoint()}")
        info = await browser.info()
        print(f"box {info.id}: {info.status}, {info.cpus} CPUs, {info.memory_mib} MiB")


async def main():
    await chromium()
    await firefox()


if __name__ == "__main__":
    asyncio.run(main())

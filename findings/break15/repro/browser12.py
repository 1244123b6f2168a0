import asyncio
import sys

from playwright.async_api import async_playwright


async def main():
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for url in sys.argv[1:]:
            ctx = await b.new_context()
            page = await ctx.new_page()
            urls = []
            page.on("websocket", lambda ws, urls=urls: urls.append(ws.url))
            await page.goto(url)
            await page.locator("#connect-form").evaluate("f => f.requestSubmit()")
            await page.wait_for_timeout(3000)
            status = await page.inner_text("#status")
            print(url, "-> websockets:", sorted(set(urls)), "| status:", status)
            await ctx.close()
        await b.close()


asyncio.run(main())

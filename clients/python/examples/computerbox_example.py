"""ComputerBox: desktop automation for agent workflows (the reference's computerbox_example.py).

A desktop in a box, driven as a computer-use agent drives one: screen size, screenshots, the
mouse and the keyboard (all 14 functions), in a small workflow that types into a terminal and
checks the result. Under software emulation the desktop takes ~30-60 s to come up.
    python3 computerbox_example.py
"""
import asyncio
import os
import tempfile

import boxlite


async def main():
    async with boxlite.ComputerBox() as computer:
        await computer.wait_until_ready(timeout=300)

        print("=== Screen ===")
        width, height = await computer.get_screen_size()
        print(f"screen: {width}x{height}")
        screenshot_bytes = await computer.screenshot()
        path = os.path.join(tempfile.gettempdir(), "computerbox-desktop.png")
        with open(path, "wb") as f:
            f.write(screenshot_bytes)
        print(f"screenshot: {len(screenshot_bytes)} bytes of PNG -> {path}")

        print("\n=== Workflow: type into a terminal ===")
        # A terminal to type into (an agent would find one by screenshot; here we open it).
        desktop = {"user": "desktop", "env": {"DISPLAY": ":1"}}
        await computer.exec("sh", "-c", "setsid -f xterm -T notes -geometry +100+100 -e sh -c 'cat > /tmp/notes.txt' >/dev/null 2>&1", **desktop)
        await computer.exec("xdotool", "search", "--sync", "--onlyvisible", "--name", "^notes$", **desktop)  # mapped: clicks land in it
        await computer.mouse_move(200, 200)  # inside the terminal
        await computer.left_click()
        print(f"cursor at {await computer.cursor_position()}")
        await computer.type_text("Hello, world!")
        await computer.key("Return")
        await computer.key("ctrl+d")  # end of input: cat writes the file and the terminal closes
        for _ in range(20):
            result = await computer.exec("cat", "/tmp/notes.txt")
            if result.stdout.endswith("\n"):
                break
            await asyncio.sleep(0.5)
        print(f"the terminal saved: {result.stdout!r}")

        print("\n=== GUI interaction patterns ===")
        await computer.double_click()
        await computer.triple_click()
        await computer.right_click()
        await computer.key("Escape")
        await computer.middle_click()
        await computer.left_click_drag(300, 300, 400, 350)
        await computer.scroll(512, 384, "down", 3)
        print(f"after a drag to (400, 350) and a scroll: cursor at {await computer.cursor_position()}")


if __name__ == "__main__":
    asyncio.run(main())

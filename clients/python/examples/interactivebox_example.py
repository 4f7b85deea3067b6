"""Interactive shells: a shell in a box on this terminal (the reference's interactivebox_example.py).

Your terminal goes into raw mode and talks to a shell on a pseudo-terminal in the box (its size
follows yours); `exit` or Ctrl-D ends it. With stdin not a terminal, the shell reads it:
    echo 'uname -a; exit' | python3 interactivebox_example.py
"""
import asyncio

import boxlite


async def main():
    print("Starting a shell in an alpine box; type `exit` to leave.")
    async with boxlite.InteractiveBox(image="alpine:latest") as itbox:
        # Drop into interactive shell
        exit_code = await itbox.wait()
    print(f"\r\nshell exited with code {exit_code}; the box is gone")


if __name__ == "__main__":
    asyncio.run(main())

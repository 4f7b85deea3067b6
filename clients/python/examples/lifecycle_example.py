"""Box lifecycle: stop, restart, state and data persistence, cleanup (the reference's lifecycle_example.py).

A box with a persistent disk (`disk_size_gb`) and `auto_remove=False` survives a stop: its next
command boots it again, with the files it wrote. Without a persistent disk a restart is fresh.
    python3 lifecycle_example.py
"""
import asyncio

import boxlite


async def run(box, *command):
    execution = await box.exec(*command)
    output = [line async for line in execution.stdout()]
    result = await execution.wait()
    return result.exit_code, output


async def main():
    runtime = boxlite.Boxlite.default()
    box = runtime.create(boxlite.BoxOptions(image="python:slim", disk_size_gb=1, auto_remove=False))
    try:
        print(f"created {box.id}: {(await box.info()).status}")

        print("\n=== Start and write state ===")
        await run(box, "sh", "-c", "echo 'written before the stop' > /root/data.txt")
        print(f"running: {(await box.info()).status}")

        print("\n=== Stop ===")
        await box.stop()
        print(f"after stop: {(await box.info()).status}")

        print("\n=== Restart (the next command boots it) and verify the data ===")
        code, output = await run(box, "cat", "/root/data.txt")
        print(f"after restart: {(await box.info()).status}; /root/data.txt -> {output} (exit code {code})")

        print("\n=== Stop and restart once more ===")
        await box.stop()
        code, output = await run(box, "sh", "-c", "cat /root/data.txt; echo 'boot 3' >> /root/data.txt; wc -l < /root/data.txt")
        print(f"lines now: {output[-1]}")
    finally:
        print("\n=== Cleanup ===")
        await box.stop()
        await box.remove()
        print(f"removed; boxes with that id left: {len([b for b in runtime.list() if b.id == box.id])}")


if __name__ == "__main__":
    asyncio.run(main())

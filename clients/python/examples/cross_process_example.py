"""Multi-process operations: a box created by one process, reattached from others by id, stopped,
and restarted from yet another process (the reference's cross_process_example.py).

Every process opens the runtime of the same home (`Boxlite.default()`): they share its boxes.
    python3 cross_process_example.py
"""
import asyncio
import subprocess
import sys

import boxlite


async def child(role, box_id):
    runtime = boxlite.Boxlite.default()
    box = runtime.get(box_id)  # reattach by id
    if role == "reader":
        execution = await box.exec("cat", "/root/from-parent.txt")
        print(f"  [child {role}] read: {[line async for line in execution.stdout()]}")
        await execution.wait()
    else:  # restarter: the box was stopped; a command boots it again
        print(f"  [child {role}] status before: {(await box.info()).status}")
        execution = await box.exec("sh", "-c", "echo restarted by another process; cat /proc/uptime")
        print(f"  [child {role}] {[line async for line in execution.stdout()]}")
        await execution.wait()
        print(f"  [child {role}] status after: {(await box.info()).status}")


def spawn(role, box_id):
    subprocess.run([sys.executable, __file__, role, box_id], check=True)


async def main():
    runtime = boxlite.Boxlite.default()
    box = runtime.create(boxlite.BoxOptions(image="python:slim", disk_size_gb=1, auto_remove=False))
    try:
        execution = await box.exec("sh", "-c", "echo 'hello from the parent process' > /root/from-parent.txt")
        await execution.wait()
        print(f"parent created and started box {box.id}")

        print("\n=== Reattach from a different process ===")
        await asyncio.to_thread(spawn, "reader", box.id)

        print("\n=== Stop here, restart from another process ===")
        await box.stop()
        await asyncio.to_thread(spawn, "restarter", box.id)
        print(f"parent sees: {(await box.info()).status}")
    finally:
        await box.stop()
        await box.remove()
        print("parent removed the box")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        asyncio.run(child(sys.argv[1], sys.argv[2]))
    else:
        asyncio.run(main())

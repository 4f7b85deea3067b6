"""Runtime introspection: list boxes with their status and metadata, filter by status (the
reference's list_boxes_example.py).
    python3 list_boxes_example.py
"""
import asyncio

import boxlite


def show(boxes):
    print(f"{'ID':<28} {'NAME':<14} {'STATUS':<11} {'IMAGE':<16} CPUS  MEMORY")
    for info in boxes:
        print(f"{info.id:<28} {info.name or '-':<14} {info.status:<11} {info.image:<16} {info.cpus:<5} {info.memory_mib} MiB")


async def main():
    runtime = boxlite.Boxlite.default()
    web = runtime.create(boxlite.BoxOptions(image="alpine:latest", name="list-demo-web", memory_mib=256))
    worker = runtime.create(boxlite.BoxOptions(image="alpine:latest", name="list-demo-worker", cpus=2, memory_mib=384, auto_remove=False))
    try:
        await (await web.exec("true")).wait()  # boots it: running
        mine = {web.id, worker.id}

        print("=== All boxes ===")
        boxes = [info for info in runtime.list() if info.id in mine]
        show(boxes)

        print("\n=== Filtered by status ===")
        for status in ("running", "configured"):
            print(f"{status}: {[info.name for info in boxes if info.status == status]}")

        print("\n=== One box's metadata ===")
        info = await worker.info()
        print(f"Box {info.id}: {info.status}, created {info.created_at:%Y-%m-%d %H:%M:%S %Z}, auto_remove={info.auto_remove}")

        metrics = runtime.metrics()
        print(f"\nBoxes created: {metrics.boxes_created}, active: {metrics.active_boxes}")
    finally:
        for box in (web, worker):
            await box.stop()
            await box.remove()
        print(f"after cleanup: {len([info for info in runtime.list() if info.id in mine])} of them left")


if __name__ == "__main__":
    asyncio.run(main())

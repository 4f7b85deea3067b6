"""The low-level API: runtimes, box options with resource limits, volumes and ports, box info,
streaming execution (the reference's native_example.py).
    python3 native_example.py
"""
import asyncio
import os
import shutil
import socket
import sys
import tempfile

import boxlite


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main():
    print("=== Runtimes ===")
    runtime = boxlite.Boxlite.default()
    print(f"default runtime: {len(runtime.list())} boxes")
    custom_home = tempfile.mkdtemp(prefix="boxlite-custom-")
    with boxlite.Boxlite(boxlite.Options(home_dir=custom_home)) as custom:
        print(f"custom runtime in {custom_home}: {len(custom.list())} boxes, metrics {custom.metrics().boxes_created} created")
    shutil.rmtree(custom_home, ignore_errors=True)

    print("\n=== Resource limits, volumes, ports ===")
    shared = tempfile.mkdtemp(prefix="boxlite-shared-")
    with open(os.path.join(shared, "input.txt"), "w") as f:
        f.write("read from the host through a read-only volume\n")
    host_port = free_port()
    box = runtime.create(boxlite.BoxOptions(
        image="python:slim",
        cpus=1,
        memory_mib=384,
        env=[("APP_MODE", "demo")],
        volumes=[(shared, "/mnt/shared", "ro")],
        ports=[(host_port, 8000, "tcp")],
    ))
    try:
        execution = await box.exec("sh", "-c", "cat /mnt/shared/input.txt; echo APP_MODE=$APP_MODE; nproc; touch /mnt/shared/x 2>&1 || true")
        async for line in execution.stdout():
            print(f"  {line}")
        await execution.wait()

        print("\n=== Box information ===")
        info = await box.info()
        print(f"Box {info.id}: {info.status}, image {info.image}, {info.cpus} CPU, {info.memory_mib} MiB")
        print(f"ports: {[(p['hostPort'], p['guestPort'], p['protocol']) for p in info.ports]}")
        metrics = await box.metrics()
        print(f"Memory: {metrics.memory_usage_bytes / (1024**2):.2f} MB, CPU time: {metrics.cpu_time_ms}ms")

        print("\n=== Streaming execution ===")
        execution = await box.exec("python", "-u", "-c", "import sys, time\nfor i in range(5):\n    print(f'tick {i}'); time.sleep(0.2)\nprint('done', file=sys.stderr)")
        stdout = execution.stdout()
        async for line in stdout:
            print(f"Output: {line}")
        async for line in execution.stderr():
            print(f"Error: {line}", file=sys.stderr)
        result = await execution.wait()
        print(f"Exit code: {result.exit_code}")
    finally:
        await box.stop()
        await box.remove()
        shutil.rmtree(shared, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

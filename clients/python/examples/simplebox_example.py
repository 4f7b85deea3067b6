"""SimpleBox: the foundation patterns (the reference's examples/python/simplebox_example.py).

Basic execution with results, separate stdout/stderr, environment and working directory, exit
codes and errors, several commands in one box, a small data-processing pipeline.
    python3 simplebox_example.py
"""
import asyncio

import boxlite


async def main():
    async with boxlite.SimpleBox(image="python:slim") as box:
        print("=== Basic execution ===")
        result = await box.exec("python", "-c", "print('Hello from BoxLite!')")
        print(f"stdout: {result.stdout.strip()}  (exit code {result.exit_code})")

        print("\n=== Separate stdout and stderr ===")
        result = await box.exec("python", "-c", "import sys; print('to stdout'); print('to stderr', file=sys.stderr)")
        print(f"stdout: {result.stdout.strip()}")
        print(f"stderr: {result.stderr.strip()}")

        print("\n=== Error handling and exit codes ===")
        result = await box.exec("python", "-c", "import sys; sys.exit(3)")
        print(f"exit code: {result.exit_code}")
        result = await box.exec("ls", "/no/such/dir")
        if result.exit_code != 0:
            print(f"Command failed ({result.exit_code}): {result.stderr.strip()}")
        result = await box.exec("no-such-command")
        print(f"no-such-command cannot run (exit code {result.exit_code}): {result.stderr.strip()}")

        print("\n=== Multiple commands in the same box ===")
        await box.exec("sh", "-c", "echo 'state is kept between commands' > /root/note.txt")
        result = await box.exec("cat", "/root/note.txt")
        print(result.stdout.strip())
        result = await box.exec("python", "--version")
        print(result.stdout.strip())

        print("\n=== Data processing pipeline ===")
        await box.exec("python", "-c", "import csv, random\n"
                       "random.seed(7)\n"
                       "with open('/tmp/sales.csv', 'w', newline='') as f:\n"
                       "    w = csv.writer(f); w.writerow(['region', 'amount'])\n"
                       "    for i in range(100): w.writerow([random.choice(['north', 'south', 'east']), random.randint(1, 100)])")
        result = await box.exec("python", "-c", "import csv, collections, json\n"
                                "totals = collections.Counter()\n"
                                "for row in csv.DictReader(open('/tmp/sales.csv')): totals[row['region']] += int(row['amount'])\n"
                                "print(json.dumps(dict(sorted(totals.items()))))")
        print(f"totals per region: {result.stdout.strip()}")

    print("\n=== Environment variables and working directory (a box configured for them) ===")
    async with boxlite.SimpleBox(image="python:slim", env=[("GREETING", "hello"), ("TARGET", "world")], working_dir="/tmp") as box:
        result = await box.exec("sh", "-c", 'echo "$GREETING, $TARGET from $(pwd)"')
        print(result.stdout.strip())
        result = await box.exec("sh", "-c", 'echo "$GREETING"', env={"GREETING": "per-command env wins"})
        print(result.stdout.strip())


if __name__ == "__main__":
    asyncio.run(main())

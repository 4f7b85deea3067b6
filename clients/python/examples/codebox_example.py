"""CodeBox: secure Python code execution for AI agents (the reference's codebox_example.py).

Basic code execution, installing a package at run time, data processing as an agent would do it,
and what isolation means: the code's writes and its view of the machine stay in the box.
    python3 codebox_example.py
"""
import asyncio

import boxlite

# An agent-written module packaged as a wheel inside the box: the package installed below needs no
# network (a box may have none); `install_package("requests")` works the same against a reachable index.
BUILD_WHEEL = """
import zipfile
info = "agent_tools-1.0.dist-info/"
with zipfile.ZipFile("/tmp/agent_tools-1.0-py3-none-any.whl", "w") as z:
    z.writestr("agent_tools.py", "def word_count(text):\\n    return len(text.split())\\n")
    z.writestr(info + "METADATA", "Metadata-Version: 2.1\\nName: agent-tools\\nVersion: 1.0\\n")
    z.writestr(info + "WHEEL", "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    z.writestr(info + "RECORD", "")
print("built /tmp/agent_tools-1.0-py3-none-any.whl")
"""


async def main():
    async with boxlite.CodeBox() as codebox:
        print("=== Basic code execution ===")
        print(await codebox.run("print(sum(i * i for i in range(10)))"))

        print("=== Dynamic package installation ===")
        print(await codebox.run(BUILD_WHEEL))
        await codebox.install_package("/tmp/agent_tools-1.0-py3-none-any.whl")
        print(await codebox.run("import agent_tools; print('words:', agent_tools.word_count('untrusted code belongs in a box'))"))

        print("=== Data processing (AI agent use case) ===")
        print(await codebox.run("""
import statistics
temperatures = [21.5, 23.1, 19.8, 25.4, 22.0, 24.3, 20.7]
print(f"mean {statistics.mean(temperatures):.2f}, stdev {statistics.stdev(temperatures):.2f}, max {max(temperatures)}")
"""))

        print("=== Isolation ===")
        print(await codebox.run("""
import os, platform
open('/tmp/written-by-untrusted-code', 'w').write('stays in the box')
print('kernel:', platform.release(), '| user:', os.getuid(), '| files in /tmp:', sorted(os.listdir('/tmp')))
"""))
        try:
            await codebox.run("raise ValueError('a failing program is an ExecError')")
        except boxlite.ExecError as e:
            print(f"ExecError (exit code {e.exit_code}): {str(e).strip().splitlines()[-1]}")
    print("the box is gone, and with it everything the code wrote")


if __name__ == "__main__":
    asyncio.run(main())

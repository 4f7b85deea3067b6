"""End to end: the client against the real server (`boxlite serve` of this checkout) and real VMs.

One home for the file, its server started on demand by the client. `<home>/config.json` sets a
docker.io mirror: a local docker-registry holding the offline images (images/out) as
`library/python:slim` and `library/alpine:latest` (busybox standing in for alpine), so the
reference's nine examples run unchanged. Skipped, with the reason, when the server is not built.
"""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import boxlite
from conftest import run

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(CLIENT))
IMAGES = os.path.join(REPO, "images", "out")
BUSYBOX = f"oci:{IMAGES}/busybox:latest"
PYTHON = f"oci:{IMAGES}/python:slim"


def server_missing():
    try:
        command = boxlite._server.server_command()  # as the client finds it: $BOXLITE_BIN, this checkout's build, PATH
    except boxlite.ServerUnavailable as e:
        return f"the server is not built: {e}"
    help_text = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
    if " serve" not in help_text.stdout:
        return f"`{' '.join(command)}` has no `serve` command yet (packages/server)"
    for image in ("busybox", "python"):
        if not os.path.isfile(os.path.join(IMAGES, image, "index.json")):
            return f"the offline image {image} is not built (images/build.sh)"
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (the examples' docker.io mirror)"
    return None


pytestmark = pytest.mark.skipif(server_missing() is not None, reason=server_missing() or "")


def qemu_processes_under(home):
    """QEMU processes holding a file under `home` open (a jailed QEMU gets descriptors, not paths)."""
    found = subprocess.run(["pgrep", "^qemu-system"], capture_output=True, text=True).stdout.split()
    def holds(pid):
        try:
            return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(home + "/") for fd in os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return False
    return [pid for pid in found if holds(pid)]


def box_dirs(home):
    try:
        return os.listdir(os.path.join(home, "boxes"))
    except FileNotFoundError:
        return []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """docker-registry on a free loopback port, in a temp dir, holding the offline images."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="blpy-registry-")
        self.host = f"127.0.0.1:{free_port()}"
        with open(os.path.join(self.dir, "config.yml"), "w") as f:
            f.write(f"version: 0.1\nlog: {{ level: error, accesslog: {{ disabled: true }} }}\n"
                    f"storage: {{ filesystem: {{ rootdirectory: {self.dir}/storage }} }}\nhttp:\n  addr: {self.host}\n")
        self.process = subprocess.Popen(["docker-registry", "serve", os.path.join(self.dir, "config.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(tuple(self.host.split(":")), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("docker-registry did not start")
                time.sleep(0.1)

    def push(self, layout, name):
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", layout, f"docker://{self.host}/{name}"], check=True, timeout=600)

    def stop(self):
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def home():
    registry = Registry()
    path = tempfile.mkdtemp(prefix="blpy-")
    saved = {k: os.environ.get(k) for k in ("BOXLITE_HOME", "BOXLITE_URL")}
    try:
        registry.push(PYTHON, "library/python:slim")
        registry.push(PYTHON, "library/python:alpine")  # the upstream simplebox example's image
        registry.push(BUSYBOX, "library/alpine:latest")
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump({"registries": {"docker.io": {"mirrors": [f"http://{registry.host}"]}, registry.host: {"insecure": True}}}, f)
        os.environ["BOXLITE_HOME"] = path
        os.environ.pop("BOXLITE_URL", None)
        yield path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        registry.stop()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime(home):
    rt = boxlite.Boxlite(boxlite.Options(home_dir=home))
    assert rt._server is not None, "the client should have started the home's server"
    pid = rt._server.process.pid
    yield rt
    for info in rt.list():
        rt.remove(info.id, force=True)
    rt.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert qemu_processes_under(home) == []
    assert box_dirs(home) == []


@pytest.fixture(scope="module")
def mirror(runtime):
    """None when the server pulls the reference's image names through config.json's mirror, else why not."""
    try:
        runtime.remove(runtime.create(boxlite.BoxOptions(image="alpine:latest")).id, force=True)
        return None
    except boxlite.BoxliteError as e:
        return f"the server does not pull through <home>/config.json's docker.io mirror ({type(e).__name__}: {e})"


@pytest.fixture(scope="class")
def box(runtime):
    """One busybox box shared by the tests that do not change it."""
    b = runtime.create(boxlite.BoxOptions(image=BUSYBOX, memory_mib=256))
    yield b
    run(b.remove(force=True))


def test_server_info_and_the_box_list_of_the_home(runtime, home):
    assert runtime.info()["homeDir"] == home
    assert runtime.url == f"unix://{home}/boxlite.sock"


class TestOneBusyboxBox:
    """Tests that share one box (they do not change it)."""

    def test_exec_streams_lines_live_and_takes_stdin(self, box):
        async def go():
            execution = await box.exec("sh", "-c", "echo first; read answer; echo \"got $answer\"; echo oops >&2; exit 4")
            stdout = execution.stdout()
            first = await stdout.__anext__()  # arrives while the command still waits for stdin: live
            stdin = execution.stdin()
            await stdin.write(b"42\n")
            await stdin.close()
            rest = [line async for line in stdout]
            errors = [line async for line in execution.stderr()]
            return first, rest, errors, await execution.wait()

        first, rest, errors, result = run(go())
        assert (first, rest, errors, result.exit_code) == ("first", ["got 42"], ["oops"], 4)

    def test_many_lines_and_utf8(self, box):
        async def go():
            execution = await box.exec("sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo \"line $i é\"; i=$((i+1)); done")
            lines = [line async for line in execution.stdout()]
            return lines, await execution.wait()

        lines, result = run(go())
        assert lines == [f"line {i} é" for i in range(2000)] and result.exit_code == 0

    def test_kill_and_timeout(self, box):
        async def killed():
            execution = await box.exec("sleep", "1000")
            await execution.kill()
            return await execution.wait()

        result = run(killed())
        assert (result.exit_code, result.signal) == (137, "SIGKILL")

        async def overran():
            execution = await box.exec("sleep", "1000", timeout=1)
            return await execution.wait()

        with pytest.raises(boxlite.TimeoutError):
            run(overran())

    def test_env_working_dir_and_a_missing_command(self, box):
        async def go():
            execution = await box.exec("sh", "-c", "echo $A-$(pwd)", env=[("A", "x")], working_dir="/tmp")
            return [line async for line in execution.stdout()]

        assert run(go()) == ["x-/tmp"]
        with pytest.raises(boxlite.ExecError) as missing:
            run(box.exec("no-such-command"))
        assert missing.value.exit_code == 127 and "not found" in str(missing.value)

    def test_concurrent_executions_keep_their_own_output(self, box):
        async def one(i):
            execution = await box.exec("sh", "-c", f"for j in 1 2 3; do echo {i}-$j; done; echo err-{i} >&2; exit {i}")
            out, err = await asyncio.gather(collect(execution.stdout()), collect(execution.stderr()))
            return out, err, (await execution.wait()).exit_code

        async def collect(lines):
            return [line async for line in lines]

        async def go():
            return await asyncio.gather(*(one(i) for i in range(8)))

        assert run(go()) == [([f"{i}-1", f"{i}-2", f"{i}-3"], [f"err-{i}"], i) for i in range(8)]

    def test_a_reader_that_disconnects_mid_stream_leaves_the_box_healthy(self, box):
        async def go():
            execution = await box.exec("sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); done")
            stdout = execution.stdout()
            first = [await stdout.__anext__() for _ in range(3)]
            execution.close()  # drop the output connection while the command floods it
            await execution.kill()
            result = await execution.wait()
            after = await box.exec("echo", "still", "fine")
            return first, result, [line async for line in after.stdout()]

        first, result, after = run(go())
        assert first == ["0", "1", "2"] and result.signal == "SIGKILL" and after == ["still fine"]

    def test_info_and_metrics_of_a_running_box(self, box):
        info = run(box.info())
        assert (info.status, info.memory_mib, info.image) == ("running", 256, BUSYBOX)
        metrics = run(box.metrics())
        assert metrics.memory_usage_bytes > 0 and metrics.cpu_time_ms > 0


def test_bad_requests_are_typed_errors_and_leave_nothing(runtime, home):
    before = {info.id for info in runtime.list()}
    assert runtime.get("no-such-box") is None and runtime.get_info("no-such-box") is None
    with pytest.raises(boxlite.BoxNotFound):
        runtime.remove("no-such-box")
    with pytest.raises(boxlite.InvalidOptions) as e:
        runtime.create(boxlite.BoxOptions(image=BUSYBOX, memory_mib=64))
    assert e.value.field == "memoryMib"
    with pytest.raises(boxlite.ImageNotFound) as e:
        runtime.create(boxlite.BoxOptions(image="oci:/nonexistent/layout:latest"))
    assert e.value.status == 404
    assert {info.id for info in runtime.list()} == before


def test_the_upstream_examples_native_api_shapes(runtime, home):
    """As the upstream examples call it: awaited or not, exec(cmd, [args], [(k, v)]), info().state,
    a plain box that survives stop and restarts at its next exec, async with a Box."""
    async def go():
        box = await runtime.create(boxlite.BoxOptions(image=BUSYBOX, memory_mib=256, env=[("USER", "alice")]))
        execution = await box.exec("sh", ["-c", "echo $USER $CUSTOM; echo err >&2"], [("CUSTOM", "value")])
        out = [line async for line in execution.stdout()]
        err = [line async for line in execution.stderr()]
        code = (await execution.wait()).exit_code
        assert (out, err, code, box.info().state) == (["alice value"], ["err"], 0, "running")
        await box.shutdown()
        assert (await runtime.get_info(box.id)).state == "stopped"
        again = runtime.get(box.id)
        execution = await again.exec("echo", ["restarted"])
        assert [line async for line in execution.stdout()] == ["restarted"]
        assert box.id in {info.id for info in await runtime.list_info()}
        async with again:
            pass
        assert runtime.get_info(box.id).state == "stopped"
        await runtime.remove(box.id)
        return await runtime.get(box.id)

    assert run(go()) is None


def test_simplebox_with_an_offline_image_is_removed_on_exit(runtime, home):
    async def go():
        async with boxlite.SimpleBox(image=BUSYBOX, runtime=runtime) as simple:
            box_id = simple.id
            result = await simple.exec("sh", "-c", "echo out; echo err >&2; exit 2")
            missing = await simple.exec("no-such-command")
        return box_id, result, missing

    box_id, result, missing = run(go())
    assert (result.exit_code, result.stdout, result.stderr) == (2, "out\n", "err\n")
    assert (missing.exit_code, missing.stdout) == (127, "") and "not found" in missing.stderr
    assert box_id not in {info.id for info in runtime.list()}


EXAMPLES = {
    "simplebox_example.py": ["Hello from BoxLite!", "stderr: to stderr", "exit code: 3", "no-such-command cannot run (exit code 127)",
                             "state is kept between commands", "totals per region: {", "hello, world from /tmp", "per-command env wins"],
    "codebox_example.py": ["285", "words: 6", "mean 22.40", "ExecError (exit code 1): ", "ValueError: a failing program is an ExecError"],
    "lifecycle_example.py": ["after stop: stopped", "['written before the stop'] (exit code 0)", "lines now: 2", "boxes with that id left: 0"],
    "list_boxes_example.py": ["list-demo-web", "running: ['list-demo-web']", "configured: ['list-demo-worker']", "0 of them left"],
    "cross_process_example.py": ["[child reader] read: ['hello from the parent process']", "[child restarter] status before: stopped",
                                 "restarted by another process", "[child restarter] status after: running", "parent removed the box"],
    "native_example.py": ["read from the host through a read-only volume", "APP_MODE=demo", "Output: tick 4", "Exit code: 0"],
    "computerbox_example.py": ["screen: 1024x768", "the terminal saved: 'Hello, world!\\n'"],
    "browserbox_example.py": ["Connect Puppeteer to: http://127.0.0.1:", "pages open in the box: ['Made in a box'", "WebDriver BiDi endpoint: ws://127.0.0.1:"],
}

# Those with the reference's image names (CodeBox's default image is python:slim too).
NEED_MIRROR = {name for name in EXAMPLES if name not in ("computerbox_example.py", "browserbox_example.py")}


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_example_runs_unchanged(example, runtime, home, mirror):
    if mirror is not None and example in NEED_MIRROR:
        pytest.skip(mirror)
    before = {info.id for info in runtime.list()}
    done = subprocess.run([sys.executable, os.path.join(CLIENT, "examples", example)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "BOXLITE_HOME": home, "PYTHONPATH": os.path.join(CLIENT, "src")})
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr}"
    for expected in EXAMPLES[example]:
        assert expected in done.stdout, f"{example}: {expected!r} not in:\n{done.stdout}"
    assert {info.id for info in runtime.list()} == before, "the example left boxes behind"


def test_interactivebox_example_runs_a_shell_on_a_tty(runtime, home, mirror):
    if mirror is not None:
        pytest.skip(mirror)
    done = subprocess.run([sys.executable, os.path.join(CLIENT, "examples", "interactivebox_example.py")],
                          input="echo hello from the $((6*7)) shell; tty; exit 5\n", capture_output=True, text=True, timeout=600,
                          env={**os.environ, "BOXLITE_HOME": home, "PYTHONPATH": os.path.join(CLIENT, "src")})
    assert done.returncode == 0, done.stderr
    assert "hello from the 42 shell" in done.stdout and "/dev/pts/" in done.stdout
    assert "shell exited with code 5" in done.stdout

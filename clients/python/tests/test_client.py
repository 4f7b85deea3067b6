"""The client against the in-process fake server (tests/fake_server.py): the reference API over REST v1."""
import builtins
import datetime
import os
import subprocess
import sys
import textwrap
import time

import pytest

import boxlite
import fake_server
from conftest import run

SRC = os.path.join(os.path.dirname(__file__), "..", "src")


def test_create_sends_the_reference_options_as_the_ts_api_camel_case(fake):
    runtime, state = fake
    box = runtime.create(boxlite.BoxOptions(
        image="alpine:latest", cpus=2, memory_mib=1024, disk_size_gb=10, working_dir="/srv", auto_remove=False,
        env=[("A", "1"), ("B", "2")], volumes=[("/host/data", "/mnt/data", "ro")], ports=[(8080, 80, "tcp")],
    ))
    assert box.id.startswith("01FAKE")
    method, path, body = state.requests[-1]
    assert (method, path) == ("POST", "/v1/boxes")
    assert body == {"options": {
        "image": "alpine:latest", "cpus": 2, "memoryMib": 1024, "diskSizeGb": 10, "workingDir": "/srv", "autoRemove": False,
        "env": [["A", "1"], ["B", "2"]], "volumes": [["/host/data", "/mnt/data", "ro"]], "ports": [[8080, 80, "tcp"]],
    }}
    assert "kind" not in body


def test_list_get_and_info_records_in_snake_case(fake):
    runtime, _ = fake
    created = runtime.create(boxlite.BoxOptions(name="web", memory_mib=256))
    [info] = runtime.list()
    # runtime.create's auto_remove defaults to False (stop keeps the box, as the upstream examples expect).
    assert (info.id, info.name, info.status, info.memory_mib, info.auto_remove) == (created.id, "web", "configured", 256, False)
    assert info.created_at == datetime.datetime(2026, 11, 30, 12, tzinfo=datetime.timezone.utc)
    assert runtime.get("web").id == created.id
    assert run(runtime.get(created.id).info()) == info


def test_server_errors_become_the_classes_of_their_tags(fake):
    runtime, _ = fake
    with pytest.raises(boxlite.BoxNotFound) as missing:
        runtime.remove("nope")
    assert (missing.value.tag, missing.value.status, missing.value.id_or_name) == ("BoxNotFound", 404, "nope")
    with pytest.raises(boxlite.InvalidOptions) as invalid:
        runtime.create(boxlite.BoxOptions(memory_mib=64))
    assert invalid.value.field == "memoryMib"
    assert "memoryMib" in str(invalid.value)
    assert isinstance(invalid.value, boxlite.BoxliteError)
    # A tag the client does not know is still a BoxliteError carrying the tag and fields.
    unknown = boxlite.errors.from_json({"_tag": "FutureError", "message": "m", "someField": 1}, 500)
    assert type(unknown) is boxlite.BoxliteError and unknown.tag == "FutureError" and unknown.some_field == 1


def test_a_running_box_is_removed_only_with_force(fake):
    runtime, state = fake
    box = runtime.create(boxlite.BoxOptions())
    run(box.start())
    with pytest.raises(boxlite.BoxStateError):
        run(box.remove())
    run(box.remove(force=True))
    assert state.boxes == {}


def test_removing_a_box_its_stop_removed_is_a_no_op_but_the_runtime_says_box_not_found(fake):
    runtime, state = fake
    box = runtime.create(boxlite.BoxOptions(auto_remove=True))  # stop removes it

    async def stop_then_remove():
        await box.start()
        await box.stop()
        await box.remove()

    run(stop_then_remove())
    assert state.boxes == {}
    with pytest.raises(boxlite.BoxNotFound):
        runtime.remove(box.id)


def test_stdout_is_streamed_line_by_line_across_chunks_and_utf8(fake):
    runtime, _ = fake
    box = runtime.create(boxlite.BoxOptions())

    async def lines(*argv):
        execution = await box.exec(*argv)
        out = [line async for line in execution.stdout()]
        return out, await execution.wait()

    out, result = run(lines("lines", "5"))
    assert out == [f"line {i}" for i in range(5)] and result.exit_code == 0
    assert run(lines("split"))[0] == ["hello", "world"]
    assert run(lines("utf8"))[0] == ["héllo"]


def test_exec_sends_args_env_workdir_user_timeout(fake):
    runtime, state = fake
    box = runtime.create(boxlite.BoxOptions())

    async def go():
        execution = await box.exec("echo", ["a", "b"], env={"K": "v"}, working_dir="/tmp", user="nobody", timeout=2.5)
        return await execution.wait()

    assert run(go()).exit_code == 0
    method, path, body = [r for r in state.requests if r[1].endswith("/executions")][-1]
    assert body == {"command": "echo", "args": ["a", "b"], "env": {"K": "v"}, "workingDir": "/tmp", "user": "nobody", "timeoutMs": 2500}


def test_stderr_and_exit_code(fake):
    runtime, _ = fake
    box = runtime.create(boxlite.BoxOptions())

    async def go():
        execution = await box.exec("fail")
        errors = [line async for line in execution.stderr()]
        return errors, await execution.wait()

    errors, result = run(go())
    assert errors == ["bad"] and result.exit_code == 3


def test_stdin_write_and_close(fake):
    runtime, _ = fake
    box = runtime.create(boxlite.BoxOptions())

    async def go():
        execution = await box.exec("cat")
        stdin = execution.stdin()
        await stdin.write(b"one\n")
        await stdin.write("two\n")
        await stdin.close()
        return [line async for line in execution.stdout()], await execution.wait()

    lines, result = run(go())
    assert lines == ["one", "two"] and result.exit_code == 0


def test_kill_sends_the_signal_by_name(fake):
    runtime, state = fake
    box = runtime.create(boxlite.BoxOptions())

    async def go(*signal):
        execution = await box.exec("sleep")
        await execution.kill(*signal)
        return await execution.wait()

    result = run(go())
    assert (result.exit_code, result.signal) == (137, "SIGKILL")
    assert run(go(15)).signal == "SIGTERM"
    assert state.requests[-2][2] == {"signal": "SIGTERM"}


def test_a_timed_out_command_is_a_timeout_error(fake):
    runtime, _ = fake
    box = runtime.create(boxlite.BoxOptions())

    async def go():
        execution = await box.exec("slow", timeout=0.2)
        return await execution.wait()

    with pytest.raises(boxlite.TimeoutError) as e:
        run(go())
    assert isinstance(e.value, builtins.TimeoutError) and isinstance(e.value, boxlite.BoxliteError)
    assert e.value.timeout_ms == 200


def test_simplebox_collects_output_and_removes_its_box(fake):
    _, state = fake

    async def go():
        async with boxlite.SimpleBox(image="alpine:latest", memory_mib=256) as box:
            assert state.boxes[box.id]["status"] == "running"
            return await box.exec("echo", "Hello"), await box.exec("fail")

    hello, failed = run(go())
    assert (hello.exit_code, hello.stdout, hello.stderr) == (0, "Hello\n", "")
    assert (failed.exit_code, failed.stderr) == (3, "bad\n")
    create = next(body for method, path, body in state.requests if path == "/v1/boxes")
    assert create == {"kind": "simple", "options": {"image": "alpine:latest", "memoryMib": 256}}
    assert state.boxes == {}


def test_simplebox_a_command_that_cannot_run_is_exit_code_127_but_box_exec_raises(fake):
    runtime, _ = fake

    async def go():
        async with boxlite.SimpleBox() as box:
            missing = await box.exec("not-installed")
        with pytest.raises(boxlite.ExecError) as raised:
            await runtime.create(boxlite.BoxOptions()).exec("not-installed")
        return missing, raised.value

    missing, raised = run(go())
    assert (missing.exit_code, missing.stdout, missing.stderr) == (127, "", "cannot run not-installed: not found in PATH\n")
    assert raised.exit_code == 127


def test_simplebox_removes_its_box_when_the_body_raises(fake):
    _, state = fake

    async def go():
        async with boxlite.SimpleBox():
            raise ValueError("user code failed")

    with pytest.raises(ValueError):
        run(go())
    assert state.boxes == {}


def test_codebox_runs_code_and_installs_packages(fake):
    _, state = fake

    async def go():
        async with boxlite.CodeBox(package_index="http://10.0.2.2:1/simple") as codebox:
            return await codebox.run("print(1)"), await codebox.install_package("requests")

    ran, installed = run(go())
    assert ran == "ran 8 chars\n" and installed == "installed requests\n"
    create = next(body for method, path, body in state.requests if path == "/v1/boxes")
    assert create == {"kind": "code", "options": {"packageIndex": "http://10.0.2.2:1/simple"}}


def test_codebox_failure_is_an_exec_error_with_its_exit_code(fake):
    async def go():
        async with boxlite.CodeBox() as codebox:
            await codebox.run("raise ValueError('boom')")

    with pytest.raises(boxlite.ExecError) as e:
        run(go())
    assert e.value.exit_code == 1 and "boom" in e.value.stderr


def test_browserbox_endpoint_and_computerbox_actions(fake):
    _, state = fake

    async def go():
        async with boxlite.BrowserBox(browser="firefox") as browser:
            endpoint = browser.endpoint()
        async with boxlite.ComputerBox(width=800, height=600) as computer:
            size = await computer.get_screen_size()
            png = await computer.screenshot()
            await computer.left_click()
            await computer.type_text("Hello, world!")
            position = await computer.cursor_position()
        return endpoint, size, png, position

    endpoint, size, png, position = run(go())
    assert endpoint.startswith("ws://127.0.0.1:9222/") and size == (1024, 768) and position == (10, 20)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert ("POST", [r for r in state.requests if r[1].endswith("/actions/type")][0][2]) == ("POST", {"args": ["Hello, world!"]})
    kinds = [body["kind"] for method, path, body in state.requests if path == "/v1/boxes"]
    assert kinds == ["browser", "computer"]
    assert state.boxes == {}


def test_a_method_before_start_is_a_box_state_error():
    with pytest.raises(boxlite.BoxStateError):
        boxlite.BrowserBox().endpoint()


def test_metrics(fake):
    runtime, _ = fake
    box = runtime.create(boxlite.BoxOptions())
    metrics = run(box.metrics())
    assert (metrics.cpu_time_ms, metrics.memory_usage_bytes, metrics.network_bytes_sent, metrics.network_bytes_received) == (12, 1 << 20, 1, 2)
    assert runtime.metrics().boxes_created == 1


def test_tcp_with_a_bearer_token_from_boxlite_url(monkeypatch, tmp_path):
    server, state, port = fake_server.serve_tcp("s3cret")
    try:
        monkeypatch.setenv("BOXLITE_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("BOXLITE_TOKEN", "wrong")
        with pytest.raises(boxlite.Unauthorized):
            boxlite.Boxlite().list()
        monkeypatch.delenv("BOXLITE_TOKEN")
        (tmp_path / "token").write_text("s3cret\n")
        monkeypatch.setenv("BOXLITE_TOKEN_FILE", str(tmp_path / "token"))
        runtime = boxlite.Boxlite()
        assert runtime.url == f"http://127.0.0.1:{port}"
        assert runtime.list() == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_bad_boxlite_url_names_the_field(monkeypatch):
    monkeypatch.setenv("BOXLITE_URL", "ftp://example")
    with pytest.raises(boxlite.InvalidOptions) as e:
        boxlite.Boxlite()
    assert e.value.field == "url"


def fake_bin(home, body):
    path = os.path.join(home, "fake-boxlite")
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\n{body}")
    os.chmod(path, 0o755)
    return path


def test_starts_a_server_on_demand_and_stops_it_on_close(home, monkeypatch):
    monkeypatch.delenv("BOXLITE_URL", raising=False)
    server_script = os.path.join(os.path.dirname(__file__), "fake_server.py")
    monkeypatch.setenv("BOXLITE_BIN", fake_bin(home, f"import runpy, sys\nsys.argv[0] = {server_script!r}\nrunpy.run_path({server_script!r}, run_name='__main__')\n"))
    data = os.path.join(home, "data")
    runtime = boxlite.Boxlite(boxlite.Options(home_dir=data))
    pid = int(open(os.path.join(data, "fake-server.pid")).read())
    assert runtime.url == f"unix://{data}/boxlite.sock"
    assert runtime.list() == []
    # A second runtime of the home uses the live server and starts none.
    second = boxlite.Boxlite(boxlite.Options(home_dir=data))
    assert second._server is None
    second.close()
    os.kill(pid, 0)
    runtime.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_server_that_fails_to_start_is_reported_with_its_output(home, monkeypatch):
    monkeypatch.delenv("BOXLITE_URL", raising=False)
    monkeypatch.setenv("BOXLITE_BIN", fake_bin(home, "import sys\nprint('cannot open the runtime: disk on fire', file=sys.stderr)\nsys.exit(2)\n"))
    with pytest.raises(boxlite.ServerUnavailable) as e:
        boxlite.Boxlite(boxlite.Options(home_dir=os.path.join(home, "data")))
    assert "disk on fire" in str(e.value) and "code 2" in str(e.value)


def test_no_server_to_start_says_what_to_set(home, monkeypatch):
    monkeypatch.delenv("BOXLITE_URL", raising=False)
    monkeypatch.delenv("BOXLITE_BIN", raising=False)
    monkeypatch.setenv("PATH", home)
    monkeypatch.setattr(boxlite._server, "__file__", "/nonexistent/a/b/c/d/_server.py")
    with pytest.raises(boxlite.ServerUnavailable) as e:
        boxlite.Boxlite(boxlite.Options(home_dir=os.path.join(home, "data")))
    assert "BOXLITE_URL" in str(e.value) and "BOXLITE_BIN" in str(e.value)


def test_interactivebox_wires_stdin_and_stdout_to_a_tty_exec(fake, home):
    _, state = fake
    program = textwrap.dedent("""
        import asyncio, boxlite
        async def main():
            async with boxlite.InteractiveBox(image="alpine:latest") as itbox:
                code = await itbox.wait()
            print("exit", code)
        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", program], input=b"hello from stdin\n", capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": SRC, "BOXLITE_HOME": home})
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == "hello from stdin\nexit 0\n"
    [execution] = [body for method, path, body in state.requests if path.endswith("/executions")]
    assert execution == {"command": "sh", "args": [], "tty": {"rows": 24, "cols": 80}}


def test_interactivebox_on_a_terminal_uses_raw_mode_and_its_size_and_restores_it(fake, home):
    import fcntl
    import pty
    import struct
    import termios

    _, state = fake
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    program = "import asyncio, boxlite\nasync def main():\n    async with boxlite.InteractiveBox() as b:\n        print('exit', await b.wait())\nasyncio.run(main())\n"
    child = subprocess.Popen([sys.executable, "-c", program], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": SRC, "BOXLITE_HOME": home})
    try:
        deadline = time.monotonic() + 30
        while not any(path.endswith("/executions") for _, path, _ in state.requests):
            assert time.monotonic() < deadline and child.poll() is None, child.stderr.read()
            time.sleep(0.05)
        time.sleep(0.5)  # raw mode is set right after the exec starts
        assert not termios.tcgetattr(slave)[3] & termios.ICANON
        os.write(master, b"typed\x04")  # raw: no line editing, Ctrl-D is a byte for the box's shell
        assert child.wait(30) == 0, child.stderr.read()
        output = b""
        while not output.endswith(b"exit 0\r\n"):
            output += os.read(master, 1024)
        assert output == b"typed\x04exit 0\r\n"
        assert termios.tcgetattr(slave)[3] & termios.ICANON  # restored
        [execution] = [body for _, path, body in state.requests if path.endswith("/executions")]
        assert execution["tty"] == {"rows": 30, "cols": 100}
    finally:
        child.kill()
        os.close(master)
        os.close(slave)


def test_default_is_one_runtime_of_boxlite_home_until_closed(fake, home):
    runtime = boxlite.Boxlite.default()
    assert runtime is boxlite.Boxlite.default()
    assert runtime.url == f"unix://{home}/boxlite.sock"
    runtime.close()
    assert boxlite.Boxlite.default() is not runtime


# The upstream examples' API shapes (older and newer versions of the reference SDK), each as they call it.

def test_runtime_calls_work_both_synchronously_and_awaited(fake):
    runtime, state = fake

    async def go():
        box = await runtime.create(boxlite.BoxOptions(name="a", detach=True, auto_remove=False))
        same = runtime.create(boxlite.BoxOptions(name="b"))
        info = await runtime.get_info(box.id)
        assert (info.state, info.status, info.pid, info.transport) == ("configured", "configured", None, None)
        assert runtime.get_info("a").id == box.id and (await runtime.get("a")).id == box.id
        assert [i.id for i in await runtime.list_info()] == [i.id for i in runtime.list_info()] == [box.id, same.id]
        # A missing box is None, awaited or not.
        assert runtime.get("nope") is None and runtime.get_info("nope") is None
        assert await runtime.get("nope") is None and await runtime.get_info("nope") is None
        await runtime.remove(box.id)
        runtime.remove(same.id)
        return box

    box = run(go())
    assert state.boxes == {}
    body = [b for m, p, b in state.requests if p == "/v1/boxes" and m == "POST"][0]
    assert body["options"] == {"name": "a", "detach": True, "autoRemove": False}


def test_box_info_is_synchronous_and_awaitable_and_shutdown_stops(fake):
    runtime, state = fake
    box = runtime.create(boxlite.BoxOptions(auto_remove=False))
    assert box.info().state == "configured"

    async def go():
        async with box:
            await box.start()
            assert (await box.info()).status == "running"
        assert box.info().status == "stopped"  # leaving `async with` stops it
        await box.start()
        await box.shutdown()
        return box.info().status

    assert run(go()) == "stopped"


def test_exec_native_positional_form_args_env(fake):
    runtime, state = fake
    box = runtime.create(boxlite.BoxOptions())

    async def go():
        for argv in (("env", None, [("CUSTOM", "value")]), ("pwd", None, None), ("echo", ["x y"])):
            await (await box.exec(*argv)).wait()

    run(go())
    bodies = [b for m, p, b in state.requests if p.endswith("/executions")]
    assert bodies == [{"command": "env", "args": [], "env": [["CUSTOM", "value"]]}, {"command": "pwd", "args": []},
                      {"command": "echo", "args": ["x y"]}]


def test_older_option_forms(fake):
    runtime, state = fake
    runtime.create(boxlite.BoxOptions(volumes=[("/h", "/g", False), ("/r", "/o", True), ("/a", "/b")], ports=[(8080, 80)]))
    body = state.requests[-1][2]
    assert body["options"] == {"volumes": [["/h", "/g", "rw"], ["/r", "/o", "ro"], ["/a", "/b"]], "ports": [[8080, 80]], "autoRemove": False}

    async def go():
        async with boxlite.ComputerBox(cpu=2, memory=2048):
            pass
        async with boxlite.BrowserBox(boxlite.BrowserBoxOptions(browser="webkit", memory=1024, cpu=2)) as browser:
            return browser.endpoint()

    run(go())
    computer, browser = [b for m, p, b in state.requests if p == "/v1/boxes" and m == "POST"][1:]
    assert computer["options"] == {"cpus": 2, "memoryMib": 2048}
    assert browser["options"] == {"cpus": 2, "memoryMib": 1024, "browser": "webkit"}


def test_screenshot_is_png_bytes_and_the_older_dict_and_type_is_type_text(fake):
    _, state = fake

    async def go():
        async with boxlite.ComputerBox() as computer:
            shot = await computer.screenshot()
            await computer.type("hi")
            return shot

    shot = run(go())
    assert shot.startswith(b"\x89PNG") and (shot["width"], shot["height"], shot["format"]) == (1024, 768, "png")
    assert fake_server.base64.b64decode(shot["data"]) == bytes(shot) and shot[:4] == b"\x89PNG"
    assert [b for m, p, b in state.requests if p.endswith("/actions/type")] == [{"args": ["hi"]}]


def test_metrics_under_the_reference_names(fake):
    runtime, _ = fake
    box = runtime.create(boxlite.BoxOptions())
    metrics = run(box.metrics())
    assert (metrics.memory_bytes, metrics.commands_executed_total, metrics.cpu_percent, metrics.network_tcp_errors) == (1 << 20, None, None, None)
    rm = runtime.metrics()
    assert (rm.boxes_created_total, rm.num_running_boxes, rm.total_commands_executed, rm.boxes_failed_total) == (1, 0, 0, None)

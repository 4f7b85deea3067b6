"""Box handles and executions over the server's REST API (async; each HTTP call runs in its own thread)."""
from __future__ import annotations

import asyncio
import base64
import codecs
import http.client
import json
import signal as signals
import socket
import threading
from typing import Any, AsyncIterator, Callable, Mapping, Sequence

from . import errors
from ._http import Endpoint, quote
from ._types import BoxInfo, BoxMetrics, EnvInput, ExecResult, Ready, env_json


def _settle(future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def in_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Runs a blocking call on a thread of its own: not the default executor, whose few workers
    long-polls (`wait`) and live output streams would use up."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def target() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as e:  # handed to the awaiting coroutine
            result, error = None, e
        try:
            loop.call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:  # the loop closed meanwhile: nobody awaits this any more
            pass

    threading.Thread(target=target, daemon=True).start()
    return future


class Box(Ready):
    """Handle to a running or stopped box of a runtime (`runtime.create`, `runtime.get`; awaitable
    as itself, for `await runtime.create(...)`). `async with` it: stopped when the block ends."""

    def __init__(self, endpoint: Endpoint, info: BoxInfo) -> None:
        self._endpoint = endpoint
        self.id: str = info.id
        self.name: str | None = info.name
        self._path = f"/v1/boxes/{quote(self.id)}"

    def __repr__(self) -> str:
        return f"Box(id={self.id!r}, name={self.name!r})"

    def _call(self, method: str, path: str = "", body: Any = None) -> asyncio.Future[Any]:
        return in_thread(self._endpoint.request, method, self._path + path, body)

    async def exec(
        self,
        command: str,
        *args: str | Sequence[str] | EnvInput | None,
        env: EnvInput | None = None,
        working_dir: str | None = None,
        user: str | None = None,
        tty: bool | tuple[int, int] = False,
        timeout: float | None = None,
    ) -> Execution:
        """Starts `command` with `args` (no shell); boots a stopped box first. `box.exec("ls", "-la")`,
        or the native form `box.exec("ls", ["-la"])` / `box.exec("env", None, [("K", "v")])` (args,
        env, tty positionally). `timeout` (seconds) kills it and makes `wait()` raise TimeoutError;
        `tty=True` (24x80) or `(rows, cols)` runs it on a terminal."""
        if args and (args[0] is None or isinstance(args[0], (list, tuple))):
            if len(args) > 3:
                raise errors.InvalidOptions("args", "the native form is exec(command, args, env, tty)", field="args")
            argv = list(args[0] or [])
            env = args[1] if len(args) > 1 and args[1] is not None else env  # type: ignore[assignment]
            tty = args[2] if len(args) > 2 else tty  # type: ignore[assignment]
        else:
            argv = [str(a) for a in args]
        body: dict[str, Any] = {"command": command, "args": argv}
        if env is not None:
            body["env"] = env_json(env)
        if working_dir is not None:
            body["workingDir"] = working_dir
        if user is not None:
            body["user"] = user
        if tty:
            body["tty"] = {"rows": tty[0], "cols": tty[1]} if isinstance(tty, tuple) else True
        if timeout is not None:
            body["timeoutMs"] = max(1, round(timeout * 1000))
        started = await self._call("POST", "/executions", body)
        return Execution(self._endpoint, f"{self._path}/executions/{quote(started['id'])}", started["id"])

    async def start(self) -> None:
        """Boots the box (a no-op when it runs); `exec` does it by itself."""
        await self._call("POST", "/start")

    async def stop(self) -> None:
        """Stops the box gracefully (an auto_remove box is then removed)."""
        await self._call("POST", "/stop")

    shutdown = stop  # the reference's older name

    async def __aenter__(self) -> Box:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def remove(self, force: bool = False) -> None:
        """Deletes the box and its data; a running box needs `force=True` (else BoxStateError). A box
        already gone (an auto_remove box after `stop()`, as in the reference's stop-then-remove) is fine."""
        try:
            await in_thread(self._endpoint.request, "DELETE", self._path + ("?force=true" if force else ""))
        except errors.BoxNotFound:
            pass

    def info(self) -> BoxInfo:
        """Its record as it is now; synchronous as in the reference, and awaitable (`await box.info()`)."""
        return BoxInfo(self._endpoint.request("GET", self._path))

    async def metrics(self) -> BoxMetrics:
        return BoxMetrics(await self._call("GET", "/metrics"))

    async def action(self, method: str, *args: Any) -> Any:
        """A purpose-built box's method on the server (`run` of a CodeBox, `screenshot` of a ComputerBox, ...)."""
        answer = await self._call("POST", f"/actions/{quote(method)}", {"args": list(args)})
        return answer.get("result") if isinstance(answer, dict) else None


class _Output:
    """One execution's NDJSON output read by a thread into two queues of byte chunks (None: the end)."""

    def __init__(self, endpoint: Endpoint, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.queues: dict[str, asyncio.Queue[bytes | BaseException | None]] = {"stdout": asyncio.Queue(), "stderr": asyncio.Queue()}
        self.exit: asyncio.Future[dict[str, Any]] = loop.create_future()
        # Its error also reaches the streams' readers or wait(): not an unretrieved exception.
        self.exit.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._conn: http.client.HTTPConnection | None = None
        self.closed = False
        self._loop = loop
        threading.Thread(target=self._read, args=(endpoint, path), daemon=True).start()

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed: nobody reads any more
            self.closed = True

    def _finish(self, error: BaseException | None, exit: dict[str, Any] | None = None) -> None:
        for queue in self.queues.values():
            self._post(queue.put_nowait, error)
        self._post(_settle, self.exit, exit, error)

    def _read(self, endpoint: Endpoint, path: str) -> None:
        try:
            self._conn, response = endpoint.open("GET", path)
            for line in response:
                if self.closed:
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                if "stream" in event:
                    self._post(self.queues[event["stream"]].put_nowait, base64.b64decode(event["data"]))
                elif "exit" in event:
                    return self._finish(None, event["exit"])
                elif "error" in event:
                    return self._finish(errors.from_json(event["error"]))
            # Cut by close(): the stream just ends; otherwise the server went away mid-stream.
            self._finish(None if self.closed else errors.ExecError("the execution's output ended before its exit status (the server went away?)"))
        except ValueError as e:
            self._finish(errors.ParseError(f"unreadable output line from the server: {e}"))
        except errors.BoxliteError as e:
            self._finish(e)
        except (OSError, http.client.HTTPException) as e:
            self._finish(None if self.closed else errors.ServerUnavailable(f"reading an execution's output: {e}"))
        finally:
            if self._conn is not None:
                self._conn.close()

    def close(self) -> None:
        """Stops reading (the server keeps what is unread for the next reader)."""
        self.closed = True
        sock = getattr(self._conn, "raw_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    async def chunks(self, stream: str) -> AsyncIterator[bytes]:
        queue = self.queues[stream]
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                queue.put_nowait(item)  # every later read sees it too
                raise item
            yield item


class _Lines:
    """`async for line in execution.stdout()`: UTF-8 lines without their line break, as the process writes them."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._ended = False

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while "\n" not in self._buffer:
            if self._ended:
                if self._buffer:
                    line, self._buffer = self._buffer, ""
                    return line
                raise StopAsyncIteration
            try:
                self._buffer += self._decoder.decode(await self._chunks.__anext__())
            except StopAsyncIteration:
                self._ended = True
                self._buffer += self._decoder.decode(b"", final=True)
        line, self._buffer = self._buffer.split("\n", 1)
        return line


class ExecStdout(_Lines):
    """Async iterator over an execution's stdout, line by line."""


class ExecStderr(_Lines):
    """Async iterator over an execution's stderr, line by line."""


class ExecStdin:
    """Writer to an execution's stdin: `await stdin.write(b"...")`, then `await stdin.close()` for EOF."""

    def __init__(self, endpoint: Endpoint, path: str) -> None:
        self._endpoint = endpoint
        self._path = path

    async def write(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        await in_thread(self._endpoint.request, "POST", self._path + "/stdin", None, raw)

    async def close(self) -> None:
        await in_thread(self._endpoint.request, "POST", self._path + "/stdin/close")


class Execution:
    """A running command: stream its output, write its stdin, wait for it, signal it."""

    def __init__(self, endpoint: Endpoint, path: str, id: str) -> None:
        self.id = id
        self._endpoint = endpoint
        self._path = path
        self._output: _Output | None = None
        self._streams: dict[str, _Lines] = {}

    def _reader(self) -> _Output:
        if self._output is None:
            self._output = _Output(self._endpoint, self._path + "/output")
        return self._output

    def stdout(self) -> ExecStdout:
        """stdout line by line (async iterator). Reading starts at the first call; one reader per execution."""
        if "stdout" not in self._streams:
            self._streams["stdout"] = ExecStdout(self._reader().chunks("stdout"))
        return self._streams["stdout"]  # type: ignore[return-value]

    def stderr(self) -> ExecStderr:
        if "stderr" not in self._streams:
            self._streams["stderr"] = ExecStderr(self._reader().chunks("stderr"))
        return self._streams["stderr"]  # type: ignore[return-value]

    def stdin(self) -> ExecStdin:
        return ExecStdin(self._endpoint, self._path)

    def raw_output(self, stream: str = "stdout") -> AsyncIterator[bytes]:
        """The stream's bytes as they come (a terminal's output, binary data) instead of lines."""
        return self._reader().chunks(stream)

    async def wait(self) -> ExecResult:
        """Waits until the command ends: its exit code (and the signal that ended it, if one did).
        A command run with `timeout` that overran raises TimeoutError."""
        answer = await in_thread(self._endpoint.request, "GET", self._path + "/wait")
        if self._output is not None and not self._output.closed:
            # Its output stream is being read: it ends with the same exit status, or with the error.
            await asyncio.shield(self._output.exit)
        return ExecResult(exit_code=answer["exitCode"], signal=answer.get("signal"))

    async def kill(self, signal: int = 9) -> None:
        """Sends `signal` (default 9, SIGKILL) to the command's process group."""
        try:
            name = signals.Signals(signal).name
        except ValueError:
            name = f"SIG{signal}"
        await in_thread(self._endpoint.request, "POST", self._path + "/signal", {"signal": name})

    async def resize(self, rows: int, cols: int) -> None:
        """A tty command's new terminal size."""
        await in_thread(self._endpoint.request, "POST", self._path + "/resize", {"rows": rows, "cols": cols})

    def close(self) -> None:
        """Stops reading output (an unfinished command keeps running; the server keeps what is unread)."""
        if self._output is not None:
            self._output.close()

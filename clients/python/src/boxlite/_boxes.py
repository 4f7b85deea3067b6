"""The purpose-built boxes: `async with` creates the box on the server (of its kind) and boots it;
leaving stops and removes it. Their methods are the server's allow-listed actions of that kind."""
from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from . import errors
from ._box import Box, in_thread
from ._runtime import Boxlite
from ._types import BoxInfo, BoxMetrics, BoxOptions, EnvInput, ExecResult


# The reference's older keyword names for BoxOptions' fields (`ComputerBox(cpu=2, memory=2048)`).
_OLD_NAMES = {"cpu": "cpus", "memory": "memory_mib"}


class SimpleBox:
    """A box with automatic cleanup. Takes BoxOptions' fields as keyword arguments (also `cpu` and
    `memory`, older names of `cpus` and `memory_mib`), and `runtime` (default `Boxlite.default()`)."""

    _kind = "simple"

    def __init__(self, image: str | None = None, *, runtime: Boxlite | None = None, **options: Any) -> None:
        self._runtime = runtime
        options = {_OLD_NAMES.get(key, key): value for key, value in options.items()}
        self._options = BoxOptions(image=image, **options)
        self._extra: dict[str, Any] = {}
        self._box: Box | None = None

    @property
    def box(self) -> Box:
        """The underlying Box (after `start()` / entering `async with`)."""
        if self._box is None:
            raise errors.BoxStateError(f"the {type(self).__name__} is not started: use `async with` or `await start()`")
        return self._box

    @property
    def id(self) -> str:
        return self.box.id

    async def start(self) -> None:
        """Creates and boots the box (entering `async with` does it)."""
        if self._box is not None:
            return
        # In a thread: the default runtime may first start its server, and create may pull the image.
        box = await in_thread(lambda: (self._runtime or Boxlite.default()).create(self._options, kind=self._kind, **self._extra))
        self._box = box
        try:
            await box.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stops and removes the box."""
        box, self._box = self._box, None
        if box is None:
            return
        await box.remove(force=True)

    async def __aenter__(self) -> SimpleBox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def exec(
        self,
        command: str,
        *args: str,
        env: EnvInput | None = None,
        working_dir: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Runs a command to its end: its exit code, stdout and stderr (decoded as UTF-8). A command
        that cannot run (not found: 127, not executable: 126) is such a result too, as from a shell:
        the upstream examples test `result.exit_code`, not an exception."""
        try:
            execution = await self.box.exec(command, *args, env=env, working_dir=working_dir, user=user, timeout=timeout)
        except errors.ExecError as e:
            if getattr(e, "exit_code", None) not in (126, 127):
                raise
            return ExecResult(exit_code=e.exit_code, stderr=f"{e}\n")

        async def collect(stream: str) -> str:
            return b"".join([chunk async for chunk in execution.raw_output(stream)]).decode(errors="replace")

        stdout, stderr, result = await asyncio.gather(collect("stdout"), collect("stderr"), execution.wait())
        return ExecResult(exit_code=result.exit_code, stdout=stdout, stderr=stderr, signal=result.signal)

    async def info(self) -> BoxInfo:
        return await self.box.info()

    async def metrics(self) -> BoxMetrics:
        return await self.box.metrics()


class CodeBox(SimpleBox):
    """Runs Python code in a box (default image: the server's CodeBox image, `python:slim`).
    `package_index`: a PEP 503 index URL for install_package (e.g. a local mirror)."""

    _kind = "code"

    def __init__(self, image: str | None = None, *, package_index: str | None = None, runtime: Boxlite | None = None, **options: Any) -> None:
        super().__init__(image, runtime=runtime, **options)
        if package_index is not None:
            self._extra["packageIndex"] = package_index

    async def run(self, code: str, timeout: float | None = None) -> str:
        """Runs Python code; its output (stdout then stderr). A failing program raises ExecError."""
        return await self.box.action("run", code, *([{"timeoutMs": round(timeout * 1000)}] if timeout else []))

    async def install_package(self, package: str) -> str:
        """pip-installs a package (a requirement, wheel path or URL); pip's output."""
        return await self.box.action("installPackage", package)

    async def install_packages(self, *packages: str) -> str:
        return await self.box.action("installPackages", *packages)


@dataclass
class BrowserBoxOptions:
    """The reference's options object for `BrowserBox(options)`: browser, memory (MiB), cpu, image."""

    browser: str | None = None
    memory: int | None = None
    cpu: int | None = None
    image: str | None = None


class BrowserBox(SimpleBox):
    """A browser in a box (`browser`: "chromium" (default), "firefox" or "webkit"); `endpoint()` is
    what Puppeteer / Playwright connect to (CDP for Chromium). `BrowserBox(BrowserBoxOptions(...))` too."""

    _kind = "browser"

    def __init__(self, image: str | BrowserBoxOptions | None = None, *, browser: str | None = None, runtime: Boxlite | None = None, **options: Any) -> None:
        if isinstance(image, BrowserBoxOptions):
            given = {"cpus": image.cpu, "memory_mib": image.memory}
            options = {**{k: v for k, v in given.items() if v is not None}, **options}
            browser = browser or image.browser
            image = image.image
        super().__init__(image, runtime=runtime, **options)
        if browser is not None:
            self._extra["browser"] = browser
        self._endpoint: str | None = None

    async def start(self) -> None:
        await super().start()
        try:
            self._endpoint = await self.box.action("endpoint")
        except BaseException:
            await self.stop()
            raise

    def endpoint(self) -> str:
        if self._endpoint is None:
            raise errors.BoxStateError("the BrowserBox is not started: use `async with` or `await start()`")
        return self._endpoint


class ComputerBox(SimpleBox):
    """A desktop in a box, driven as a computer-use agent does: screenshots, mouse, keyboard
    (`width`, `height`: the screen, default 1024x768)."""

    _kind = "computer"

    def __init__(self, image: str | None = None, *, width: int | None = None, height: int | None = None, runtime: Boxlite | None = None, **options: Any) -> None:
        super().__init__(image, runtime=runtime, **options)
        self._extra.update({k: v for k, v in (("width", width), ("height", height)) if v is not None})

    async def wait_until_ready(self, timeout: float | None = None) -> None:
        """Waits until the desktop answers (under software emulation it takes ~30-60 s)."""
        await self.box.action("waitUntilReady", *([round(timeout * 1000)] if timeout else []))

    async def screenshot(self) -> Screenshot:
        """The screen as PNG bytes; also readable as the reference's older dict (`shot["data"]`
        base64, `shot["width"]`, `shot["height"]`, `shot["format"]`)."""
        shot = await self.box.action("screenshot")
        if not isinstance(shot, dict):
            shot = {"data": shot}
        png = Screenshot(base64.b64decode(shot["data"]))
        png.fields = {"format": "png", **shot}
        return png

    async def mouse_move(self, x: int, y: int) -> None:
        await self.box.action("mouseMove", x, y)

    async def left_click(self) -> None:
        await self.box.action("leftClick")

    async def right_click(self) -> None:
        await self.box.action("rightClick")

    async def middle_click(self) -> None:
        await self.box.action("middleClick")

    async def double_click(self) -> None:
        await self.box.action("doubleClick")

    async def triple_click(self) -> None:
        await self.box.action("tripleClick")

    async def left_click_drag(self, start_x: int, start_y: int, end_x: int, end_y: int) -> None:
        await self.box.action("leftClickDrag", start_x, start_y, end_x, end_y)

    async def cursor_position(self) -> tuple[int, int]:
        x, y = await self.box.action("cursorPosition")
        return x, y

    async def type_text(self, text: str) -> None:
        """Types text as keystrokes (also `type(text)`, the reference's older name)."""
        await self.box.action("type", text)

    type = type_text

    async def key(self, keys: str) -> None:
        """Presses keys (xdotool names: "Return", "ctrl+a")."""
        await self.box.action("key", keys)

    async def scroll(self, x: int, y: int, direction: str, amount: int = 3) -> None:
        """Scrolls at (x, y): direction "up", "down", "left" or "right"."""
        await self.box.action("scroll", x, y, direction, amount)

    async def get_screen_size(self) -> tuple[int, int]:
        width, height = await self.box.action("getScreenSize")
        return width, height


class Screenshot(bytes):
    """PNG bytes; `shot["width"]` (a str key) reads the screenshot's fields, as the older dict did."""

    fields: dict[str, Any]

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return self.fields[key]
        return super().__getitem__(key)


class InteractiveBox(SimpleBox):
    """A shell in a box on this process's terminal: `await box.wait()` runs `shell` (default "sh") on a
    pseudo-terminal wired to stdin/stdout (raw mode while it runs, when stdin is a terminal; the
    terminal's size followed) and returns its exit code."""

    _kind = "interactive"

    def __init__(self, image: str | None = None, *, shell: str = "sh", runtime: Boxlite | None = None, **options: Any) -> None:
        super().__init__(image, runtime=runtime, **options)
        self._shell = shell

    async def wait(self) -> int:
        loop = asyncio.get_running_loop()
        terminal = os.isatty(sys.stdout.fileno())
        size = os.get_terminal_size(sys.stdout.fileno()) if terminal else None
        rows, cols = (size.lines, size.columns) if size and size.lines and size.columns else (24, 80)
        execution = await self.box.exec(self._shell, tty=(rows, cols))
        stdin = execution.stdin()
        done = threading.Event()

        def pump() -> None:
            # Keystrokes, in order, from a thread (a blocking read works for terminals, pipes and files alike).
            try:
                while not done.is_set():
                    data = os.read(sys.stdin.fileno(), 4096)
                    if not data or done.is_set():
                        break
                    asyncio.run_coroutine_threadsafe(stdin.write(data), loop).result()
                if not done.is_set():
                    asyncio.run_coroutine_threadsafe(stdin.close(), loop).result()
            except (OSError, RuntimeError, errors.BoxliteError):
                pass  # the command ended (or the loop closed) first: nothing more to send

        saved = _raw_mode(sys.stdin.fileno())
        if terminal:
            loop.add_signal_handler(signal.SIGWINCH, lambda: asyncio.ensure_future(_resize(execution)))
        threading.Thread(target=pump, daemon=True).start()
        try:
            async for chunk in execution.raw_output("stdout"):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            return (await execution.wait()).exit_code
        finally:
            done.set()
            if terminal:
                loop.remove_signal_handler(signal.SIGWINCH)
            _restore(sys.stdin.fileno(), saved)


def _raw_mode(fd: int) -> Any:
    if not os.isatty(fd):
        return None
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return saved


def _restore(fd: int, saved: Any) -> None:
    if saved is not None:
        import termios

        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _resize(execution: Any) -> None:
    size = os.get_terminal_size(sys.stdout.fileno())
    try:
        await execution.resize(size.lines, size.columns)
    except errors.BoxliteError:
        pass

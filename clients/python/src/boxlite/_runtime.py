"""The runtime: a connection to the BoxLite server of a home directory (started on demand)."""
from __future__ import annotations

import atexit
import dis
import sys
import threading
from typing import Any

from . import _server
from ._box import Box
from ._http import quote
from ._types import BoxInfo, BoxInfoList, BoxOptions, Done, Options, RuntimeMetrics
from .errors import BoxNotFound


def _awaited() -> bool:
    """Whether the caller's caller awaits the call's result (`await runtime.get(x)`): the reference's
    versions differ, and a missing box must be `None` both for `runtime.get(x) is None` and for
    `await runtime.get(x) is None` (`await None` is a TypeError)."""
    frame = sys._getframe(3)  # _awaited <- _none <- get/get_info <- the caller
    after = [i for i in dis.get_instructions(frame.f_code) if i.offset > frame.f_lasti]
    return bool(after) and after[0].opname == "GET_AWAITABLE"


def _none() -> Any:
    return Done(None) if _awaited() else None


class Boxlite:
    """Creates and manages boxes. `Boxlite.default()` (the default home, or `BOXLITE_URL`), or
    `Boxlite(Options(home_dir=...))`. Its methods are synchronous, as in the reference
    (`box = runtime.create(...)`), and their results may also be awaited, as in its later
    versions (`box = await runtime.create(...)`); a box's own methods are async. `close()` (or `with` / `async
    with`, or the process's exit) stops the server this runtime started, if it started one;
    boxes stay as they are (they belong to the home, not to the server)."""

    _default: Boxlite | None = None
    _default_lock = threading.Lock()

    def __init__(self, options: Options | None = None) -> None:
        self._endpoint, self._server = _server.connect((options or Options()).home_dir)
        if self._server is not None:
            atexit.register(self.close)

    @classmethod
    def default(cls) -> Boxlite:
        """The process's shared runtime of the default home (`$BOXLITE_HOME` or `~/.boxlite`), or of `BOXLITE_URL`."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    @property
    def url(self) -> str:
        """Where its server listens (`unix:///.../boxlite.sock` or `http://...`)."""
        return self._endpoint.url

    def _box(self, info: Any) -> Box:
        return Box(self._endpoint, BoxInfo(info))

    def create(self, box_options: BoxOptions | None = None, *, kind: str | None = None, **extra: Any) -> Box:
        """Creates a box (it boots at its first `exec` or `start`); without `kind`, `auto_remove`
        defaults to False (`stop()` keeps it, as the upstream examples expect). `kind` ("code", "browser", ...)
        picks a purpose-built box's defaults on the server; `extra` are that kind's own options."""
        options = (box_options or BoxOptions()).to_json()
        if kind is None:
            # A box of the native API outlives its stop unless told otherwise: the upstream
            # examples stop a box, then `runtime.get` it and exec to restart it, or remove it.
            options.setdefault("autoRemove", False)
        body: dict[str, Any] = {"options": {**options, **extra}}
        if kind is not None:
            body["kind"] = kind
        return self._box(self._endpoint.request("POST", "/v1/boxes", body))

    def get(self, box_id: str) -> Box | None:
        """Reattaches to an existing box by id or name; None if there is none."""
        try:
            return self._box(self._endpoint.request("GET", f"/v1/boxes/{quote(box_id)}"))
        except BoxNotFound:
            return _none()

    def get_info(self, box_id: str) -> BoxInfo | None:
        """A box's record by id or name; None if there is none."""
        try:
            return BoxInfo(self._endpoint.request("GET", f"/v1/boxes/{quote(box_id)}"))
        except BoxNotFound:
            return _none()

    def list(self) -> list[BoxInfo]:
        """All boxes of the home, running and stopped."""
        return BoxInfoList(BoxInfo(info) for info in self._endpoint.request("GET", "/v1/boxes"))

    list_info = list

    def remove(self, box_id: str, force: bool = False) -> Done:
        """Removes a box; a running one needs `force=True` (else BoxStateError), a missing one is
        BoxNotFound. Done at the call; the result may be awaited (`await runtime.remove(id)`)."""
        self._endpoint.request("DELETE", f"/v1/boxes/{quote(box_id)}" + ("?force=true" if force else ""))
        return Done()

    def metrics(self) -> RuntimeMetrics:
        return RuntimeMetrics(self._endpoint.request("GET", "/v1/metrics"))

    def info(self) -> dict[str, Any]:
        """The server's runtime info (version, driver, capabilities, homeDir)."""
        return self._endpoint.request("GET", "/v1/info")

    def close(self) -> None:
        """Stops the server this runtime started (a no-op otherwise, and when called again)."""
        server, self._server = self._server, None
        if server is not None:
            atexit.unregister(self.close)
            server.stop()
        with Boxlite._default_lock:
            if Boxlite._default is self:
                Boxlite._default = None

    def __enter__(self) -> Boxlite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Boxlite:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

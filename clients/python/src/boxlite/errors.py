"""BoxLite's errors, one class per tag the server sends (`{"error": {"_tag": ..., "message": ..., ...fields}}`).

Every class extends BoxliteError, as every TypeScript error extends BoxliteError; the server's
fields (`field`, `exit_code`, `reference`, ...) become attributes in snake_case.
"""
from __future__ import annotations

import builtins
import re
from typing import Any


def snake(name: str) -> str:
    """`exitCode` -> `exit_code`."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class BoxliteError(Exception):
    """Base exception for all BoxLite errors. `tag` is the server's `_tag`; `fields` its other fields."""

    tag = "BoxliteError"

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        for key, value in fields.items():
            setattr(self, snake(key), value)

    def __str__(self) -> str:
        return self.message or self.tag


class ExecError(BoxliteError):
    """A command could not be run, failed where success was required, or its box went away."""

    tag = "ExecError"


class TimeoutError(BoxliteError, builtins.TimeoutError):
    """An operation (a command with a timeout, the guest becoming ready) took too long.

    Also a builtins.TimeoutError, so `except TimeoutError` written for asyncio catches it too.
    """

    tag = "TimeoutError"


class ParseError(BoxliteError):
    """Output (or a server's answer) could not be parsed into the expected form."""

    tag = "ParseError"


class InvalidOptions(BoxliteError):
    """An option was out of range or of the wrong shape (`field` names it); nothing was started."""

    tag = "InvalidOptions"


class BoxNotFound(BoxliteError):
    tag = "BoxNotFound"


class BoxStateError(BoxliteError):
    """The box is not in a state that allows the operation (e.g. removing a running box without force)."""

    tag = "BoxStateError"


class ImageNotFound(BoxliteError):
    tag = "ImageNotFound"


class ImageError(BoxliteError):
    tag = "ImageError"


class RegistryError(BoxliteError):
    tag = "RegistryError"


class RegistryAuthError(BoxliteError):
    tag = "RegistryAuthError"


class SnapshotNotFound(BoxliteError):
    tag = "SnapshotNotFound"


class SnapshotError(BoxliteError):
    tag = "SnapshotError"


class ExecutionNotFound(BoxliteError):
    tag = "ExecutionNotFound"


class PathNotFound(BoxliteError):
    tag = "PathNotFound"


class CopyError(BoxliteError):
    tag = "CopyError"


class StorageError(BoxliteError):
    tag = "StorageError"


class BootError(BoxliteError):
    tag = "BootError"


class HypervisorUnavailable(BoxliteError):
    tag = "HypervisorUnavailable"


class UnexpectedError(BoxliteError):
    tag = "UnexpectedError"


class BadRequest(BoxliteError):
    """The server could not read the request (malformed JSON, a wrong shape)."""

    tag = "BadRequest"


class Unauthorized(BoxliteError):
    """A TCP server refused the bearer token (BOXLITE_TOKEN / BOXLITE_TOKEN_FILE)."""

    tag = "Unauthorized"


class PayloadTooLarge(BoxliteError):
    tag = "PayloadTooLarge"


class ServerUnavailable(BoxliteError):
    """No BoxLite server answered, or one could not be started."""

    tag = "ServerUnavailable"


_BY_TAG = {cls.tag: cls for cls in list(globals().values()) if isinstance(cls, type) and issubclass(cls, BoxliteError)}


def from_json(error: Any, status: int | None = None) -> BoxliteError:
    """The error a server's `{"_tag", "message", ...}` object stands for; an unknown tag is a plain BoxliteError."""
    if not isinstance(error, dict):
        return ParseError(f"unexpected error body from the server (HTTP {status}): {error!r}")
    fields = {k: v for k, v in error.items() if k not in ("_tag", "message")}
    tag = str(error.get("_tag", "BoxliteError"))
    cls = _BY_TAG.get(tag, BoxliteError)
    exc = cls(str(error.get("message", "")), **fields)
    exc.tag = tag
    exc.status = status
    return exc

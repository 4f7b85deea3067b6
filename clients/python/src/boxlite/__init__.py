"""BoxLite for Python: the reference SDK's async API, served by a BoxLite server.

`import boxlite`, then `async with boxlite.SimpleBox(image="python:slim") as box: ...`. The client
talks to `boxlite serve` (REST API v1) over the home's unix socket, starting it on demand, or to
the server `BOXLITE_URL` names. Standard library only.
"""
from ._box import Box, ExecStderr, ExecStdin, ExecStdout, Execution
from ._boxes import BrowserBox, BrowserBoxOptions, CodeBox, ComputerBox, InteractiveBox, Screenshot, SimpleBox
from ._runtime import Boxlite
from ._types import BoxInfo, BoxMetrics, BoxOptions, ExecResult, Options, RuntimeMetrics
from .errors import (
    BadRequest, BootError, BoxliteError, BoxNotFound, BoxStateError, CopyError, ExecError, ExecutionNotFound,
    HypervisorUnavailable, ImageError, ImageNotFound, InvalidOptions, ParseError, PathNotFound, PayloadTooLarge,
    RegistryAuthError, RegistryError, ServerUnavailable, SnapshotError, SnapshotNotFound, StorageError, TimeoutError,
    Unauthorized, UnexpectedError,
)

__version__ = "0.4.4"

__all__ = [
    "Box", "BoxInfo", "BoxMetrics", "BoxOptions", "Boxlite", "BrowserBox", "BrowserBoxOptions", "CodeBox", "ComputerBox", "ExecResult",
    "ExecStderr", "ExecStdin", "ExecStdout", "Execution", "InteractiveBox", "Options", "RuntimeMetrics", "Screenshot", "SimpleBox",
    "BadRequest", "BootError", "BoxliteError", "BoxNotFound", "BoxStateError", "CopyError", "ExecError",
    "ExecutionNotFound", "HypervisorUnavailable", "ImageError", "ImageNotFound", "InvalidOptions", "ParseError",
    "PathNotFound", "PayloadTooLarge", "RegistryAuthError", "RegistryError", "ServerUnavailable", "SnapshotError",
    "SnapshotNotFound", "StorageError", "TimeoutError", "Unauthorized", "UnexpectedError",
]

"""Options and records: the reference's snake_case Python names over the TypeScript API's camelCase JSON."""
from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any, Generator, Mapping, Sequence, Tuple, Union

from .errors import snake

EnvInput = Union[Mapping[str, str], Sequence[Tuple[str, str]]]


def camel(name: str) -> str:
    """`memory_mib` -> `memoryMib`."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def env_json(env: EnvInput) -> Any:
    """A dict stays a record; the reference's (key, value) pairs become [key, value] arrays (the TS API takes both)."""
    return dict(env) if isinstance(env, Mapping) else [list(pair) for pair in env]


@dataclass
class Options:
    """Runtime options. `home_dir`: where boxes, images and state live (default `$BOXLITE_HOME` or `~/.boxlite`)."""

    home_dir: str | None = None


@dataclass
class BoxOptions:
    """A box's configuration; None leaves a field to the runtime's default (as listed in the reference).

    image: OCI reference (default `python:slim`; a purpose-built box's own image for CodeBox, ...)
    cpus: vCPUs (default 1); memory_mib: 128-65536 (default 512); disk_size_gb: a persistent disk
    (default none: ephemeral); working_dir (default the image's, else /root); env: (key, value)
    pairs or a dict; volumes: (host_path, guest_path, "ro"|"rw"); ports: (host_port, guest_port,
    "tcp"|"udp"); auto_remove: remove the box when it stops (default True for SimpleBox and the purpose-built
    boxes; a box of `runtime.create` keeps False unless set, so `stop()` keeps it as the upstream
    examples expect: stop, `runtime.get`, exec restarts it); detach: outlive the
    process that starts it (the server creates boxes detached unless told `detach=False`). Older forms are taken too: volumes' third item a read-only bool, ports
    as (host_port, guest_port). Beyond the reference,
    the TypeScript API's name, user, network ("nat", "none" or {"mode", "allow", "deny"}) and
    allow_host_loopback.
    """

    image: str | None = None
    cpus: int | None = None
    memory_mib: int | None = None
    disk_size_gb: int | None = None
    working_dir: str | None = None
    env: EnvInput | None = None
    volumes: Sequence[Tuple[str, str, str]] | None = None
    ports: Sequence[Tuple[int, int, str]] | None = None
    auto_remove: bool | None = None
    detach: bool | None = None
    name: str | None = None
    user: str | None = None
    network: str | Mapping[str, Any] | None = None
    allow_host_loopback: bool | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if field.name == "env":
                value = env_json(value)
            elif field.name == "volumes":
                value = [_volume(item) for item in value]
            elif field.name == "ports":
                value = [list(item) for item in value]
            out[camel(field.name)] = value
        return out


def _volume(item: Sequence[Any]) -> list[Any]:
    """(host, guest), (host, guest, "ro"|"rw"), or an older reference's (host, guest, read_only)."""
    if len(item) == 3 and isinstance(item[2], bool):
        return [item[0], item[1], "ro" if item[2] else "rw"]
    return list(item)


class Ready:
    """Also awaitable, as itself: the reference's versions differ on whether runtime calls are
    awaited (`box = runtime.create(...)` vs `box = await runtime.create(...)`); both work."""

    def __await__(self) -> Generator[Any, None, Any]:
        return self
        yield  # a generator: `await` runs it to its return at once


class Done(Ready):
    """A finished call's value for `await` (`await runtime.remove(...)` of a synchronous remove)."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.value
        yield


class Record(Ready):
    """A JSON object of the server as attributes in snake_case (`memoryMib` -> `memory_mib`).
    `aliases` (the reference's other names for a field) and `absent` (fields the server may omit
    or does not measure: None) are per class."""

    aliases: Mapping[str, str] = {}
    absent: Sequence[str] = ()

    def __init__(self, data: Mapping[str, Any]) -> None:
        for name in self.absent:
            setattr(self, name, None)
        for key, value in data.items():
            setattr(self, snake(key), value)
        for alias, name in self.aliases.items():
            setattr(self, alias, getattr(self, name, None))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)


class BoxInfo(Record):
    """A box's record: id, name, status (also as `state`: "configured", "running", "stopped",
    "failed", ...), image, auto_remove, cpus, memory_mib, created_at (datetime), pid (None when it
    does not run), ports, reason, driver, transport, ..."""

    aliases = {"state": "status"}
    absent = ("name", "pid", "reason", "transport", "accelerator", "snapshot")

    id: str
    name: str | None
    status: str
    image: str
    cpus: int
    memory_mib: int
    created_at: datetime.datetime

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        created = getattr(self, "created_at", None)
        if isinstance(created, str):
            # fromisoformat reads a trailing "Z" only from Python 3.11.
            self.created_at = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))


class BoxInfoList(list, Ready):  # type: ignore[type-arg]
    """`runtime.list_info()`: a list, also awaitable (as `Ready`)."""


class BoxMetrics(Record):
    """cpu_time_ms, memory_usage_bytes (also `memory_bytes`), network_bytes_sent / _received. The
    reference's counters this runtime does not keep (commands_executed_total, exec_errors_total,
    bytes_sent_total, ..., cpu_percent, network_tcp_*) are None."""

    cpu_time_ms: int
    memory_usage_bytes: int
    network_bytes_sent: int
    network_bytes_received: int
    aliases = {"memory_bytes": "memory_usage_bytes"}
    absent = ("commands_executed_total", "exec_errors_total", "bytes_sent_total", "bytes_received_total",
              "spawn_duration_ms", "boot_duration_ms", "total_create_duration_ms", "guest_boot_duration_ms",
              "cpu_percent", "network_tcp_connections", "network_tcp_errors")


class RuntimeMetrics(Record):
    """boxes_created, boxes_destroyed, total_exec_calls, active_boxes; under the reference's names
    boxes_created_total, num_running_boxes, total_commands_executed (boxes_failed_total and
    total_exec_errors, not kept here: None)."""

    boxes_created: int
    boxes_destroyed: int
    total_exec_calls: int
    active_boxes: int
    aliases = {"boxes_created_total": "boxes_created", "num_running_boxes": "active_boxes",
               "total_commands_executed": "total_exec_calls"}
    absent = ("boxes_failed_total", "total_exec_errors")


@dataclass
class ExecResult:
    """How a command ended. `stdout`/`stderr` are filled by SimpleBox.exec (which collects them);
    `signal` names the signal that ended it (`"SIGKILL"`), if one did (then exit_code is 128 + n)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    signal: str | None = None

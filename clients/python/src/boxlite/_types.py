"""Options and records: the reference's snake_case Python names over the TypeScript API's camelCase JSON."""
from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Tuple, Union

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
    "tcp"|"udp"); auto_remove: remove the box when it stops (default True). Beyond the reference,
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
            elif field.name in ("volumes", "ports"):
                value = [list(item) for item in value]
            out[camel(field.name)] = value
        return out


class Record:
    """A JSON object of the server as attributes in snake_case (`memoryMib` -> `memory_mib`)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        for key, value in data.items():
            setattr(self, snake(key), value)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)


class BoxInfo(Record):
    """A box's record: id, name, status ("configured", "running", "stopped", "failed", ...), image,
    auto_remove, cpus, memory_mib, created_at (datetime), pid, ports, reason, driver, ..."""

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
        if not hasattr(self, "name"):
            self.name = None


class BoxMetrics(Record):
    cpu_time_ms: int
    memory_usage_bytes: int
    network_bytes_sent: int
    network_bytes_received: int


class RuntimeMetrics(Record):
    boxes_created: int
    boxes_destroyed: int
    total_exec_calls: int
    active_boxes: int


@dataclass
class ExecResult:
    """How a command ended. `stdout`/`stderr` are filled by SimpleBox.exec (which collects them);
    `signal` names the signal that ended it (`"SIGKILL"`), if one did (then exit_code is 128 + n)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    signal: str | None = None

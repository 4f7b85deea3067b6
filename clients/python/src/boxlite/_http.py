"""HTTP/1.1 to a BoxLite server (REST contract v1) with the standard library's http.client.

A unix socket (`unix:///abs/path.sock`) or TCP (`http://127.0.0.1:8100`, bearer token). One
connection per request: a unix or loopback connect costs well under a millisecond, and it keeps
every call independent (thread-safe, a stream never blocks another request). The async API runs
these blocking calls in threads (asyncio.to_thread); http.client decodes the chunked NDJSON.
"""
from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from typing import Any

from . import errors


class _TcpConnection(http.client.HTTPConnection):
    """Keeps its socket as `raw_sock`: http.client drops `sock` once a response will close, and a
    stream reader must still be able to cut its connection (Execution.close)."""

    def connect(self) -> None:
        super().connect()
        self.raw_sock = self.sock


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = self.raw_sock = sock


class Endpoint:
    """Where the server listens: `unix:///abs/path.sock` or `http://host:port`, and the token TCP needs."""

    def __init__(self, url: str, token: str | None = None) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "unix":
            if not parsed.path.startswith("/"):
                raise errors.InvalidOptions(f'invalid BoxLite URL "{url}": a unix socket needs an absolute path (unix:///abs/path.sock)', field="url")
            self.socket_path: str | None = parsed.path
        elif parsed.scheme == "http" and parsed.hostname:
            self.socket_path = None
            self.host = parsed.hostname
            self.port = parsed.port or 80
        else:
            raise errors.InvalidOptions(f'invalid BoxLite URL "{url}": expected unix:///abs/path.sock or http://host:port', field="url")
        self.url = url
        self.token = token

    def connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        if self.socket_path is not None:
            return _UnixConnection(self.socket_path, timeout)
        return _TcpConnection(self.host, self.port, timeout=timeout)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def open(self, method: str, path: str, body: Any = None, raw: bytes | None = None, timeout: float | None = None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Sends a request and returns the open connection and response (2xx only; other statuses raise their error)."""
        extra: dict[str, str] = {}
        payload: bytes | None = raw
        if body is not None:
            payload = json.dumps(body).encode()
            extra["Content-Type"] = "application/json"
        elif raw is not None:
            extra["Content-Type"] = "application/octet-stream"
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=payload, headers=self.headers(extra))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise errors.ServerUnavailable(f"BoxLite server at {self.url}: {method} {path}: {e}") from e
        if response.status >= 300:
            try:
                data = response.read()
            finally:
                conn.close()
            raise _error(response.status, data)
        return conn, response

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None, timeout: float | None = None) -> Any:
        """One request; the decoded JSON answer (None for an empty body, e.g. 204)."""
        conn, response = self.open(method, path, body=body, raw=raw, timeout=timeout)
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise errors.ServerUnavailable(f"BoxLite server at {self.url}: {method} {path}: {e}") from e
        finally:
            conn.close()
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as e:
            raise errors.ParseError(f"{method} {path}: the server's answer is not JSON: {data[:200]!r}") from e


def _error(status: int, data: bytes) -> errors.BoxliteError:
    try:
        body = json.loads(data)
    except ValueError:
        return errors.ParseError(f"HTTP {status} from the server with a non-JSON body: {data[:200]!r}")
    if isinstance(body, dict) and "error" in body:
        return errors.from_json(body["error"], status)
    return errors.from_json(body, status)


def quote(segment: str) -> str:
    """A path segment (box id or name, execution id, image reference) URL-encoded."""
    return urllib.parse.quote(segment, safe="")

"""A fake BoxLite server (REST contract v1) on the standard library's http.server, for unit tests.

Boxes live in memory and "commands" are scripted:
  echo ARGS...      prints ARGS on stdout
  fail              prints "bad" on stderr, exits 3
  cat, sh           copy stdin to stdout until stdin is closed (sh: or a Ctrl-D arrives)
  lines N           prints N numbered lines, one chunk each
  split             prints "hel", "lo\\nwor", "ld" as three chunks (no trailing newline)
  utf8              prints "héllo\\n" cut inside the "é"
  sleep             runs until signalled (exit 128 + n, with the signal's name)
  slow              exits 0 after 10 s unless killed; its timeoutMs makes wait a 504 TimeoutError
Run as a program (`fake_server.py serve --home H`) it serves H/boxlite.sock like `boxlite serve`.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import socketserver
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any

SIGNALS = {s.name: s.value for s in signal.Signals}


class FakeExecution:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.events: list[dict[str, Any]] = []  # stream chunks then {"exit": ...}
        self.cond = threading.Condition()
        self.exit: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.reading = False
        self.stdin_closed = False
        argv = [spec["command"], *spec.get("args", [])]
        threading.Thread(target=self._run, args=(argv,), daemon=True).start()

    def emit(self, stream: str, data: bytes) -> None:
        with self.cond:
            self.events.append({"stream": stream, "data": base64.b64encode(data).decode()})
            self.cond.notify_all()

    def end(self, exit_code: int, sig: str | None = None, error: dict[str, Any] | None = None) -> None:
        with self.cond:
            if self.exit is not None:
                return
            self.exit = {"exitCode": exit_code, **({"signal": sig} if sig else {})}
            self.error = error
            self.cond.notify_all()

    def signal(self, name: str) -> None:
        self.end(128 + SIGNALS[name], name)

    def write_stdin(self, data: bytes) -> None:
        if self.spec["command"] in ("cat", "sh"):
            self.emit("stdout", data)
        if self.spec["command"] == "sh" and b"\x04" in data:  # Ctrl-D on a terminal: the shell exits
            self.end(0)

    def _run(self, argv: list[str]) -> None:
        cmd, args = argv[0], argv[1:]
        if cmd == "echo":
            self.emit("stdout", (" ".join(args) + "\n").encode())
            self.end(0)
        elif cmd == "fail":
            self.emit("stderr", b"bad\n")
            self.end(3)
        elif cmd == "lines":
            for i in range(int(args[0])):
                self.emit("stdout", f"line {i}\n".encode())
            self.end(0)
        elif cmd == "split":
            for part in (b"hel", b"lo\nwor", b"ld"):
                self.emit("stdout", part)
            self.end(0)
        elif cmd == "utf8":
            data = "héllo\n".encode()
            self.emit("stdout", data[:2])
            self.emit("stdout", data[2:])
            self.end(0)
        elif cmd == "slow":
            timeout_ms = self.spec.get("timeoutMs")
            with self.cond:
                self.cond.wait_for(lambda: self.exit is not None, (timeout_ms or 10_000) / 1000)
            if timeout_ms:
                self.end(137, "SIGKILL", {"_tag": "TimeoutError", "message": f"command timed out after {timeout_ms} ms", "timeoutMs": timeout_ms})
            self.end(0)
        elif cmd in ("sleep", "cat", "sh"):
            pass  # until signalled / stdin closed
        else:
            self.emit("stderr", f"{cmd}: not found\n".encode())
            self.end(127)


class State:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.boxes: dict[str, dict[str, Any]] = {}
        self.executions: dict[str, FakeExecution] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.ids = itertools.count(1)
        self.lock = threading.Lock()


def error(tag: str, message: str, **fields: Any) -> dict[str, Any]:
    return {"error": {"_tag": tag, "message": message, **fields}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def send_json(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        self.route("GET")

    def do_POST(self) -> None:
        self.route("POST")

    def do_DELETE(self) -> None:
        self.route("DELETE")

    def route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[2:]]  # after /v1
        query = urllib.parse.parse_qs(url.query)
        raw = self.body()
        st = self.state
        if st.token is not None and self.headers.get("Authorization") != f"Bearer {st.token}":
            return self.send_json(401, error("Unauthorized", "a valid bearer token is required"))
        body: Any = None
        if raw and self.headers.get("Content-Type") == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                return self.send_json(400, error("BadRequest", "malformed JSON"))
        st.requests.append((method, self.path, body if body is not None else raw))
        match (method, parts):
            case ("GET", ["info"]):
                return self.send_json(200, {"version": "fake", "homeDir": "/fake", "driver": "fake", "capabilities": {}})
            case ("GET", ["metrics"]):
                return self.send_json(200, {"boxesCreated": len(st.boxes), "boxesDestroyed": 0, "totalExecCalls": len(st.executions), "activeBoxes": 0})
            case ("GET", ["boxes"]):
                return self.send_json(200, list(st.boxes.values()))
            case ("POST", ["boxes"]):
                options = body.get("options", {})
                if options.get("memoryMib", 512) < 128:
                    return self.send_json(400, error("InvalidOptions", 'invalid option "memoryMib": must be 128 to 65536', field="memoryMib"))
                box_id = f"01FAKE{next(st.ids):020d}"
                st.boxes[box_id] = {
                    "id": box_id, "name": options.get("name"), "status": "configured", "image": options.get("image", "python:slim"),
                    "autoRemove": options.get("autoRemove", True), "cpus": options.get("cpus", 1), "memoryMib": options.get("memoryMib", 512),
                    "createdAt": "2026-11-30T12:00:00.000Z", "ports": [], "kind": body.get("kind", "box"), "options": options,
                }
                return self.send_json(201, st.boxes[box_id])
        box = self.find_box(parts[1]) if len(parts) > 1 and parts[0] == "boxes" else None
        if len(parts) > 1 and parts[0] == "boxes" and box is None:
            return self.send_json(404, error("BoxNotFound", f"no box {parts[1]}", idOrName=parts[1]))
        assert box is not None
        match (method, parts[2:]):
            case ("GET", []):
                return self.send_json(200, box)
            case ("POST", ["start"]):
                box["status"] = "running"
                return self.send_json(200, box)
            case ("POST", ["stop"]):
                box["status"] = "stopped"
                if box["autoRemove"]:
                    del st.boxes[box["id"]]
                return self.send_json(200, box)
            case ("DELETE", []):
                if box["status"] == "running" and query.get("force") != ["true"]:
                    return self.send_json(409, error("BoxStateError", "box is running: stop it or use force"))
                del st.boxes[box["id"]]
                return self.send_json(204)
            case ("GET", ["metrics"]):
                return self.send_json(200, {"cpuTimeMs": 12, "memoryUsageBytes": 1 << 20, "networkBytesSent": 1, "networkBytesReceived": 2})
            case ("POST", ["actions", name]):
                return self.action(box, name, body.get("args", []))
            case ("POST", ["executions"]):
                if body["command"] == "not-installed":  # as the TS API: a command that cannot run is refused at once
                    return self.send_json(500, error("ExecError", "cannot run not-installed: not found in PATH", exitCode=127))
                exec_id = f"EXEC{next(st.ids)}"
                st.executions[exec_id] = FakeExecution(body)
                box["status"] = "running"
                return self.send_json(201, {"id": exec_id})
        execution = st.executions.get(parts[3]) if len(parts) > 3 and parts[2] == "executions" else None
        if execution is None:
            return self.send_json(404, error("ExecutionNotFound", "no such execution"))
        match (method, parts[4:]):
            case ("GET", ["output"]):
                return self.stream(execution)
            case ("GET", ["wait"]):
                with execution.cond:
                    execution.cond.wait_for(lambda: execution.exit is not None)
                if execution.error:
                    return self.send_json(504 if execution.error["_tag"] == "TimeoutError" else 500, {"error": execution.error})
                return self.send_json(200, execution.exit)
            case ("POST", ["stdin"]):
                execution.write_stdin(raw)
                return self.send_json(204)
            case ("POST", ["stdin", "close"]):
                execution.stdin_closed = True
                if execution.spec["command"] in ("cat", "sh"):
                    execution.end(0)
                return self.send_json(204)
            case ("POST", ["signal"]):
                execution.signal(body["signal"])
                return self.send_json(204)
            case ("POST", ["resize"]):
                return self.send_json(204)
        return self.send_json(404, error("BadRequest", f"no route {method} {self.path}"))

    def find_box(self, id_or_name: str) -> dict[str, Any] | None:
        return self.state.boxes.get(id_or_name) or next((b for b in self.state.boxes.values() if b["name"] == id_or_name), None)

    def action(self, box: dict[str, Any], name: str, args: list[Any]) -> None:
        results: dict[tuple[str, str], Any] = {
            ("code", "run"): f"ran {len(args[0]) if args else 0} chars\n",
            ("code", "installPackage"): f"installed {args[0] if args else ''}\n",
            ("browser", "endpoint"): "ws://127.0.0.1:9222/devtools/browser/fake",
            ("computer", "screenshot"): {"data": base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode(), "width": 1024, "height": 768, "format": "png"},
            ("computer", "getScreenSize"): [1024, 768],
            ("computer", "cursorPosition"): [10, 20],
            ("computer", "type"): None,
            ("computer", "leftClick"): None,
        }
        key = (box["kind"], name)
        if key not in results:
            return self.send_json(400, error("BadRequest", f'no action "{name}" for a {box["kind"]} box'))
        if key == ("code", "run") and args and "raise" in args[0]:
            return self.send_json(500, error("ExecError", "Traceback ...\nValueError: boom", exitCode=1, stderr="ValueError: boom\n"))
        return self.send_json(200, {"result": results[key]})

    def stream(self, execution: FakeExecution) -> None:
        with execution.cond:
            if execution.reading:
                return self.send_json(409, error("BoxStateError", "another reader is attached"))
            execution.reading = True
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            while True:
                with execution.cond:
                    execution.cond.wait_for(lambda: len(execution.events) > sent or execution.exit is not None)
                    events = execution.events[sent:]
                    done, failure = execution.exit, execution.error
                for event in events:
                    self.chunk(json.dumps(event).encode() + b"\n")
                sent += len(events)
                if done is not None:
                    self.chunk(json.dumps({"error": failure} if failure else {"exit": done}).encode() + b"\n")
                    self.chunk(b"")
                    return
        except OSError:
            pass  # the reader went away: the rest stays for the next one
        finally:
            with execution.cond:
                execution.reading = False

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve_unix(path: str, token: str | None = None) -> tuple[UnixServer, State]:
    state = State(token)
    server = UnixServer(path, type("BoundHandler", (Handler,), {"state": state}))
    os.chmod(path, 0o600)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


def serve_tcp(token: str) -> tuple[TcpServer, State, int]:
    state = State(token)
    server = TcpServer(("127.0.0.1", 0), type("BoundHandler", (Handler,), {"state": state}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state, server.server_address[1]


if __name__ == "__main__":
    # `fake_server.py serve --home H`: what the client runs as `boxlite serve`.
    home = sys.argv[sys.argv.index("--home") + 1]
    os.makedirs(home, mode=0o700, exist_ok=True)
    with open(os.path.join(home, "fake-server.pid"), "w") as f:
        f.write(str(os.getpid()))
    # SIGTERM blocked in the server's threads (they inherit this mask), taken by the main thread.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    server, _ = serve_unix(os.path.join(home, "boxlite.sock"))
    signal.sigwait({signal.SIGTERM})
    os.unlink(os.path.join(home, "boxlite.sock"))

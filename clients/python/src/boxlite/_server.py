"""Finding the BoxLite server, or starting one for a home directory.

`BOXLITE_URL` (with `BOXLITE_TOKEN` or `BOXLITE_TOKEN_FILE`) names a running server. Otherwise
the home's socket (`<home>/boxlite.sock`) is used if a server answers there, else this process
starts `boxlite serve --home <home>` and stops it when the runtime closes. The command is, in order:
`$BOXLITE_BIN` (a `boxlite` executable, or a `bin.js` run with node), the repository's own build
when this package runs from a checkout (`packages/boxlite/dist/bin.js`), then `boxlite` on PATH.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import errors
from ._http import Endpoint

SOCKET_NAME = "boxlite.sock"
# A server's Node start plus opening the runtime; generous for a loaded 2-core host.
START_TIMEOUT_S = 60.0


def default_home() -> str:
    """`$BOXLITE_HOME`, else `~/.boxlite` (as the TypeScript runtime and CLI)."""
    return os.environ.get("BOXLITE_HOME") or str(Path.home() / ".boxlite")


def env_endpoint() -> Endpoint | None:
    url = os.environ.get("BOXLITE_URL")
    if not url:
        return None
    token = os.environ.get("BOXLITE_TOKEN")
    token_file = os.environ.get("BOXLITE_TOKEN_FILE")
    if not token and token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise errors.InvalidOptions(f"BOXLITE_TOKEN_FILE {token_file}: {e}", field="BOXLITE_TOKEN_FILE") from e
    return Endpoint(url, token)


def server_command() -> list[str]:
    explicit = os.environ.get("BOXLITE_BIN")
    if explicit:
        return ["node", explicit] if explicit.endswith(".js") else [explicit]
    # src/boxlite/_server.py in <repo>/clients/python: the checkout's own server.
    checkout = Path(__file__).resolve().parents[4] / "packages" / "boxlite" / "dist" / "bin.js"
    if checkout.is_file() and shutil.which("node"):
        return ["node", str(checkout)]
    on_path = shutil.which("boxlite")
    if on_path:
        return [on_path]
    raise errors.ServerUnavailable(
        "no BoxLite server to start: set BOXLITE_URL to a running server, BOXLITE_BIN to the boxlite executable, "
        "or put `boxlite` (npm package boxlite) on PATH"
    )


def answers(socket_path: str) -> bool:
    """Whether a server accepts connections on the socket (a file left by a dead server does not)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(socket_path)
            return True
        except OSError:
            return False


class LocalServer:
    """A `boxlite serve` this process started, stopped by `stop()`."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.socket_path = os.path.join(home, SOCKET_NAME)
        self.log = tempfile.TemporaryFile()
        command = [*server_command(), "serve", "--home", home]
        try:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        except OSError as e:
            raise errors.ServerUnavailable(f"could not start the BoxLite server ({' '.join(command)}): {e}") from e

    def wait_ready(self, endpoint: Endpoint) -> bool:
        """True once it answers; False if it exited because another server already serves the home."""
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if answers(self.socket_path):
                    self.process = None
                    self.stop()
                    return False
                raise errors.ServerUnavailable(f"the BoxLite server for {self.home} exited with code {self.process.returncode}: {self.output()}")
            if answers(self.socket_path):
                try:
                    endpoint.request("GET", "/v1/info", timeout=10)
                    return True
                except errors.ServerUnavailable:
                    pass
            time.sleep(0.05)
        self.stop()
        raise errors.ServerUnavailable(f"the BoxLite server for {self.home} did not answer within {START_TIMEOUT_S:.0f} s: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-4000:].decode(errors="replace").strip()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


def connect(home_dir: str | None) -> tuple[Endpoint, LocalServer | None]:
    """The endpoint for `home_dir` (None: BOXLITE_URL, else the default home), and the server started for it, if any."""
    if home_dir is None:
        from_env = env_endpoint()
        if from_env is not None:
            return from_env, None
    home = os.path.abspath(home_dir or default_home())
    endpoint = Endpoint(f"unix://{os.path.join(home, SOCKET_NAME)}")
    if answers(os.path.join(home, SOCKET_NAME)):
        return endpoint, None
    server = LocalServer(home)
    return endpoint, (server if server.wait_ready(endpoint) else None)

import asyncio
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import boxlite  # noqa: E402
import fake_server  # noqa: E402


def run(coro, timeout=300):
    """Runs a coroutine on a fresh event loop (no pytest-asyncio needed); generous for VMs under TCG."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def home():
    # Short: a unix socket path must fit in 108 bytes.
    path = tempfile.mkdtemp(prefix="blpy-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake(home, monkeypatch):
    """A fake server on <home>/boxlite.sock; the client's runtime of that home (and the default runtime) use it."""
    monkeypatch.delenv("BOXLITE_URL", raising=False)
    monkeypatch.setenv("BOXLITE_HOME", home)
    server, state = fake_server.serve_unix(os.path.join(home, "boxlite.sock"))
    runtime = boxlite.Boxlite(boxlite.Options(home_dir=home))
    yield runtime, state
    runtime.close()
    boxlite.Boxlite._default = None
    server.shutdown()
    server.server_close()

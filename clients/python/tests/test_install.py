"""`pip install ./clients/python` offline: no index, no build isolation (Debian's setuptools and wheel build it)."""
import os
import subprocess
import sys
import tempfile

CLIENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_installs_offline_into_a_venv_and_imports_from_there():
    with tempfile.TemporaryDirectory(prefix="blpy-venv-") as venv:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
        pip = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--no-index", "--no-build-isolation", CLIENT],
                             capture_output=True, text=True, env={**os.environ, "PIP_NO_INDEX": "1"})
        assert pip.returncode == 0, pip.stdout + pip.stderr
        probe = "import boxlite; print(boxlite.__version__, boxlite.__file__, boxlite.SimpleBox.__name__)"
        out = subprocess.run([os.path.join(venv, "bin", "python"), "-c", probe], capture_output=True, text=True, cwd="/",
                             env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        assert out.returncode == 0, out.stderr
        version, path, name = out.stdout.split()
        assert (version, name) == ("0.4.4", "SimpleBox") and path.startswith(venv)

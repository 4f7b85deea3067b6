#!/usr/bin/env bash
# The Python client's tests, for .ci/run: unit tests against a fake server, the offline install,
# and end-to-end tests against this checkout's `boxlite serve` with real VMs (skipped, with the
# reason, when the server is not built). Debian's python3 and python3-pytest; extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
exec "${PYTHON:-/usr/bin/python3}" -m pytest -ra "$@"

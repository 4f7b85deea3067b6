# shellcheck shell=bash
# python:slim - Debian bookworm minbase + python3 (the distro's 3.11) + pip, trimmed,
# standing in for the official python:slim image (which we cannot pull here).
# As there, root may `pip install` into the system Python (CodeBox.installPackage).
# Two layers, so the second one carries whiteouts (.wh.*):
#   1. the base system: debootstrap output minus apt lists/caches, docs, man,
#      info, translations, __pycache__, /dev nodes
#   2. the python/slim layer: python -> python3, /root, /tmp, dpkg excludes,
#      and it deletes build-host leftovers and /usr/share/lintian (whiteouts)
# Sourced by ../build.sh, which provides layer/image_config/debian_mirror (lib.sh).

TAG=slim
SUITE=bookworm
MIRROR=$(debian_mirror)

# Extra cache-stamp inputs: what debootstrap fetches depends on these.
stamp_extra() { echo "suite=$SUITE mirror=$MIRROR"; }

base_system() {
  local r=$1
  debootstrap --variant=minbase --include=python3,python3-pip "$SUITE" "$r" "$MIRROR" \
    > "$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; return 1; }
  # Nothing of this belongs in any layer.
  find "$r/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} +
  rm -rf "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
  rm -f "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
  # Docs: keep the copyright files (as debian:*-slim does), drop the rest.
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/*
  # Locales: only C.utf8 (from libc-bin) exists under /usr/lib/locale; keep it.
  find "$r" -xdev -type d -name __pycache__ -prune -exec rm -rf {} +
  rm -rf "$r"/dev/*   # device nodes: the runtime provides /dev
}

python_slim() {
  local r=$1
  ln -sfn /usr/bin/python3 "$r/usr/local/bin/python"
  common_dirs "$r"
  # Keep later `apt-get install`s inside the image slim too.
  cat > "$r/etc/dpkg/dpkg.cfg.d/boxlite-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  # Deletions of paths that exist in layer 1 -> whiteouts in this layer.
  rm -f "$r/etc/resolv.conf"                   # the build host's resolver
  rm -f "$r"/var/log/bootstrap.log "$r"/var/log/dpkg.log "$r"/var/log/alternatives.log
  rm -rf "$r/usr/share/lintian"                # a non-empty directory
  # PEP 668 marker: without it pip installs as root (into /usr/local, as Debian's pip does
  # with --break-system-packages), like the official image, whose Python is not the distro's.
  rm -f "$r"/usr/lib/python3.*/EXTERNALLY-MANAGED
  # Bytecode of the standard library and pip (~30 MB unpacked): a box's disk is fresh at every
  # start, so without it every box compiles what it imports, each time (a first pip install
  # took 61 s instead of 16 s under TCG). The official image drops .pyc files; it runs natively.
  chroot "$r" python3 -m compileall -q -x '/(test|tests|idle_test|lib2to3)/' /usr/lib/python3.11 /usr/lib/python3/dist-packages >/dev/null
  echo boxlite > "$r/etc/hostname"             # was the build host's name
  chmod 0644 "$r/etc/hostname"
}

build() {
  layer "debian $SUITE minbase + python3 (debootstrap from $MIRROR), trimmed" base_system
  layer "python slim: python symlink, /root, /tmp, pip unmanaged, host leftovers removed" python_slim
  image_config --config.env "PATH=$STD_PATH" --config.env LANG=C.UTF-8 \
    --config.cmd python3 --config.workingdir /root
}

# Smoke test run by ../check.sh inside a chroot of the unpacked image.
SMOKE=(sh -c 'python -c "import json, sqlite3, ssl, sys; print(1)" && pip --version')

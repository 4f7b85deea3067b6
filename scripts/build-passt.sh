#!/usr/bin/env bash
# Builds passt and pasta from Debian trixie's source and installs them to
# /usr/local/libexec/boxlite/, where the QEMU driver looks first (elsewhere with BOXLITE_LIBEXEC;
# then point the driver at it with BOXLITE_PASST=<dir>/passt).
#
# Why: bookworm's passt (2023-03) withholds the last ACK of the handshake it opens towards the
# guest for a forwarded TCP connection, so a guest server that speaks first (SMTP, MySQL, VNC,
# FTP) waits for the client's first byte. trixie's passt (2025) has that fixed, but its binary
# needs glibc 2.38; its source builds on bookworm with plain `make`. Only the source comes from
# trixie (a deb-src line in a sources file of its own): no binary package from trixie is
# installed, and Debian's /usr/bin/passt stays as it is.
#
# Build dependencies (bookworm): make gcc libc6-dev (build-essential), patch, xz-utils.
# Needs root (apt, /usr/local). Idempotent: a run that finds the same version installed only
# refreshes the trixie source index and checks.
set -euo pipefail

DEST="${BOXLITE_LIBEXEC:-/usr/local/libexec/boxlite}"
LIST=/etc/apt/sources.list.d/boxlite-trixie-src.sources
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

SOURCES="Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
if [ "$(cat "$LIST" 2>/dev/null)" != "$SOURCES" ]; then
  echo "$SOURCES" | $SUDO tee "$LIST" >/dev/null
fi
# Only this list: the other sources are not this script's business.
APT_ONLY_TRIXIE_SRC=(-o "Dir::Etc::SourceList=$LIST" -o "Dir::Etc::SourceParts=-" -o "APT::Get::List-Cleanup=0")
$SUDO apt-get "${APT_ONLY_TRIXIE_SRC[@]}" update -qq

version="$(apt-cache showsrc passt | awk '/^Package: passt$/ { p = 1 } p && /^Version:/ { print $2; p = 0 }' | sort -V | tail -n 1)"
[ -n "$version" ] || { echo "build-passt: no source package passt in trixie" >&2; exit 1; }
if [ "$(cat "$DEST/passt.version" 2>/dev/null)" = "$version" ] && [ -x "$DEST/passt" ] && [ -x "$DEST/pasta" ]; then
  echo "passt $version already in $DEST"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work" # apt-get source as root downloads as _apt
echo "building passt $version"
# The tarballs only (upstream's and Debian's debian/ directory, checked against the index by
# apt): Debian's mirror here serves no .dsc, which `apt-get source` would need to unpack.
(cd "$work" && for part in --tar-only --diff-only; do apt-get source -qq "$part" --only-source "passt=$version" >/dev/null 2>&1; done)
src="$work/src"
mkdir "$src"
tar -xf "$work"/passt_*.orig.tar.* -C "$src" --strip-components=1
tar -xf "$work"/passt_*.debian.tar.* -C "$src"
while read -r patch; do
  case "$patch" in ''|'#'*) continue ;; esac
  patch -s -p1 -d "$src" <"$src/debian/patches/$patch"
done <"$src/debian/patches/series"
make -s -C "$src" -j"$(nproc)" VERSION="$version" >/dev/null

$SUDO install -d -m 0755 "$DEST"
# pasta is passt under another name (a hard link, as Debian installs it); on CPUs with AVX2 they
# re-execute themselves as <path>.avx2.
for binary in passt passt.avx2; do
  [ -f "$src/$binary" ] || continue
  $SUDO install -m 0755 "$src/$binary" "$DEST/$binary.new"
  $SUDO mv -f "$DEST/$binary.new" "$DEST/$binary"
  $SUDO ln -f "$DEST/$binary" "$DEST/${binary/passt/pasta}"
done
echo "$version" | $SUDO tee "$DEST/passt.version" >/dev/null
# It runs here (stdbuf: passt exits without flushing a piped stdout).
stdbuf -o0 "$DEST/passt" --version | head -n 1

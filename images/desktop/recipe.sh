# shellcheck shell=bash
# desktop:latest - the ComputerBox image: Debian bookworm with an X desktop that
# a computer-use agent drives through xdotool and a person watches through noVNC.
#   Xvfb (X server, no GPU), openbox (window manager) + tint2 (panel), xterm,
#   mousepad (editor), dillo (browser), xdotool, scrot (screenshots), x11-utils
#   (xmessage, xwininfo), x11vnc + novnc/websockify (the viewer), DejaVu fonts.
# The session runs as the unprivileged user `desktop` (uid 1000); the ComputerBox
# starts it with /usr/local/bin/boxlite-desktop (below).
# Sourced by ../build.sh, which provides layer/image_config/debian_mirror (lib.sh).

TAG=latest
SUITE=bookworm
MIRROR=$(debian_mirror)
PACKAGES=(
  xvfb openbox tint2 xterm mousepad dillo xdotool scrot x11-utils
  x11-xserver-utils x11vnc websockify fonts-dejavu-core procps
)

stamp_extra() { echo "suite=$SUITE mirror=$MIRROR"; }

# Dependencies that would more than double the image and that nothing here uses: Mesa's DRI
# drivers (LLVM, ~170 MB; Xvfb runs without GLX acceleration), cpp (gcc's, ~35 MB; only xrdb
# wants it, and the session does not run xrdb), and imlib2's PostScript and HEIF loaders'
# libraries (ghostscript, x265...; scrot and tint2 use its PNG loader). A local package says it
# provides them, so apt keeps the dpkg database consistent without installing them.
STUB_PROVIDES="libgl1-mesa-dri, cpp, libspectre1 (= 0.2.12-1), libheif1 (= 1.15.1-1+deb12u1)"

# apt-get inside the chroot resolves dependencies properly (debootstrap's
# --include does not handle virtual packages well); /proc is mounted for the
# maintainer scripts and unmounted again (build.sh unmounts it too on a kill).
desktop_system() {
  local r=$1
  debootstrap --variant=minbase "$SUITE" "$r" "$MIRROR" \
    > "$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; return 1; }
  cat > "$r/etc/dpkg/dpkg.cfg.d/boxlite-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  mkdir -p "$WORK/stub/DEBIAN"
  cat > "$WORK/stub/DEBIAN/control" <<CONTROL
Package: boxlite-desktop-stubs
Version: 1.0
Architecture: all
Maintainer: BoxLite <boxlite@localhost>
Provides: $STUB_PROVIDES
Description: stands in for dependencies the BoxLite desktop image leaves out
CONTROL
  dpkg-deb --root-owner-group --build "$WORK/stub" "$r/tmp/boxlite-desktop-stubs.deb" >/dev/null
  mount -t proc proc "$r/proc"
  local rc=0
  chroot "$r" dpkg -i /tmp/boxlite-desktop-stubs.deb > "$WORK/apt.log" 2>&1 \
    && rm "$r/tmp/boxlite-desktop-stubs.deb" \
    && chroot "$r" env DEBIAN_FRONTEND=noninteractive apt-get update -q >> "$WORK/apt.log" 2>&1 \
    && chroot "$r" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" \
      >> "$WORK/apt.log" 2>&1 || rc=$?
  # noVNC is static web files; its package depends on nodejs for build tools we
  # do not run, so unpack it without its dependencies.
  [ $rc -eq 0 ] && { chroot "$r" sh -c 'cd /tmp && apt-get download -q novnc && dpkg-deb -x novnc_*.deb / && rm novnc_*.deb' \
    >> "$WORK/apt.log" 2>&1 || rc=$?; }
  umount "$r/proc"
  [ $rc -eq 0 ] || { tail -n 40 "$WORK/apt.log" >&2; return $rc; }
  chroot "$r" useradd --create-home --uid 1000 --shell /bin/bash desktop

  find "$r/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} +
  rm -rf "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
  rm -f "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/*
  find "$r" -xdev -type d -name __pycache__ -prune -exec rm -rf {} +
  rm -f "$r/etc/resolv.conf" "$r"/var/log/*.log "$r"/var/log/apt/*
  rm -rf "$r"/dev/*
  echo boxlite > "$r/etc/hostname"
  chmod 0644 "$r/etc/hostname"
  common_dirs "$r"
}

# The session script and its configuration: a layer of its own so editing it
# rebuilds only this small layer's content (the whole image is rebuilt anyway).
desktop_session() {
  local r=$1
  install -m 0755 "$HERE/desktop/boxlite-desktop" "$r/usr/local/bin/boxlite-desktop"
  # xterm: UTF-8 and a TrueType font with wide coverage (the core "fixed" font has no CJK).
  # Xt reads ~/.Xdefaults when no resources were loaded into the server (no xrdb, no cpp).
  cat > "$r/home/desktop/.Xdefaults" <<'XRES'
XTerm*faceName: DejaVu Sans Mono
XTerm*faceSize: 11
XTerm*locale: true
XTerm*saveLines: 2000
XRES
  chown 1000:1000 "$r/home/desktop/.Xdefaults"
}

build() {
  layer "debian $SUITE minbase + X desktop packages (Xvfb openbox tint2 xterm mousepad dillo xdotool scrot x11vnc novnc)" desktop_system
  layer "desktop session script and user configuration" desktop_session
  image_config --config.env "PATH=$STD_PATH" --config.env LANG=C.UTF-8 \
    --config.cmd /usr/local/bin/boxlite-desktop --config.workingdir /home/desktop
}

SMOKE=(sh -c 'command -v Xvfb openbox tint2 xterm mousepad dillo xdotool scrot x11vnc websockify xmessage >/dev/null && test -f /usr/share/novnc/vnc.html && echo 1')

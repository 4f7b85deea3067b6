# shellcheck shell=bash
# browser:latest - Debian bookworm minbase + Chromium, Firefox ESR and WebKitGTK's
# WebDriver (with its MiniBrowser, run under Xvfb: WebKitGTK 4.1 is GTK3 and needs
# a display), fonts, and socat (BrowserBox relays the forwarded port from the
# guest's network interface to the browser's loopback-only debug endpoint).
# The browsers run as the non-root user "browser" (uid 1000, home /home/browser).
# Two layers: the trimmed base system, then the browsers (apt from bookworm and
# bookworm-security: Debian ships browser updates through the security suite).
# Sourced by ../build.sh, which provides layer/image_config/debian_mirror (lib.sh).

TAG=latest
SUITE=bookworm
MIRROR=$(debian_mirror)
# deb.debian.org/debian -> deb.debian.org/debian-security (same host, the usual layout).
SECURITY_MIRROR=${MIRROR%/}-security
PACKAGES=(chromium firefox-esr webkit2gtk-driver xvfb xauth socat
  fonts-liberation fonts-dejavu-core)

stamp_extra() { echo "suite=$SUITE mirror=$MIRROR security=$SECURITY_MIRROR packages=${PACKAGES[*]}"; }

trim() {
  local r=$1
  find "$r/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} +
  rm -rf "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
  rm -f "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/*
  rm -f "$r"/var/log/bootstrap.log "$r"/var/log/dpkg.log "$r"/var/log/alternatives.log "$r"/var/log/apt/*
  rm -rf "$r"/dev/*
}

base_system() {
  local r=$1
  debootstrap --variant=minbase "$SUITE" "$r" "$MIRROR" \
    > "$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; return 1; }
  common_dirs "$r"
  cat > "$r/etc/dpkg/dpkg.cfg.d/boxlite-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  trim "$r"
}

browsers() {
  local r=$1
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE" > "$r/etc/apt/sources.list"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  # apt and maintainer scripts need /proc and /dev (layer 1 ships an empty /dev).
  mount -t proc proc "$r/proc"
  mount --bind /dev "$r/dev"
  local rc=0
  chroot "$r" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends ${PACKAGES[*]}" > "$WORK/apt.log" 2>&1 || rc=$?
  umount "$r/dev" "$r/proc"
  [ $rc -eq 0 ] || { tail -n 30 "$WORK/apt.log" >&2; return 1; }
  chroot "$r" useradd --uid 1000 --create-home --shell /bin/sh browser
  rm -f "$r/etc/resolv.conf"                     # the build host's resolver
  echo boxlite > "$r/etc/hostname"
  chmod 0644 "$r/etc/hostname"
  trim "$r"
}

build() {
  layer "debian $SUITE minbase (debootstrap from $MIRROR), trimmed" base_system
  layer "chromium, firefox-esr, webkit2gtk-driver, xvfb, socat, fonts; user browser" browsers
  image_config --config.env "PATH=$STD_PATH" --config.env LANG=C.UTF-8 \
    --config.cmd /bin/sh --config.workingdir /home/browser
}

# Smoke test run by ../check.sh inside a chroot of the unpacked image.
SMOKE=(sh -c 'chromium --version && firefox-esr --version && test -x /usr/bin/WebKitWebDriver && socat -V >/dev/null && id browser')

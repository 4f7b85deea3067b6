# shellcheck shell=bash
# busybox:latest - a ~2 MB image: Debian's busybox-static (/bin/busybox on the
# build host) with its applet symlinks, root/nobody users and nothing else.
# One layer. Sourced by ../build.sh, which provides layer/image_config (lib.sh).

TAG=latest
BUSYBOX_BIN=/bin/busybox

# Extra cache-stamp inputs: the busybox binary we copy in.
stamp_extra() {
  dpkg-query -W -f='busybox-static ${Version}\n' busybox-static 2>/dev/null || true
  sha256sum "$BUSYBOX_BIN"
}

busybox_tree() {
  local r=$1 applet
  install -d -m 0755 "$r"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,dev,proc,sys,run,var,home}
  common_dirs "$r"
  install -m 0755 "$BUSYBOX_BIN" "$r/bin/busybox"
  # --list-full gives each applet's canonical path (bin/sh, usr/bin/env, ...).
  "$BUSYBOX_BIN" --list-full | while read -r applet; do
    [ "$applet" = linuxrc ] && continue
    [ -e "$r/$applet" ] || ln -s /bin/busybox "$r/$applet"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > "$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > "$r/etc/group"
  echo boxlite > "$r/etc/hostname"
  chmod 0644 "$r"/etc/{passwd,group,hostname}
}

build() {
  layer "busybox-static from the host with applet symlinks, passwd/group" busybox_tree
  image_config --config.env "PATH=$STD_PATH" --config.cmd sh --config.workingdir /root
}

# Smoke test run by ../check.sh inside a chroot of the unpacked image.
SMOKE=(sh -c 'echo hello from busybox; ls / >/dev/null')

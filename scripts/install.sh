#!/usr/bin/env bash
# Sets up BoxLite from a clone on Debian/Ubuntu: system packages, npm dependencies, the
# TypeScript build, the guest (kernel + initramfs with the agent) and the offline test images.
# Idempotent: a second run only checks. Needs root or sudo (apt, debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

PACKAGES=(
  qemu-system-x86 qemu-utils passt # the VMM, qemu-img (box disks), user-mode networking
  fakeroot e2fsprogs zstd          # root filesystems from image layers, without root
  golang-go cpio kmod lz4          # the guest agent and the initramfs
  umoci skopeo debootstrap busybox-static  # the offline test and demo images
  docker-registry apache2-utils openssl    # a real registry for the tests and examples/images.mjs (htpasswd, TLS)
  uidmap                           # volumes for non-root users: virtiofsd in a user namespace
  bubblewrap nftables              # the jail around QEMU and its helpers; the egress policy
  make gcc libc6-dev patch xz-utils  # a current passt, built from Debian's source (scripts/build-passt.sh)
  g++                              # better-sqlite3 from source on Node < 22.13 (no node:sqlite) when no prebuilt binary is reachable
  util-linux procps iproute2 ca-certificates python3  # test hosts in netns; python3 for bench/io.js and test wheels
  python3-pytest python3-venv python3-setuptools python3-wheel  # the Python client (clients/python): its tests and offline install
  chromium                         # a real browser on the host for the ComputerBox viewer test
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A current passt (speaks-first servers through port forwards, UDP flows): bookworm's is from 2023.
$SUDO bash scripts/build-passt.sh
# Debian's udev makes /dev/net/tun 0666 (opening it grants nothing by itself); hosts without udev
# leave it 0600, and then a non-root runtime cannot put passt behind its egress rules (pasta).
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" = 600 ]; then $SUDO chmod 0666 /dev/net/tun; fi

node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("BoxLite needs Node.js >= 20"); process.exit(1) }'
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
# The state database needs a SQLite binding: Node's own node:sqlite (>= 22.13) or better-sqlite3
# built for this Node (an optional dependency: its build may fail where it is not needed).
node --input-type=module -e '
  import { availableBackends } from "./packages/core/dist/internal/Sqlite.js"
  if (availableBackends().length === 0) {
    console.error(`BoxLite: no SQLite binding loads on Node ${process.versions.node}: use Node >= 22.13, or build better-sqlite3 for this Node (npm rebuild better-sqlite3)`)
    process.exit(1)
  }'
# npm links a bin only if its target exists: boxlite's (dist/bin.js) exists once built, so `npx boxlite` works.
npm rebuild boxlite --silent
npm run build:guest --silent
$SUDO bash images/build.sh

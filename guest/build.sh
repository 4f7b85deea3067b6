#!/usr/bin/env bash
# Builds the BoxLite guest into dist/: kernel, initramfs (agent as /init + virtio modules) and
# manifest.json. Deterministic and cached: nothing is rebuilt unless the agent sources, this
# script or the kernel package version changed.
#
# Needs (Debian 12): golang-go cpio kmod lz4 (+ apt and dpkg-deb, always present).
# Env: BOXLITE_KERNEL_FORMAT=vmlinux|bzimage  BOXLITE_INITRD_COMPRESSION=none|gzip|lz4
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=$here/.cache
dist=$here/dist
# Measured under TCG (see README.md): the PVH-booted vmlinux and an uncompressed initramfs
# boot fastest.
kernel_format=${BOXLITE_KERNEL_FORMAT:-vmlinux}
compression=${BOXLITE_INITRD_COMPRESSION:-none}
meta=linux-image-cloud-amd64
# virtio_balloon: free page reporting hands the pages the guest frees back to the host.
modules=(virtio_mmio virtio_blk virtio_console virtio_net virtio_balloon)
# Loaded by the agent only when a CONFIGURE has mounts (fuse.ko is 0.4 MB: ~70 ms under TCG).
volume_modules=(virtiofs)
# Loaded at boot only with boxlite.virtio=pci (cloud-hypervisor, vfkit: virtio devices on PCI).
pci_modules=(virtio_pci)
# Loaded at boot only with boxlite.vsock=<port>: the agent's vsock channel to the VMM.
vsock_modules=(vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport)
# And with boxlite.vsock.loopback=1 (tests): guest processes reach the agent at CID 1.
loopback_modules=(vsock_loopback)
# initcall_blacklist=tracer_init_tracefs: no tracefs, whose ~10,000 event files cost every
# guest 9 MiB of inodes and dentries (6.1 creates them all at boot).
# Only what every machine wants: the console, the buses and tsc_early_khz= are the drivers' to
# add (QEMU's microvm: console=ttyS0 pci=off ...; cloud-hypervisor and vfkit: virtio-pci).
cmdline="quiet reboot=t panic=-1 no_timer_check cryptomgr.notests random.trust_cpu=on initcall_blacklist=tracer_init_tracefs"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

for tool in go cpio depmod modprobe lz4 dpkg-deb apt-get apt-cache sha256sum; do
  command -v "$tool" >/dev/null || { echo "build.sh: missing $tool (apt-get install golang-go cpio kmod lz4)" >&2; exit 1; }
done
mkdir -p "$cache" "$dist"

# The versioned kernel package the meta package depends on, and its version.
resolve_kernel() {
  pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$pkg" ] && ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
  [ -n "${pkg:-}" ] && [ -n "${ver:-}" ]
}
if ! resolve_kernel; then
  apt-get update -qq
  resolve_kernel || { echo "build.sh: cannot resolve $meta" >&2; exit 1; }
fi
kver=${pkg#linux-image-}

inputs=$( { echo "$pkg $ver $kernel_format $compression $SOURCE_DATE_EPOCH"; go version;
            cat "$0"; cd "$here/agent" && find . -type f \( -name '*.go' -o -name go.mod \) ! -name '*_test.go' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)
if [ -f "$dist/.stamp" ] && [ "$(cat "$dist/.stamp")" = "$inputs" ] && [ -f "$dist/manifest.json" ]; then
  echo "guest: up to date ($kver)"
  exit 0
fi

# Kernel package: downloaded into the cache (never installed), extracted once per version.
# A stale package list may name a version the mirror no longer has: refresh it, start over.
deb=$cache/${pkg}_${ver}_amd64.deb
if [ ! -f "$deb" ] && ! (cd "$cache" && apt-get download -q "$pkg=$ver"); then
  [ -z "${BOXLITE_APT_REFRESHED:-}" ] || { echo "build.sh: cannot download $pkg=$ver" >&2; exit 1; }
  apt-get update -qq
  BOXLITE_APT_REFRESHED=1 exec bash "$0" "$@"
fi
kroot=$cache/kernel-$ver
if [ ! -d "$kroot/lib/modules/$kver" ]; then
  rm -rf "$kroot" "$kroot.tmp"
  dpkg-deb -x "$deb" "$kroot.tmp"
  depmod -b "$kroot.tmp" "$kver"
  mv "$kroot.tmp" "$kroot"
fi
vmlinuz=$kroot/boot/vmlinuz-$kver

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Kernel. The cloud vmlinuz is an LZ4 (legacy format) compressed ELF: find its magic, unpack.
if [ "$kernel_format" = vmlinux ]; then
  kernel=vmlinux-$kver
  for off in $(LC_ALL=C grep -obUaP '\x02\x21\x4c\x18' "$vmlinuz" | cut -d: -f1); do
    tail -c +$((off + 1)) "$vmlinuz" | lz4 -dc > "$work/vmlinux" 2>/dev/null || true
    [ "$(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] && break
  done
  [ "$(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || { echo "build.sh: no LZ4 ELF in $vmlinuz" >&2; exit 1; }
  mv "$work/vmlinux" "$work/$kernel"
else
  kernel=vmlinuz-$kver
  cp "$vmlinuz" "$work/$kernel"
fi

# Agent.
(cd "$here/agent" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-buildvcs=false \
  GOCACHE=${GOCACHE:-$cache/go-build} go build -trimpath -ldflags='-s -w' -o "$work/root/init" .)

# Modules, dependencies first, each once: order (boot) and order.volumes (what the volume
# modules need beyond the boot set); order.pci, order.vsock and order.loopback list all they
# need (the agent skips what an earlier list loaded).
mkdir -p "$work/root/lib/modules"
deps() {
  for m in "$@"; do
    modprobe -d "$kroot" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
  done
}
deps "${modules[@]}" | awk '!seen[$0]++' > "$work/modules.txt"
deps "${volume_modules[@]}" | awk 'NR == FNR {boot[$0] = 1; next} !boot[$0] && !seen[$0]++' "$work/modules.txt" - > "$work/modules.volumes.txt"
deps "${pci_modules[@]}" | awk '!seen[$0]++' > "$work/modules.pci.txt"
deps "${vsock_modules[@]}" | awk '!seen[$0]++' > "$work/modules.vsock.txt"
deps "${loopback_modules[@]}" | awk '!seen[$0]++' > "$work/modules.loopback.txt"
for list in modules modules.volumes modules.pci modules.vsock modules.loopback; do
  while read -r ko; do
    cp -f "$ko" "$work/root/lib/modules/"
    echo "/lib/modules/$(basename "$ko")"
  done < "$work/$list.txt" > "$work/root/lib/modules/${list/modules/order}"
done

# initramfs: newc, sorted names, fixed owners and mtimes, no inode numbers.
find "$work/root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$work/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) > "$work/initrd.cpio"
case $compression in
  none) initrd=initrd.cpio ;;
  gzip) initrd=initrd.cpio.gz; gzip -9n < "$work/initrd.cpio" > "$work/$initrd" ;;
  lz4)  initrd=initrd.cpio.lz4; lz4 -l -9 -q -c "$work/initrd.cpio" > "$work/$initrd" ;;
  *) echo "build.sh: bad compression $compression" >&2; exit 1 ;;
esac

rm -rf "$dist" && mkdir -p "$dist"
mv "$work/$kernel" "$work/$initrd" "$dist/"
cat > "$dist/manifest.json" <<JSON
{
  "kernelVersion": "$kver",
  "kernel": "$kernel",
  "initrd": "$initrd",
  "cmdline": "$cmdline"
}
JSON
echo "$inputs" > "$dist/.stamp"
count() { wc -l < "$work/root/lib/modules/$1"; }
echo "guest: built $kernel + $initrd ($(count order) boot modules, $(count order.volumes) for volumes, $(count order.pci) for pci, $(count order.vsock) for vsock, $(count order.loopback) for loopback) in $dist"

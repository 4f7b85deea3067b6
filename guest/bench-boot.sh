#!/usr/bin/env bash
# Measures boot to `boxlite-agent: init` (probe mode: the agent powers off at once) under
# TCG for each kernel format x initramfs compression. Run after build.sh. Usage: bench-boot.sh [runs]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
runs=${1:-10}
kver=$(sed -n 's/.*"kernelVersion": "\(.*\)".*/\1/p' "$here/dist/manifest.json")
cmdline=$(sed -n 's/.*"cmdline": "\(.*\)".*/\1/p' "$here/dist/manifest.json")
# As the QEMU driver does under TCG: microvm has no PIT/HPET to calibrate the TSC against.
tsc=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Rebuild the variants from the uncompressed pieces.
vmlinuz=$(ls "$here"/.cache/kernel-*/boot/vmlinuz-"$kver" | head -1)
cp "$vmlinuz" "$tmp/bzImage"
off=$(LC_ALL=C grep -obUaP '\x02\x21\x4c\x18' "$vmlinuz" | head -1 | cut -d: -f1)
tail -c +$((off + 1)) "$vmlinuz" | lz4 -dc > "$tmp/vmlinux" 2>/dev/null || true
initrd=$(sed -n 's/.*"initrd": "\(.*\)".*/\1/p' "$here/dist/manifest.json")
case $initrd in
  *.gz) gzip -dc "$here/dist/$initrd" > "$tmp/initrd.none" ;;
  *.lz4) lz4 -dc "$here/dist/$initrd" > "$tmp/initrd.none" ;;
  *) cp "$here/dist/$initrd" "$tmp/initrd.none" ;;
esac
gzip -9n < "$tmp/initrd.none" > "$tmp/initrd.gzip"
lz4 -l -9 -q -c "$tmp/initrd.none" > "$tmp/initrd.lz4"

now() { date +%s%N; }
variants=(vmlinux:none vmlinux:gzip vmlinux:lz4 bzImage:none bzImage:gzip bzImage:lz4)
# Round robin over the variants so that background load hits all of them alike.
for round in $(seq "$runs"); do
  for v in "${variants[@]}"; do
    kernel=${v%:*} comp=${v#*:}
    t=$(now)
    qemu-system-x86_64 -M microvm,x-option-roms=off -accel tcg -m 512M -smp 1 -nodefaults \
      -no-user-config -display none -no-reboot -chardev "file,id=con0,path=$tmp/console.log" \
      -serial chardev:con0 -kernel "$tmp/$kernel" -initrd "$tmp/initrd.$comp" \
      -append "$cmdline console=ttyS0 8250.nr_uarts=1 pci=off i8042.noaux i8042.nokbd tsc_early_khz=$tsc boxlite.probe=1"
    echo $(( ($(now) - t) / 1000000 )) >> "$tmp/times.$kernel.$comp"
    grep -q 'boxlite-agent: init' "$tmp/console.log" || { echo "no init line ($v)" >&2; exit 1; }
  done
done
for v in "${variants[@]}"; do
  kernel=${v%:*} comp=${v#*:}
  sorted=($(sort -n "$tmp/times.$kernel.$comp"))
  printf '%-8s %-5s initrd %8d B  median %5d ms  min %5d ms  max %5d ms\n' "$kernel" "$comp" \
    "$(stat -c %s "$tmp/initrd.$comp")" "${sorted[$((runs / 2))]}" "${sorted[0]}" "${sorted[$((runs - 1))]}"
done

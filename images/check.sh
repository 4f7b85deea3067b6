#!/usr/bin/env bash
# Check built layouts: skopeo inspect, skopeo copy to a scratch layout, umoci
# unpack, and the recipe's SMOKE command in a chroot of the unpacked rootfs.
#   images/check.sh [NAME...]      (default: every images/out/<NAME> with a recipe)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${BOXLITE_IMAGES_OUT:-$HERE/out}
source "$HERE/lib.sh"
[ "$(id -u)" = 0 ] || { echo "check.sh: must run as root (chroot)" >&2; exit 1; }
if [ $# -eq 0 ]; then
  set -- $(for r in "$HERE"/*/recipe.sh; do n=$(basename "$(dirname "$r")"); [ -d "$OUT/$n" ] && echo "$n"; done)
fi
tmp=$(mktemp -d)
trap 'rm -rf --one-file-system "$tmp"' EXIT
for NAME in "$@"; do
  ( SMOKE=(); source "$HERE/$NAME/recipe.sh"
    ref="oci:$OUT/$NAME:$TAG"
    digest=$(skopeo inspect --format '{{.Digest}}' "$ref")
    skopeo copy -q "$ref" "oci:$tmp/copy-$NAME:$TAG"
    umoci unpack --image "$tmp/copy-$NAME:$TAG" "$tmp/bundle-$NAME" >/dev/null
    env -i PATH="$STD_PATH" LANG=C.UTF-8 HOME=/root \
      chroot "$tmp/bundle-$NAME/rootfs" "${SMOKE[@]:-true}" >"$tmp/smoke.out"
    echo "$NAME ok  $digest  rootfs $(du -sh "$tmp/bundle-$NAME/rootfs" | cut -f1)  smoke: $(tr '\n' ' ' < "$tmp/smoke.out")"
  )
done

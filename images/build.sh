#!/usr/bin/env bash
# Build BoxLite's offline test/demo OCI images (no Docker, no registry).
#
#   images/build.sh [NAME...]      NAME = a folder with a recipe.sh (default: all)
#
# Each image ends up as an OCI image layout in images/out/<NAME>/ tagged as its
# recipe says (reference it as oci:images/out/<NAME>:<TAG>). A build is skipped
# when images/out/<NAME>.stamp matches the hash of the recipe folder, build.sh,
# lib.sh and the recipe's stamp_extra (e.g. Debian suite + mirror). Builds run
# in images/out/.tmp-<NAME>.*/ and the finished layout is renamed into place,
# so an interrupted build never leaves a partial layout behind.
#
# Needs root (debootstrap, chroot, ownership-preserving umoci unpack) and the
# Debian packages: umoci skopeo debootstrap busybox-static.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${BOXLITE_IMAGES_OUT:-$HERE/out}
# shellcheck source=lib.sh
source "$HERE/lib.sh"

die() { echo "build.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap/chroot/umoci unpack need it)"
for tool in umoci skopeo sha256sum flock; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install umoci skopeo debootstrap busybox-static)"
done

if [ $# -eq 0 ]; then
  set -- $(for r in "$HERE"/*/recipe.sh; do basename "$(dirname "$r")"; done)
fi
for NAME in "$@"; do
  [ -f "$HERE/$NAME/recipe.sh" ] || die "no recipe: $HERE/$NAME/recipe.sh"
done

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock -n 9 || { echo "build.sh: waiting for another build to finish" >&2; flock 9; }
# With the lock held, leftovers of killed builds are ours to remove.
for stale in "$OUT"/.tmp-*; do
  [ -e "$stale" ] || continue
  awk -v d="$stale/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$stale"
done

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
show() { case $1 in "$(dirname "$HERE")"/*) echo "${1#"$(dirname "$HERE")"/}" ;; *) echo "$1" ;; esac; }
mbytes() { du -sb "$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }

# stamp NAME: hash of everything that determines the image (recipe sourced).
stamp() {
  {
    (cd "$HERE" && sha256sum build.sh lib.sh \
      && find "$1" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    stamp_extra
  } | sha256sum | cut -d' ' -f1
}

cleanup_work() {
  [ -n "${WORK:-}" ] && [ -d "$WORK" ] || return 0
  awk -v d="$WORK/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$WORK"
}

# build_one NAME - runs in its own subshell (recipes define functions/vars).
build_one() {
  NAME=$1
  local t0 st
  t0=$(now)
  stamp_extra() { :; }
  # shellcheck source=/dev/null
  source "$HERE/$NAME/recipe.sh"
  : "${TAG:?recipe $NAME sets no TAG}"
  st=$(stamp "$NAME")
  if [ -f "$OUT/$NAME/index.json" ] && [ "$(cat "$OUT/$NAME.stamp" 2>/dev/null)" = "$st" ]; then
    printf '%-8s cached  oci:%s:%s  %s  %s\n' "$NAME" "$(show "$OUT/$NAME")" "$TAG" "$(mbytes "$OUT/$NAME")" "$(elapsed "$t0")"
    return 0
  fi

  WORK=$(mktemp -d "$OUT/.tmp-$NAME.XXXXXX")
  trap cleanup_work EXIT
  trap 'exit 130' INT TERM HUP
  LAYOUT=$WORK/layout
  umoci init --layout "$LAYOUT"
  umoci new --image "$LAYOUT:$TAG"
  build                                     # from recipe.sh
  umoci gc --layout "$LAYOUT"
  chmod -R a+rX "$LAYOUT"                  # umoci writes 0600 blobs; tests may run unprivileged
  skopeo inspect "oci:$LAYOUT:$TAG" >/dev/null || die "$NAME: skopeo cannot read the layout"

  # Swap into place: the old layout goes into WORK (removed on exit); a kill
  # between the two renames leaves no layout and no stamp -> rebuilt next time.
  rm -f "$OUT/$NAME.stamp"
  if [ -e "$OUT/$NAME" ]; then mv -T "$OUT/$NAME" "$WORK/old"; fi
  mv -T "$LAYOUT" "$OUT/$NAME"
  echo "$st" > "$OUT/$NAME.stamp.new"
  mv -f "$OUT/$NAME.stamp.new" "$OUT/$NAME.stamp"
  printf '%-8s built   oci:%s:%s  %s  %s\n' "$NAME" "$(show "$OUT/$NAME")" "$TAG" "$(mbytes "$OUT/$NAME")" "$(elapsed "$t0")"
}

failed=()
for n in "$@"; do
  set +e
  ( set -euo pipefail; build_one "$n" )
  rc=$?
  set -e
  [ $rc -eq 0 ] || { echo "build.sh: $n FAILED (rc $rc)" >&2; failed+=("$n"); }
done
[ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]}"

# shellcheck shell=bash
# Shared helpers for the image recipes. Sourced by build.sh; recipes only call
# the functions below (layer, image_config, debian_mirror), never umoci directly.
#
# Variables set by build.sh before a recipe runs:
#   LAYOUT  OCI layout directory being built (a temp dir, renamed into place later)
#   TAG     the tag of the image (from the recipe's TAG=)
#   WORK    scratch dir for this build (bundles live here)

# layer DESCRIPTION FUNCTION [ARGS...]
#   Unpacks $LAYOUT:$TAG into a fresh bundle, runs FUNCTION ROOTFS [ARGS...]
#   to modify the tree, then repacks the difference as one new gzip layer
#   (deleted paths become .wh.* whiteout entries, umoci's doing).
layer() {
  local desc=$1 fn=$2; shift 2
  local bundle
  bundle=$(mktemp -d "$WORK/bundle.XXXXXX")
  rmdir "$bundle"                       # umoci unpack wants to create it
  umoci unpack --image "$LAYOUT:$TAG" "$bundle" >/dev/null
  "$fn" "$bundle/rootfs" "$@"
  umoci repack --image "$LAYOUT:$TAG" \
    --history.created_by "boxlite images/$NAME/recipe.sh: $fn" \
    --history.comment "$desc" "$bundle"
  rm -rf "$bundle"
}

# image_config --config.env K=V ... --config.cmd X ...  (plain umoci config flags)
image_config() {
  umoci config --image "$LAYOUT:$TAG" \
    --history.created_by "boxlite images/$NAME/recipe.sh: config" "$@"
}

# Standard OCI-ish PATH, as in the official Docker images.
STD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# common_dirs ROOTFS: /root (0700) and /tmp (1777), which every image needs.
common_dirs() {
  install -d -m 0700 "$1/root"
  install -d -m 1777 "$1/tmp"
  chmod 1777 "$1/tmp"
}

# debian_mirror: the Debian archive URI apt uses on this machine (first
# deb822 .sources stanza or one-line "deb" entry that is not -security),
# falling back to http://deb.debian.org/debian.
debian_mirror() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '
      BEGIN { RS=""; FS="\n" }                        # one stanza per record
      {
        u=""; s=""; t=""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { u=$i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u=a[1] }
          if ($i ~ /^Suites:/) { s=$i }
          if ($i ~ /^Types:/)  { t=$i }
        }
        if (t ~ /(^|[ \t])deb([ \t]|$)/ && u ~ /debian\/?$/ && u !~ /security/ && s !~ /security/) { print u; exit }
      }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      uri=$(awk '$1 == "deb" {
          i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }   # skip [options]
          if ($i ~ /debian\/?$/ && $i !~ /security/ && $(i+1) !~ /security/) { print $i; exit }
        }' "$f")
      [ -n "$uri" ] && break
    done
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

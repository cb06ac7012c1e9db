#!/usr/bin/env bash
# Blender 4.x for the add-on's extension test (test/blender_addon/addon-blender4.test.ts): Debian bookworm only
# ships Blender 3.4, so this builds a Debian trixie chroot (Blender 4.3) with debootstrap and installs Blender
# in it. Blender runs there with `chroot DIR blender -b …` (no /proc or bind mounts needed; it shares the
# host's network, so it reaches a daemon on the host's loopback).
#
#   bash .ci/blender-trixie.sh [DIR]     default DIR: $VIDPRIOR_TRIXIE_DIR or /var/cache/vidprior-trixie
#
# Idempotent: a finished chroot (marker DIR/.vidprior-ready) is only checked. Needs root. About 3 min and
# 1.4 GB on a fresh machine; its steps time out after 10 + 15 min at worst. On failure it exits non-zero, says
# why, and leaves the reason in DIR.failed (the test prints it when it skips).
set -euo pipefail
DIR=${1:-${VIDPRIOR_TRIXIE_DIR:-/var/cache/vidprior-trixie}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
READY="$DIR/.vidprior-ready"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

fail() {
  echo "blender-trixie: FAILED: $*" >&2
  mkdir -p "$(dirname "$DIR")" && echo "$*" > "$DIR.failed" || true
  exit 1
}
# Runs a command in the chroot with a clean environment, for at most $LIMIT seconds (default 120).
in_chroot() { timeout "${LIMIT:-120}" chroot "$DIR" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
blender_version() { in_chroot blender --version 2>/dev/null | head -1; }

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap and chroot)"

# 0. Already built: check that Blender still starts, then stop (an older chroot without Xvfb gets it in step 3).
if [ -f "$READY" ] && [ -x "$DIR/usr/bin/xvfb-run" ] && v=$(blender_version) && [ -n "$v" ]; then
  rm -f "$DIR.failed"
  echo "blender-trixie: $v in $DIR (cached)"
  exit 0
fi
rm -f "$DIR.failed" "$READY"
start=$(date +%s)
mkdir -p "$(dirname "$DIR")"
free_mb=$(df -Pm "$(dirname "$DIR")" | awk 'NR==2 {print $4}')
[ "${free_mb:-0}" -ge 2500 ] || fail "needs about 2.5 GB free in $(dirname "$DIR"), has ${free_mb:-0} MB"

# 1. debootstrap from Debian, if missing.
if ! command -v debootstrap >/dev/null; then
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } \
    || fail "could not install debootstrap (apt-get failed: network?)"
fi

# 2. A minimal trixie. debootstrap deletes DIR/debootstrap when it finishes: a folder left without a finished
#    base is removed and built again (--one-file-system: never follow a mount into the host).
if [ -d "$DIR" ] && { [ -d "$DIR/debootstrap" ] || [ ! -x "$DIR/usr/bin/apt-get" ]; }; then
  # An interrupted debootstrap can leave DIR/proc or DIR/sys mounted: unmount before removing.
  grep -o " $DIR/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$DIR"
fi
if [ ! -x "$DIR/usr/bin/apt-get" ]; then
  timeout 600 debootstrap --variant=minbase trixie "$DIR" "$MIRROR" > "$DIR.debootstrap.log" 2>&1 \
    || fail "debootstrap trixie failed (network or disk?); last lines: $(tail -3 "$DIR.debootstrap.log" | tr '\n' ' ')"
  rm -f "$DIR.debootstrap.log"
fi

# 3. Blender and numpy (Blender's aud module imports it) inside, without recommends; Xvfb for the UI test.
cp /etc/resolv.conf "$DIR/etc/resolv.conf" 2>/dev/null || true
LIMIT=900 in_chroot sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends blender python3-numpy xvfb xauth && apt-get clean' \
  > "$DIR.apt.log" 2>&1 || fail "apt-get install blender in the trixie chroot failed; last lines: $(tail -3 "$DIR.apt.log" | tr '\n' ' ')"
rm -f "$DIR.apt.log"

# 4. Blender starts: mark the chroot ready.
v=$(blender_version) && [ -n "$v" ] || fail "blender does not start in $DIR"
touch "$READY"
echo "blender-trixie: $v in $DIR ($(du -sh --one-file-system "$DIR" | cut -f1), $(($(date +%s) - start)) s)"

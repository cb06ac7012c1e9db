#!/usr/bin/env bash
# Newer Blenders for the add-on's extension tests (test/blender_addon/addon-blender4.test.ts): Debian bookworm
# only ships Blender 3.4, so this builds a Debian chroot with debootstrap and installs Blender in it: trixie
# has 4.3, sid 5.x. Blender runs there with `chroot DIR blender -b …` (no /proc or bind mounts needed; it
# shares the host's network, so it reaches a daemon on the host's loopback).
#
#   bash .ci/blender-chroot.sh SUITE [DIR]     SUITE: trixie or sid; default DIR: /var/cache/vidprior-SUITE
#
# Idempotent: a finished chroot (marker DIR/.vidprior-ready-3) is only checked. Needs root. About 3 min and
# 1.4 GB on a fresh machine; its steps time out after 10 + 15 min at worst. On failure it exits non-zero, says
# why, and leaves the reason in DIR.failed (the test prints it when it skips).
set -euo pipefail
SUITE=${1:?usage: blender-chroot.sh trixie|sid [DIR]}
DIR=${2:-/var/cache/vidprior-$SUITE}
# The archive this machine uses, reused for the other suite (DEBIAN_MIRROR overrides it).
MIRROR=${DEBIAN_MIRROR:-$(bash "$(dirname "$0")/debian-mirror.sh")}
READY="$DIR/.vidprior-ready-3"   # bump when step 3 installs more
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

fail() {
  echo "blender-chroot $SUITE: FAILED: $*" >&2
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
  echo "blender-chroot $SUITE: $v in $DIR (cached)"
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

# 2. A minimal Debian $SUITE. debootstrap deletes DIR/debootstrap when it finishes: a folder left without a finished
#    base is removed and built again (--one-file-system: never follow a mount into the host).
if [ -d "$DIR" ] && { [ -d "$DIR/debootstrap" ] || [ ! -x "$DIR/usr/bin/apt-get" ]; }; then
  # An interrupted debootstrap can leave DIR/proc or DIR/sys mounted: unmount before removing.
  grep -o " $DIR/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$DIR"
fi
if [ ! -x "$DIR/usr/bin/apt-get" ]; then
  timeout 600 debootstrap --variant=minbase "$SUITE" "$DIR" "$MIRROR" > "$DIR.debootstrap.log" 2>&1 \
    || fail "debootstrap $SUITE failed (network or disk?); last lines: $(tail -3 "$DIR.debootstrap.log" | tr '\n' ' ')"
  rm -f "$DIR.debootstrap.log"
fi

# 3. Blender and numpy (Blender's aud module imports it) inside, without recommends; Xvfb for the UI test.
cp /etc/resolv.conf "$DIR/etc/resolv.conf" 2>/dev/null || true
# (Check-Valid-Until off: the workplace's Debian mirror can serve a sid Release file past its Valid-Until date.)
# Blender 5's own extensions add-on (bl_pkg) imports cattrs, requests and urllib3 at startup, which Debian's
# package does not pull in: python3-cattr and python3-requests where the suite has them.
LIMIT=900 in_chroot sh -c 'apt-get -o Acquire::Check-Valid-Until=false update -qq && apt-get install -y -qq --no-install-recommends blender python3-numpy xvfb xauth $(apt-cache show python3-cattr >/dev/null 2>&1 && echo python3-cattr python3-requests) && apt-get clean' \
  > "$DIR.apt.log" 2>&1 || fail "apt-get install blender in the $SUITE chroot failed; last lines: $(tail -3 "$DIR.apt.log" | tr '\n' ' ')"
rm -f "$DIR.apt.log"

# 4. Blender starts: mark the chroot ready.
v=$(blender_version) && [ -n "$v" ] || fail "blender does not start in $DIR"
touch "$READY"
echo "blender-chroot $SUITE: $v in $DIR ($(du -sh --one-file-system "$DIR" | cut -f1), $(($(date +%s) - start)) s)"

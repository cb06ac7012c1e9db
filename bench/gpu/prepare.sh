#!/usr/bin/env bash
# Prepares the GPU session (bench/gpu/session.sh) here: builds dist/, packs .gpu/ with ../shared/gpu/bundle.sh
# from a production-only node_modules (the dev tools, Biome's 97 MB binary first, would not fit), and checks
# that what the device call carries stays under its 64 MiB: tracked and untracked-not-ignored files, plus the
# carried .gpu and dist. Run it from the repo root of the checkout the device call sends (the lead's):
#
#   bash bench/gpu/prepare.sh
#   then: run(command="source .gpu/prelude.sh && bash bench/gpu/session.sh", carry=[".gpu", "dist"], timeout_s=600)
set -euo pipefail
ROOT=$(pwd)
[ -f package.json ] && [ -f bench/gpu/session.sh ] || { echo "prepare.sh: run it from the repo root" >&2; exit 2; }
BUNDLE=${BUNDLE:-$ROOT/../shared/gpu/bundle.sh}
[ -f "$BUNDLE" ] || { echo "prepare.sh: $BUNDLE not found (../shared/gpu/bundle.sh)" >&2; exit 2; }
LIMIT_MIB=64

# 1. dist/ (the device runs the compiled JavaScript: it has no TypeScript).
node scripts/build.mjs

# 2. A production-only node_modules in a staging folder (offline from npm's cache when it can), bundled there.
STAGE=$(mktemp -d /tmp/vidprior-gpu-stage.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
cp package.json package-lock.json "$STAGE"/
[ -f .npmrc ] && cp .npmrc "$STAGE"/
(cd "$STAGE" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
# ../shared/gpu/bundle.sh writes .gpu/ where it runs and notes it in .git/info/exclude; reuse what an earlier run fetched.
mkdir -p "$STAGE/.git/info" "$STAGE/.gpu/vulkan"
for f in node.xz node.version; do [ -f ".gpu/$f" ] && cp ".gpu/$f" "$STAGE/.gpu/"; done
compgen -G ".gpu/vulkan/*.deb" >/dev/null && cp .gpu/vulkan/*.deb "$STAGE/.gpu/vulkan/"
(cd "$STAGE" && bash "$BUNDLE")
grep -qx '/.gpu/' .gitignore 2>/dev/null || git check-ignore -q .gpu/x || echo '/.gpu/' >> "$(git rev-parse --git-path info/exclude)"
rm -rf .gpu && mv "$STAGE/.gpu" .gpu

# 3. What travels: the working tree git sends (tracked + untracked not ignored) and the carried folders.
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
gpu=$(du -sb .gpu | cut -f1)
built=$(du -sb dist | cut -f1)
total=$(( tree + gpu + built ))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "prepare.sh: working tree $(mib "$tree") MiB + .gpu $(mib "$gpu") MiB + dist $(mib "$built") MiB = $(mib "$total") MiB (limit $LIMIT_MIB MiB)"
du -b .gpu/* | sort -n | awk '{ printf "prepare.sh:   %7.1f MiB  %s\n", $1 / 1048576, $2 }'
if [ "$total" -ge $(( LIMIT_MIB * 1048576 )) ]; then
  echo "prepare.sh: too big for the device call" >&2
  exit 1
fi

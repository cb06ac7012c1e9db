#!/usr/bin/env bash
# Prints the Debian archive URI this machine's apt is configured with (deb822 .sources files first, then
# one-line sources.list entries), so that CI scripts reuse it for other suites and name no host themselves.
# Only entries for the main archive count (suites like bookworm, bookworm-updates; not -security, not
# third-party repositories): an entry is taken when its suite is the machine's codename.
# Exits 1 when none is found; callers then say so and stop.
set -euo pipefail
etc=${APT_ETC:-/etc/apt}   # tests point these elsewhere
codename=${DEBIAN_CODENAME:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$codename" ] || { echo "debian-mirror: /etc/os-release names no codename" >&2; exit 1; }
for f in "$etc"/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  # deb822: blank-line separated stanzas with URIs: and Suites: fields
  uri=$(awk -v want="$codename" '
    BEGIN { RS=""; FS="\n" }
    {
      uris=""; suites=""; types=""
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { uris=$i; sub(/^URIs:[ \t]*/, "", uris) }
        if ($i ~ /^Suites:/) { suites=$i; sub(/^Suites:[ \t]*/, "", suites) }
        if ($i ~ /^Types:/) { types=$i }
      }
      if (types !~ /deb( |$)/) next
      n = split(suites, s, /[ \t]+/)
      for (j = 1; j <= n; j++) if (s[j] == want) { split(uris, u, /[ \t]+/); print u[1]; exit }
    }' "$f")
  if [ -n "$uri" ]; then echo "$uri"; exit 0; fi
done
for f in "$etc"/sources.list "$etc"/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  uri=$(awk -v want="$codename" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == want) { print $i; exit } }' "$f")
  if [ -n "$uri" ]; then echo "$uri"; exit 0; fi
done
echo "debian-mirror: no apt source for suite $codename in $etc" >&2
exit 1

#!/usr/bin/env bash
# Print the Debian archive URI the host's apt sources name (the first
# non-security "URIs:" of a deb822 *.sources stanza, else the first non-security
# "deb" line of /etc/apt/sources.list, else deb.debian.org), without a trailing
# slash. GUEST_ARCHIVE_URI overrides it. Used by scripts/fetch-guest.sh (guest
# kernel) and scripts/build-rootfs.sh (Debian root filesystem), so both take
# packages from the same archive.
set -euo pipefail

if [ -n "${GUEST_ARCHIVE_URI:-}" ]; then
    echo "${GUEST_ARCHIVE_URI%/}"
    exit 0
fi
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk '
        BEGIN { RS=""; FS="\n" }
        {
            u=""; s=""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/)   { u = $i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u = a[1] }
                if ($i ~ /^Suites:/) { s = $i }
            }
            if (u != "" && s !~ /security/ && u !~ /security/) { print u; exit }
        }' "$f")
    [ -n "$uri" ] && break
done
if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" {
              for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { if ($i !~ /security/) { print $i; exit } }
          }' /etc/apt/sources.list)
fi
uri=${uri:-http://deb.debian.org/debian}
echo "${uri%/}"

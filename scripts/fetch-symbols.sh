#!/usr/bin/env bash
# Fetch the guest kernel's real System.map (docs/monitor.md): Debian's
# linux-image package ships only a stub ("The real System.map is in the
# linux-image-<version>-dbg package"), so this takes the map out of
# linux-image-<release>-dbg, the same version as build/guest/Image, with
# apt-get and the private apt state of scripts/fetch-guest.sh (the host's
# apt is never touched). The package is about 1 GB; only the map (4 MB) is
# kept. The kernel's BTF needs no download: Strata reads it from the
# kernel image in guest memory (__start_BTF..__stop_BTF).
#
# Produces: $OUT/System.map (default build/guest/System.map).
# Caching: nothing is fetched if $OUT/System.map exists and names the
# release in build/guest/kernel-release (its first line says which).
# Env: SYMBOLS_OUT (default build/guest), GUEST_DIR (default build/guest).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GUEST_DIR=${GUEST_DIR:-$ROOT/build/guest}
OUT=${SYMBOLS_OUT:-$GUEST_DIR}
APTDIR="$ROOT/.cache/apt"
die() { echo "fetch-symbols: ERROR: $*" >&2; exit 1; }

[ -s "$GUEST_DIR/kernel-release" ] || die "no $GUEST_DIR/kernel-release: run make guest first"
REL=$(cat "$GUEST_DIR/kernel-release")
MAP="$OUT/System.map"
if [ -s "$MAP" ] && [ -s "$MAP.release" ] && [ "$(cat "$MAP.release")" = "$REL" ]; then
    echo "fetch-symbols: $MAP is $REL's (cached)" >&2
    exit 0
fi
[ -f "$APTDIR/sources.list" ] || die "no private apt state in $APTDIR: run make guest first"
VER=$(awk -v p="linux-image-$REL" '$1 == p || $1 == p "-unsigned" { print $2; exit }' "$ROOT/.cache/guest/manifest" 2>/dev/null || true)
PKG="linux-image-$REL-dbg${VER:+=$VER}"
WORK=$(mktemp -d /tmp/strata-symbols.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/cache/archives/partial" "$OUT"
echo "fetch-symbols: downloading $PKG (about 1 GB) for its System.map" >&2
( cd "$WORK" && apt-get \
    -o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=/dev/null" \
    -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$WORK/cache" -o "Dir::State::Status=$APTDIR/status" \
    -o "APT::Architecture=riscv64" -o "APT::Architectures::=riscv64" -o "APT::Sandbox::User=root" \
    download "$PKG" >&2 ) || die "apt-get download $PKG failed"
deb=$(ls "$WORK"/*.deb)
# The map is near the start of the data archive: tar stops once it has it
# (dpkg-deb then complains of a broken pipe, which is expected).
dpkg-deb --fsys-tarfile "$deb" 2>/dev/null \
    | tar -x -C "$WORK" --occurrence=1 "./usr/lib/debug/boot/System.map-$REL" 2>/dev/null || true
[ -s "$WORK/usr/lib/debug/boot/System.map-$REL" ] || die "$deb has no usr/lib/debug/boot/System.map-$REL"
mv "$WORK/usr/lib/debug/boot/System.map-$REL" "$MAP.new"
mv "$MAP.new" "$MAP"
echo "$REL" >"$MAP.release"
echo "fetch-symbols: $MAP ($(wc -l <"$MAP") symbols)" >&2

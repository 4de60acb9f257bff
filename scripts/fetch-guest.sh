#!/usr/bin/env bash
# Fetch the Strata guest assets (Debian trixie riscv64 kernel, busybox-static
# and OpenSBI)
# with apt-get itself, using a PRIVATE apt state directory so the host's apt
# configuration and state are never touched.
#
# Produces, in build/guest/:
#   Image            the kernel (Debian's vmlinux-*, an EFI/PE image that also
#                    carries the RISC-V "Image" header; copied as-is)
#   fw_dynamic.bin   OpenSBI's generic fw_dynamic, from the suite's opensbi
#                    package (trixie: 1.6 or later; bookworm's 1.1 has a race
#                    in its HSM hart start, see below)
#   kernel-release   the kernel release string (e.g. 6.12.x+deb13-riscv64)
#   modules          symlink to the extracted /lib/modules/<release> tree
#   modules-dir      text file holding that tree's absolute path
#   initramfs.cpio   built by scripts/mkinitramfs.sh (uncompressed newc)
#
# Caching: the .deb files stay in .cache/guest/debs and their SHA256 (taken
# from the signed Packages index at download time) is kept in
# .cache/guest/manifest. A run that finds every .deb with the right hash works
# offline: no `apt-get update`, no network.
#
# Profiles (GUEST_PROFILE):
#   default   the above, from trixie: the guest every test boots
#   newer     Debian's newer kernel (7.x, from unstable or trixie-backports) in
#             build/guest-newer/ (Image, kernel-release, modules,
#             initramfs.cpio, and the default profile's fw_dynamic.bin), for
#             features 6.12 lacks (the RISC-V IOMMU driver); busybox and
#             OpenSBI come from the default profile, which must be fetched
#             first. Its own private apt state and cache (.cache/apt-newer,
#             .cache/guest-newer). If the pinned version has left the
#             archive, the newest kernel there is resolved and named.
#
# Environment:
#   GUEST_PROFILE     default | newer (default: default)
#   GUEST_REFRESH=1   ignore the cache manifest and resolve/download again
#   GUEST_SUITE       Debian suite of the default profile (default: trixie)
#   GUEST_NEWER_SUITE Debian suite of the newer profile (default: sid; or trixie-backports)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache"
PROFILE="${GUEST_PROFILE:-default}"
case "$PROFILE" in
    default)
        APTDIR="$CACHE/apt"; GCACHE="$CACHE/guest"; OUT="$ROOT/build/guest"
        SUITE="${GUEST_SUITE:-trixie}"; EXTRA_PKGS=(busybox-static opensbi) ;;
    newer)
        APTDIR="$CACHE/apt-newer"; GCACHE="$CACHE/guest-newer"; OUT="$ROOT/build/guest-newer"
        # unstable by default: on 2026-12-05 trixie-backports listed
        # 7.3.4-1~bpo13+1 in its index but the mirror answered 404 for the
        # .deb; GUEST_NEWER_SUITE=trixie-backports selects it where it works.
        SUITE="${GUEST_NEWER_SUITE:-sid}"; EXTRA_PKGS=() ;;
    *) echo "fetch-guest: ERROR: unknown GUEST_PROFILE '$PROFILE' (default or newer)" >&2; exit 1 ;;
esac
DEBS="$GCACHE/debs"
MANIFEST="$GCACHE/manifest"
ARCH=riscv64
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

die() { echo "fetch-guest: ERROR: $*" >&2; exit 1; }
log() { echo "fetch-guest ($PROFILE): $*" >&2; }

if [ "$PROFILE" = newer ]; then
    [ -f "$ROOT/build/guest/fw_dynamic.bin" ] && [ -d "$ROOT/.cache/guest/root" ] \
        || die "the newer profile takes OpenSBI and busybox from the default one: run scripts/fetch-guest.sh (make guest) first"
fi

for tool in apt-get apt-cache dpkg-deb sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found; run scripts/setup-host.sh first"
done

mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$DEBS" "$OUT"
: >>"$APTDIR/status"   # empty dpkg status: nothing "installed" for riscv64

# --- the archive URI: the same one the host's apt sources use -------------
URI=$("$ROOT/scripts/archive-uri.sh")
SRCLIST="$APTDIR/sources.list"
printf 'deb [arch=%s signed-by=%s] %s %s main\n' "$ARCH" "$KEYRING" "$URI" "$SUITE" >"$SRCLIST.new"
if ! cmp -s "$SRCLIST.new" "$SRCLIST" 2>/dev/null; then
    mv "$SRCLIST.new" "$SRCLIST"
    rm -f "$MANIFEST"   # a different archive/suite invalidates the cache
else
    rm -f "$SRCLIST.new"
fi

APT_OPTS=(
    -o "Dir::Etc::SourceList=$SRCLIST"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=/dev/null"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "Dir::State::Status=$APTDIR/status"
    -o "APT::Architecture=$ARCH"
    -o "APT::Architectures::=$ARCH"
    -o "APT::Sandbox::User=root"
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
)

# --- cache check -----------------------------------------------------------
# manifest line: <package> <version> <file> <sha256>
cache_ok() {
    [ -s "$MANIFEST" ] || return 1
    [ "${GUEST_REFRESH:-0}" = 1 ] && return 1
    local pkg ver file sum n=0
    while read -r pkg ver file sum; do
        [ -n "$pkg" ] || continue
        [ -f "$DEBS/$file" ] || { log "cache: $file missing"; return 1; }
        echo "$sum  $DEBS/$file" | sha256sum -c --quiet - >/dev/null 2>&1 \
            || { log "cache: $file has the wrong SHA256"; return 1; }
        n=$((n + 1))
    done <"$MANIFEST"
    [ "$n" -ge $((1 + ${#EXTRA_PKGS[@]})) ]   # the kernel (maybe split) and the extras
}

fetch_online() {
    [ -r "$KEYRING" ] || die "Debian archive keyring $KEYRING is missing (apt-get install debian-archive-keyring)"
    if [ ! -e /usr/share/keyrings/debian-archive-trixie-automatic.gpg ] && \
       ! { command -v gpg >/dev/null 2>&1 && gpg --show-keys "$KEYRING" 2>/dev/null | grep -q '13/trixie'; }; then
        die "the host's debian-archive-keyring has no Debian 13/trixie signing key; install a newer debian-archive-keyring (e.g. from bookworm-updates/backports) -- signature verification stays on"
    fi
    log "apt-get update ($URI $SUITE main, arch $ARCH, private state in $APTDIR)"
    local uplog="$APTDIR/update.log"
    if ! apt-get -q "${APT_OPTS[@]}" update >"$uplog" 2>&1 || grep -qE '^(E:|W: (GPG|The repository|Failed))' "$uplog"; then
        if grep -qE 'NO_PUBKEY|not signed|EXPKEYSIG|KEYEXPIRED|BADSIG' "$uplog"; then
            die "signature check of the $SUITE archive failed (key missing/expired in $KEYRING); see $uplog"
        fi
        die "cannot reach the Debian archive ($URI $SUITE) and no complete guest cache in $GCACHE; see $uplog"
    fi

    # Resolve the real, versioned kernel package behind the metapackage.
    local kpkg
    kpkg=$(apt-cache "${APT_OPTS[@]}" depends linux-image-riscv64 2>/dev/null \
        | awk '$1 ~ /Depends:/ && $2 ~ /^linux-image-[0-9].*-riscv64$/ { print $2; exit }')
    [ -n "$kpkg" ] || die "could not resolve linux-image-riscv64 to a versioned kernel package in $SUITE"
    log "linux-image-riscv64 -> $kpkg"
    if [ -s "$MANIFEST" ]; then
        local was
        was=$(awk 'NR == 1 { print $1 "=" $2 }' "$MANIFEST")
        case "$was" in "$kpkg="*) ;; *) log "the pinned kernel $was is no longer the archive's; now $kpkg" ;; esac
    fi

    # Newer Debian kernels (7.x) split the image package: the kernel proper
    # (/usr/lib/modules/<release>/vmlinuz), its modules, and the config and
    # module lists are in linux-binary-, linux-modules- and
    # linux-base-<release>, which linux-image-<release> depends on.
    local kparts
    kparts=$(apt-cache "${APT_OPTS[@]}" depends "$kpkg" 2>/dev/null \
        | awk -v rel="${kpkg#linux-image-}" '$1 ~ /Depends:/ && ($2 == "linux-binary-" rel || $2 == "linux-modules-" rel || $2 == "linux-base-" rel) { print $2 }' \
        | sort -u)
    [ -z "$kparts" ] || log "$kpkg is split: also $(echo $kparts)"

    local pkgs=("$kpkg" $kparts "${EXTRA_PKGS[@]}") pkg ver file sum tmp
    tmp="$MANIFEST.new"
    : >"$tmp"
    for pkg in "${pkgs[@]}"; do
        ver=$(apt-cache "${APT_OPTS[@]}" policy "$pkg" | awk '/Candidate:/ { print $2 }')
        [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no candidate version of $pkg for $ARCH in $SUITE"
        sum=$(apt-cache "${APT_OPTS[@]}" show "$pkg=$ver" | awk '/^SHA256:/ { print $2; exit }')
        file=$(apt-cache "${APT_OPTS[@]}" show "$pkg=$ver" | awk '/^Filename:/ { print $2; exit }')
        file=${file##*/}
        [ -n "$sum" ] && [ -n "$file" ] || die "Packages index has no SHA256/Filename for $pkg=$ver"
        if [ -f "$DEBS/$file" ] && echo "$sum  $DEBS/$file" | sha256sum -c --quiet - >/dev/null 2>&1; then
            log "have $file"
        else
            log "downloading $pkg=$ver"
            # apt-get download names the file with the epoch ("1%3a..."):
            # download into a scratch dir and store it under the pool name.
            rm -rf "$DEBS/.dl"; mkdir -p "$DEBS/.dl"
            (cd "$DEBS/.dl" && apt-get -q "${APT_OPTS[@]}" download "$pkg=$ver" >/dev/null) \
                || die "apt-get download $pkg=$ver failed (network/archive unreachable?)"
            set -- "$DEBS"/.dl/*.deb
            [ "$#" -eq 1 ] && [ -f "$1" ] || die "apt-get download of $pkg=$ver produced no single .deb"
            mv "$1" "$DEBS/$file"
            rm -rf "$DEBS/.dl"
            echo "$sum  $DEBS/$file" | sha256sum -c --quiet - >/dev/null 2>&1 \
                || die "SHA256 mismatch for $file (expected $sum from the signed Packages index)"
        fi
        echo "$pkg $ver $file $sum" >>"$tmp"
    done
    mv "$tmp" "$MANIFEST"
    # Drop stale .debs of older versions.
    local f keep
    for f in "$DEBS"/*.deb; do
        keep=0
        while read -r _ _ file _; do [ "$(basename "$f")" = "$file" ] && keep=1; done <"$MANIFEST"
        [ "$keep" = 1 ] || { log "removing stale $(basename "$f")"; rm -f "$f"; }
    done
}

if cache_ok; then
    log "using cached packages (offline): $(awk '{printf "%s=%s ", $1, $2}' "$MANIFEST")"
else
    fetch_online
fi

# --- extract ---------------------------------------------------------------
EXTRACT="$GCACHE/root"
STAMP="$GCACHE/extracted.stamp"
if ! cmp -s "$MANIFEST" "$STAMP" 2>/dev/null || [ ! -d "$EXTRACT" ]; then
    log "extracting into $EXTRACT"
    rm -rf "$EXTRACT"
    mkdir -p "$EXTRACT"
    while read -r _ _ file _; do
        dpkg-deb -x "$DEBS/$file" "$EXTRACT"
    done <"$MANIFEST"
    cp "$MANIFEST" "$STAMP"
fi

# --- kernel ----------------------------------------------------------------
kimg=""
for f in "$EXTRACT"/boot/vmlinux-*-riscv64 "$EXTRACT"/boot/vmlinuz-*-riscv64 "$EXTRACT"/usr/lib/modules/*-riscv64/vmlinuz; do
    [ -f "$f" ] && { kimg=$f; break; }
done
[ -n "$kimg" ] || die "no /boot/vmlinux-*-riscv64 (or /usr/lib/modules/*/vmlinuz) in the kernel package"
case "$kimg" in
    */vmlinuz) release=$(basename "$(dirname "$kimg")") ;;
    *) release=$(basename "$kimg"); release=${release#vmlinu?-} ;;
esac
[ -d "$EXTRACT/lib/modules/$release" ] || [ -d "$EXTRACT/usr/lib/modules/$release" ] \
    || die "no modules tree for $release in the kernel package"
# RISC-V Image header: magic2 "RSC\x05" at offset 0x38.
magic=$(dd if="$kimg" bs=1 skip=56 count=4 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ "$magic" = "52534305" ] || die "$kimg has no RISC-V Image header (magic at 0x38 is '$magic', want 52534305 'RSC\\x05')"
if ! cmp -s "$kimg" "$OUT/Image" 2>/dev/null; then cp "$kimg" "$OUT/Image"; fi
echo "$release" >"$OUT/kernel-release.new"
if cmp -s "$OUT/kernel-release.new" "$OUT/kernel-release" 2>/dev/null; then
    rm -f "$OUT/kernel-release.new"
else
    mv "$OUT/kernel-release.new" "$OUT/kernel-release"
fi
moddir="$EXTRACT/lib/modules/$release"
[ -d "$moddir" ] || moddir="$EXTRACT/usr/lib/modules/$release"
echo "$moddir" >"$OUT/modules-dir"
ln -sfn "$moddir" "$OUT/modules"

# --- firmware ---------------------------------------------------------------
if [ "$PROFILE" = newer ]; then
    [ "${release%%.*}" -ge 7 ] 2>/dev/null \
        || die "the newer profile wants a 7.x kernel; $SUITE has $release (try GUEST_NEWER_SUITE=sid)"
    cmp -s "$ROOT/build/guest/fw_dynamic.bin" "$OUT/fw_dynamic.bin" 2>/dev/null \
        || cp "$ROOT/build/guest/fw_dynamic.bin" "$OUT/fw_dynamic.bin"
    log "kernel $release -> $OUT/Image ($(stat -c %s "$OUT/Image") bytes)"
    [ "${FETCH_GUEST_NO_INITRAMFS:-0}" = 1 ] || GUEST_OUT="$OUT" "$ROOT/scripts/mkinitramfs.sh"
    exit 0
fi
# The suite's OpenSBI, not the host's: bookworm's 1.1 publishes a hart's
# START_PENDING state before the start address and argument, so a hart that
# polls the state (its WFI returns at once while an IPI is pending) can jump
# to a stale address; with harts on threads of their own that happened in
# about one 8-hart boot in fifteen. Later versions hand the start over with
# a ticket the waiting hart takes after seeing the state.
OPENSBI_FW="$EXTRACT/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
[ -f "$OPENSBI_FW" ] || die "no generic fw_dynamic.bin in the $SUITE opensbi package ($OPENSBI_FW)"
cmp -s "$OPENSBI_FW" "$OUT/fw_dynamic.bin" 2>/dev/null || cp "$OPENSBI_FW" "$OUT/fw_dynamic.bin"

log "kernel $release -> $OUT/Image ($(stat -c %s "$OUT/Image") bytes)"

# --- initramfs ---------------------------------------------------------------
if [ "${FETCH_GUEST_NO_INITRAMFS:-0}" != 1 ]; then
    "$ROOT/scripts/mkinitramfs.sh"
fi

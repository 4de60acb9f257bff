#!/usr/bin/env bash
# Build build/guest/initramfs.cpio (uncompressed newc) for the Strata guest:
#   /bin/busybox                 busybox-static (applet links made by /init)
#   /init                        guest/init, copied byte-for-byte
#   /lib/modules/<rel>/...       the modules of guest/modules.list (+ deps),
#                                decompressed (busybox insmod can't load .ko.xz)
#   /lib/modules/<rel>/modules.strata   "<name> <relpath> <deps in load order>"
#   /lib/modules/<rel>/modules.order    every packed module, in load order
#   /lib/modules/<rel>/modules.dep      rewritten for the packed (.ko) files
#   /lib/modules/<rel>/modules.builtin  names built into the kernel
# Needs scripts/fetch-guest.sh to have run (it calls this script at its end).
#
# Environment: GUEST_MODULES_LIST (default guest/modules.list)
#              GUEST_OUT (default build/guest; build/guest-newer for the
#              newer kernel profile, whose modules it packs with the same
#              busybox)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="${GUEST_OUT:-$ROOT/build/guest}"
GCACHE="$ROOT/.cache/guest"
LIST="${GUEST_MODULES_LIST:-$ROOT/guest/modules.list}"
INIT="$ROOT/guest/init"

die() { echo "mkinitramfs: ERROR: $*" >&2; exit 1; }
log() { echo "mkinitramfs: $*" >&2; }

[ -s "$OUT/kernel-release" ] && [ -s "$OUT/modules-dir" ] \
    || die "no guest kernel in $OUT; run scripts/fetch-guest.sh first"
REL=$(cat "$OUT/kernel-release")
MODSRC=$(cat "$OUT/modules-dir")
[ -d "$MODSRC" ] || die "modules tree $MODSRC is missing; run scripts/fetch-guest.sh"
BUSYBOX=""
for f in "$GCACHE/root/usr/bin/busybox" "$GCACHE/root/bin/busybox"; do
    [ -f "$f" ] && { BUSYBOX=$f; break; }
done
[ -n "$BUSYBOX" ] || die "busybox-static not extracted in $GCACHE/root; run scripts/fetch-guest.sh"
[ -f "$INIT" ] || die "$INIT is missing"
[ -f "$LIST" ] || die "$LIST is missing"
for tool in cpio xz zstd; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found; run scripts/setup-host.sh"
done

# Debian ships no modules.dep (depmod runs at install time): make it once.
if [ ! -s "$MODSRC/modules.dep" ] || [ "$MODSRC/modules.order" -nt "$MODSRC/modules.dep" ]; then
    DEPMOD=$(command -v depmod || echo /usr/sbin/depmod)
    [ -x "$DEPMOD" ] || die "depmod not found (apt-get install kmod; or run scripts/setup-host.sh)"
    base=${MODSRC%/lib/modules/$REL}
    log "running depmod for $REL"
    "$DEPMOD" -b "$base" "$REL" || die "depmod failed on $MODSRC"
fi

# Module name of a path/name: basename, no .ko*, '-' -> '_'. Sets $N (no fork).
norm() { N=${1##*/}; N=${N%%.ko*}; N=${N//-/_}; }

# --- module database from modules.dep / modules.builtin / softdep / alias ----
declare -A PATHOF DEPS BUILTIN
while IFS= read -r line; do
    mpath=${line%%:*}
    norm "$mpath"; name=$N
    PATHOF[$name]=$mpath
    d=""
    for dp in ${line#*:}; do norm "$dp"; d+=" $N"; done
    DEPS[$name]=$d
done <"$MODSRC/modules.dep"
while IFS= read -r b; do norm "$b"; BUILTIN[$N]=1; done <"$MODSRC/modules.builtin"

# "softdep <mod> pre: a b post: c": add the pre: ones (alias-resolved) as deps.
declare -A ALIAS
while read -r kw al mod; do
    [ "$kw" = alias ] || continue
    case "$al" in *'*'*|*'?'*|*'['*) continue ;; esac
    norm "$mod"
    [ -n "${ALIAS[$al]:-}" ] || ALIAS[$al]=$N
done <"$MODSRC/modules.alias"
if [ -f "$MODSRC/modules.softdep" ]; then
    while read -r kw mod rest; do
        [ "$kw" = softdep ] || continue
        norm "$mod"; mod=$N
        [ -n "${PATHOF[$mod]:-}" ] || continue
        inpre=0
        for w in $rest; do
            case "$w" in
                pre:) inpre=1; continue ;;
                post:) inpre=0; continue ;;
            esac
            [ "$inpre" = 1 ] || continue
            norm "$w"; t=${ALIAS[$w]:-$N}
            if [ -n "${PATHOF[$t]:-}" ]; then DEPS[$mod]+=" $t"; fi
        done
    done <"$MODSRC/modules.softdep"
fi

# --- resolve the host-side list ----------------------------------------------
declare -A SEEN
ORDER=()
visit() {   # depth-first: dependencies before dependents
    local m=$1 d
    [ -n "${SEEN[$m]:-}" ] && return 0
    SEEN[$m]=1
    for d in ${DEPS[$m]}; do visit "$d"; done
    ORDER+=("$m")
}
WANT=()
while read -r m _; do
    case "$m" in ''|'#'*) continue ;; esac
    norm "$m"; m=$N
    if [ -n "${BUILTIN[$m]:-}" ]; then
        log "module $m: built into the kernel (no file needed)"
    elif [ -n "${PATHOF[$m]:-}" ]; then
        WANT+=("$m")
        visit "$m"
    else
        log "WARNING: module $m does not exist in kernel $REL; skipped"
    fi
done <"$LIST"

# Per-module closure in load order (restricted view of the global DFS order).
closure() {
    local -A need=()
    local stack=("$1") m d
    while [ "${#stack[@]}" -gt 0 ]; do
        m=${stack[-1]}; unset 'stack[-1]'
        for d in ${DEPS[$m]}; do
            [ -n "${need[$d]:-}" ] || { need[$d]=1; stack+=("$d"); }
        done
    done
    local out=()
    for m in "${ORDER[@]}"; do [ -n "${need[$m]:-}" ] && out+=("$m"); done
    echo "${out[*]}"
}

# --- stage -------------------------------------------------------------------
STAGE="$OUT/initramfs-root"
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root,etc,mnt}
chmod 1777 "$STAGE/tmp"
cp "$BUSYBOX" "$STAGE/bin/busybox"
chmod 0755 "$STAGE/bin/busybox"
ln -s busybox "$STAGE/bin/sh"
cp "$INIT" "$STAGE/init"
chmod 0755 "$STAGE/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$STAGE/etc/passwd"
echo "root:x:0:" >"$STAGE/etc/group"
echo "strata" >"$STAGE/etc/hostname"

MDST="$STAGE/lib/modules/$REL"
mkdir -p "$MDST"
: >"$MDST/modules.strata"
: >"$MDST/modules.order"
: >"$MDST/modules.dep"
for m in "${ORDER[@]}"; do
    src="$MODSRC/${PATHOF[$m]}"
    rel=${PATHOF[$m]%.xz}; rel=${rel%.zst}; rel=${rel%.gz}
    mkdir -p "$(dirname "$MDST/$rel")"
    case "$src" in
        *.ko.xz)  xz -dc "$src" >"$MDST/$rel" ;;
        *.ko.zst) zstd -qdc "$src" >"$MDST/$rel" ;;
        *.ko.gz)  gzip -dc "$src" >"$MDST/$rel" ;;
        *.ko)     cp "$src" "$MDST/$rel" ;;
        *) die "unknown module file type: $src" ;;
    esac
    deps=$(closure "$m")
    echo "$m $rel${deps:+ $deps}" >>"$MDST/modules.strata"
    echo "$rel" >>"$MDST/modules.order"
    depfiles=""
    for d in $deps; do
        dr=${PATHOF[$d]%.xz}; dr=${dr%.zst}; dr=${dr%.gz}
        depfiles="$dr${depfiles:+ $depfiles}"   # modules.dep lists deps last-loaded-first
    done
    echo "$rel:${depfiles:+ $depfiles}" >>"$MDST/modules.dep"
done
sed 's/\.ko\.\(xz\|zst\|gz\)$/.ko/' "$MODSRC/modules.builtin" >"$MDST/modules.builtin"

log "modules packed (load order): ${ORDER[*]:-none}"

# --- archive -----------------------------------------------------------------
# Reproducible: sorted names, root-owned, fixed mtimes.
find "$STAGE" -exec touch -h -d @0 {} +
tmp="$OUT/initramfs.cpio.tmp"
(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible >"$tmp")
mv "$tmp" "$OUT/initramfs.cpio"
log "wrote $OUT/initramfs.cpio ($(stat -c %s "$OUT/initramfs.cpio") bytes, release $REL)"

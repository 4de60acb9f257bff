#!/usr/bin/env bash
# Build (once) a Debian trixie riscv64 root filesystem with systemd in an ext4
# image, for tests/systemd. Prints the image's path on stdout; everything else
# goes to stderr.
#
#   packages   guest/rootfs/packages on mmdebstrap's "apt" variant (Essential
#              plus apt), no Recommends, no man pages/locales/docs
#   modules    the guest kernel's own modules tree (build/guest/modules, from
#              the same linux-image .deb as build/guest/Image), depmod'ed in
#              the image, so udev loads modules after the initramfs hands over
#   overlay    guest/rootfs/overlay: strata-check.service (runs the test when
#              "strata.check" is on the kernel command line), root autologin on
#              ttyS0; /etc/fstab, hostname are written here (mmdebstrap leaves
#              /etc/machine-id empty: each boot makes up a transient one)
#   archive    the one the host's apt sources name (scripts/archive-uri.sh);
#              mmdebstrap keeps its own apt state inside the new root, so the
#              host's apt configuration is never touched
#
# Cache: $STRATA_CACHE (default /var/cache/strata), outside the checkout, so
# a second run -- or a fresh clone on the same machine -- reuses the image:
#   rootfs-<suite>-<key>.img         the image (sparse, $ROOTFS_SIZE)
#   rootfs-<suite>-<key>.img.info    build time, sizes, package versions
# <key> hashes every input: this script, the package list, the overlay, the
# kernel release, suite, architecture, archive and image size. Any change
# builds a new image; an old one is left for `rm` (it is named in the log).
# build/rootfs.img is a symlink to the current image.
#
# Needs root (mmdebstrap --mode=root, mke2fs -d keeps ownership); as another
# user it re-runs itself with sudo. Installs what is missing with apt-get
# (`apt-get update` first, once, only then): mmdebstrap, arch-test,
# qemu-user-static and binfmt-support (the riscv64 maintainer scripts run under
# qemu-user through binfmt_misc), e2fsprogs.
#
# Environment: STRATA_CACHE, ROOTFS_SUITE (trixie), ROOTFS_SIZE (1G),
#              ROOTFS_REBUILD=1 (build even if cached)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/scripts/build-rootfs.sh"
CACHE=${STRATA_CACHE:-/var/cache/strata}
SUITE=${ROOTFS_SUITE:-trixie}
SIZE=${ROOTFS_SIZE:-1G}
ARCH=riscv64
PKGLIST="$ROOT/guest/rootfs/packages"
OVERLAY="$ROOT/guest/rootfs/overlay"
GUEST="$ROOT/build/guest"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

die() { echo "build-rootfs: ERROR: $*" >&2; exit 1; }
log() { echo "build-rootfs: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "must run as root (mmdebstrap --mode=root, mke2fs -d) and sudo is not available"
    exec sudo --preserve-env=STRATA_CACHE,ROOTFS_SUITE,ROOTFS_SIZE,ROOTFS_REBUILD,GUEST_ARCHIVE_URI -- "$SELF" "$@"
fi

[ -s "$GUEST/kernel-release" ] && [ -s "$GUEST/modules-dir" ] \
    || die "no guest kernel in $GUEST; run scripts/fetch-guest.sh (make setup) first"
REL=$(cat "$GUEST/kernel-release")
MODSRC=$(cat "$GUEST/modules-dir")
[ -d "$MODSRC" ] || die "modules tree $MODSRC is missing; run scripts/fetch-guest.sh"
[ -f "$PKGLIST" ] || die "$PKGLIST is missing"
[ -d "$OVERLAY" ] || die "$OVERLAY is missing"
PACKAGES=$(sed 's/#.*//' "$PKGLIST" | tr -s ' \t\n' '\n' | grep . | sort -u | paste -sd, -)
[ -n "$PACKAGES" ] || die "$PKGLIST names no package"
URI=$("$ROOT/scripts/archive-uri.sh")

# --- the cache key: every input that changes the image -------------------------
KEY=$({
    sha256sum "$SELF" "$PKGLIST" | cut -d' ' -f1
    (cd "$OVERLAY" && find . \( -type f -o -type l \) | LC_ALL=C sort | while read -r f; do
        printf '%s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
    done)
    printf '%s\n' "$REL" "$SUITE" "$ARCH" "$URI" "$SIZE"
} | sha256sum | cut -c1-16)
IMG="$CACHE/rootfs-$SUITE-$KEY.img"

link_and_print() {
    mkdir -p "$ROOT/build"
    ln -sfn "$IMG" "$ROOT/build/rootfs.img"
    echo "$IMG"
}

mkdir -p "$CACHE"
if [ -s "$IMG" ] && [ -s "$IMG.info" ] && [ "${ROOTFS_REBUILD:-0}" != 1 ]; then
    log "cached: $IMG ($(grep -m1 '^built' "$IMG.info" || true))"
    link_and_print
    exit 0
fi

# One build at a time; a second caller waits, then finds the image cached.
exec 9>"$CACHE/.build-rootfs.lock"
flock 9
if [ -s "$IMG" ] && [ -s "$IMG.info" ] && [ "${ROOTFS_REBUILD:-0}" != 1 ]; then
    log "cached (built by another run meanwhile): $IMG"
    link_and_print
    exit 0
fi

# --- host tools ------------------------------------------------------------------
# package -> a file that proves it is installed
TOOLS=(
    "mmdebstrap:/usr/bin/mmdebstrap"
    "arch-test:/usr/bin/arch-test"
    "qemu-user-static:/usr/bin/qemu-riscv64-static"
    "binfmt-support:/usr/sbin/update-binfmts"
    "e2fsprogs:/sbin/mke2fs"
    "debian-archive-keyring:$KEYRING"
)
missing=()
for entry in "${TOOLS[@]}"; do
    [ -e "${entry#*:}" ] || missing+=("${entry%%:*}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install these by hand: ${missing[*]}"
    log "installing: ${missing[*]}"
    aptlog=$(mktemp)
    apt-get -o DPkg::Lock::Timeout=300 update >"$aptlog" 2>&1 \
        || die "apt-get update failed (no network/archive?), cannot install: ${missing[*]} (apt output: $aptlog)"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends \
        "${missing[@]}" >"$aptlog" 2>&1 \
        || die "cannot install ${missing[*]}: $(grep -m1 '^E:' "$aptlog" || echo 'apt-get install failed') (apt output: $aptlog)"
    rm -f "$aptlog"
fi

# riscv64 programs (the packages' maintainer scripts) run through qemu-user:
# binfmt_misc must be mounted and know riscv64 ELF files.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
        || die "binfmt_misc is not mounted and cannot be (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)"
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-riscv64 2>/dev/null; then
    update-binfmts --import qemu-riscv64 >/dev/null 2>&1 || true
    update-binfmts --enable qemu-riscv64 >/dev/null 2>&1 || true
fi
arch-test "$ARCH" >/dev/null 2>&1 \
    || die "this host cannot run $ARCH programs (qemu-user-static through binfmt_misc: see update-binfmts --display qemu-riscv64)"

# --- build -------------------------------------------------------------------------
WORK=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
BLOG="$WORK/mmdebstrap.log"
log "building $IMG: Debian $SUITE $ARCH from $URI, packages $PACKAGES, kernel modules $REL"
t0=$(date +%s.%N)

# Hooks run on the host with the new root as "$1"; chroot runs riscv64 tools.
hooks=(
    --customize-hook="mkdir -p \"\$1/usr/lib/modules\" && cp -a '$MODSRC' \"\$1/usr/lib/modules/$REL\""
    --customize-hook="chroot \"\$1\" depmod -a '$REL'"
    --customize-hook="sync-in '$OVERLAY' /"
    --customize-hook="chroot \"\$1\" systemctl enable strata-check.service"
    --customize-hook="echo strata > \"\$1/etc/hostname\""
    --customize-hook="printf '127.0.0.1\tlocalhost\n127.0.1.1\tstrata\n::1\tlocalhost ip6-localhost ip6-loopback\n' > \"\$1/etc/hosts\""
    --customize-hook="printf '/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n' > \"\$1/etc/fstab\""
    # Mark /etc and /var up to date with /usr, as a booted system would have:
    # otherwise every boot of a fresh copy reruns ldconfig.service and the
    # journal catalog rebuild (ConditionNeedsUpdate=), ~10% of the boot.
    --customize-hook="chroot \"\$1\" /usr/lib/systemd/systemd-update-done"
    --customize-hook="rm -f \"\$1\"/var/cache/apt/*.bin \"\$1\"/var/lib/apt/lists/*_Packages"
)
if ! mmdebstrap --mode=root --variant=apt --arch="$ARCH" --include="$PACKAGES" \
        --keyring="$KEYRING" \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        "${hooks[@]}" \
        "$SUITE" "$WORK/root" "deb [signed-by=$KEYRING] $URI $SUITE main" >"$BLOG" 2>&1; then
    cp "$BLOG" "$CACHE/build-rootfs-failed.log"
    die "mmdebstrap failed: $(grep -m1 -E '^(E:|mmdebstrap: error)' "$BLOG" || tail -n 1 "$BLOG") (log: $CACHE/build-rootfs-failed.log)"
fi
t1=$(date +%s.%N)

# ext4 straight from the tree (no loop device): inode tables and journal
# zeroed now, so the guest's kernel has no lazy-init work in the background.
rm -f "$WORK/root.img"
mke2fs -q -t ext4 -L strata-root -d "$WORK/root" -E lazy_itable_init=0,lazy_journal_init=0 \
    "$WORK/root.img" "$SIZE" >"$WORK/mke2fs.log" 2>&1 \
    || die "mke2fs -d failed: $(tail -n 1 "$WORK/mke2fs.log")"
e2fsck -fn "$WORK/root.img" >"$WORK/e2fsck.log" 2>&1 \
    || die "the new image does not pass e2fsck -fn: $(tail -n 1 "$WORK/e2fsck.log")"
t2=$(date +%s.%N)

{
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "built in %.0f s (mmdebstrap %.0f s, mke2fs %.0f s)\n", c - a, b - a, c - b }'
    echo "date $(date -u +%FT%TZ)"
    echo "suite $SUITE arch $ARCH archive $URI kernel $REL"
    echo "image size $(stat -c %s "$WORK/root.img") bytes, $(du -k "$WORK/root.img" | cut -f1) KiB allocated"
    echo "tree $(du -sk "$WORK/root" | cut -f1) KiB (modules $(du -sk "$WORK/root/usr/lib/modules" | cut -f1) KiB), $(dpkg-query --admindir="$WORK/root/var/lib/dpkg" -W | wc -l) packages"
    echo "packages:"
    dpkg-query --admindir="$WORK/root/var/lib/dpkg" -W -f='  ${Package} ${Version}\n'
} >"$WORK/root.img.info"
mv "$WORK/root.img.info" "$IMG.info.tmp"
mv "$WORK/root.img" "$IMG"
mv "$IMG.info.tmp" "$IMG.info"
chmod 0644 "$IMG" "$IMG.info"
log "$(head -n 1 "$IMG.info"); $(sed -n 4p "$IMG.info")"
for old in "$CACHE"/rootfs-*.img; do
    [ "$old" = "$IMG" ] || log "note: older image $old is no longer used (rm it to free space)"
done
link_and_print

#!/usr/bin/env bash
# Build tpm_tis.ko (and the tpm_tis_core.ko it was versioned against) for the
# guest kernel, which Debian builds without it (CONFIG_TCG_TIS is not set in
# linux-image-6.12.117+deb13-riscv64; only tpm_tis_core and tpm_tis_spi are
# modules), so that Linux binds Strata's tcg,tpm-tis-mmio TPM
# (docs/attestation.md).
#
# From Debian's own packages of the same kernel version, pinned by version and
# SHA-256 (fetched with apt-get and the private apt state of
# scripts/fetch-guest.sh):
#   linux-source-6.12        the kernel source, unchanged
#   linux-headers-<rel>      Debian's .config and Module.symvers
# Debian's .config with CONFIG_TCG_TIS=m, `make modules_prepare`, then
# `make M=drivers/char/tpm modules`, cross-compiled with the host's
# riscv64-linux-gnu-gcc, KERNELRELEASE = the guest kernel's release (so the
# vermagic matches). tpm_tis_core.ko is rebuilt with it and used instead of
# Debian's: the symbol CRCs this compiler computes for tpm_tis_core's exports
# differ from Debian's gcc-14 ones, and tpm_tis.ko is versioned against the
# former (Debian's tpm_tis_core is refused: "disagrees about version of
# symbol tpm_tis_core_init"). Everything both import from the kernel itself
# is checked against Debian's Module.symvers. The modules are unsigned: Debian's kernel loads them and
# marks itself tainted (CONFIG_MODULE_SIG_FORCE is not set).
#
# Output: .cache/tpm-module/<rel>/{tpm_tis.ko,tpm_tis_core.ko}; a second run
# does nothing. The source tree is built in a temporary directory and removed.
# Needs: flex, bison, bc, libssl-dev, gcc-riscv64-linux-gnu (scripts/setup-host.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache"
APTDIR="$CACHE/apt"
OUT_BASE="$CACHE/tpm-module"

die() { echo "build-tpm-module: ERROR: $*" >&2; exit 1; }
log() { echo "build-tpm-module: $*" >&2; }

[ -s "$ROOT/build/guest/kernel-release" ] || die "no guest kernel; run scripts/fetch-guest.sh (make setup) first"
REL=$(cat "$ROOT/build/guest/kernel-release")
OUT="$OUT_BASE/$REL"
if [ -s "$OUT/tpm_tis.ko" ] && [ -s "$OUT/tpm_tis_core.ko" ]; then
    echo "$OUT"
    exit 0
fi

# The packages of this kernel version: package=version sha256.
case "$REL" in
    6.12.117+deb13-riscv64)
        PKGS=(
            "linux-source-6.12=6.12.117-1 9141325315c7f1eca682113d185a8c77c82814aa6e32f7e127e61d6106403835"
            "linux-headers-6.12.117+deb13-riscv64=6.12.117-1 3637a6ff130922ca196fb3589778d211ef1b5a4679a9c42596b4399467b5b6c0"
        ) ;;
    *) die "no pinned kernel source for guest kernel $REL: add its linux-source and linux-headers versions and SHA-256 here" ;;
esac

for tool in apt-get dpkg-deb sha256sum make flex bison bc riscv64-linux-gnu-gcc; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found; run scripts/setup-host.sh"
done
[ -f /usr/include/openssl/ssl.h ] || die "OpenSSL headers missing (libssl-dev); run scripts/setup-host.sh"
[ -s "$APTDIR/sources.list" ] || die "no private apt state in $APTDIR; run scripts/fetch-guest.sh first"

APT_OPTS=(
    -o "Dir::Etc::SourceList=$APTDIR/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=/dev/null"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "Dir::State::Status=$APTDIR/status"
    -o "APT::Architecture=riscv64"
    -o "APT::Architectures::=riscv64"
    -o "APT::Sandbox::User=root"
)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-tpm-module.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
for entry in "${PKGS[@]}"; do
    spec=${entry%% *} sum=${entry#* }
    log "downloading $spec"
    (cd "$WORK" && apt-get -q "${APT_OPTS[@]}" download "$spec" >/dev/null) || die "apt-get download $spec failed"
    deb=$(ls "$WORK"/"${spec%%=*}"_*.deb)
    echo "$sum  $deb" | sha256sum -c --quiet - || die "SHA-256 mismatch for $deb (pinned $sum)"
    dpkg-deb -x "$deb" "$WORK/pkgs"
    rm -f "$deb"
done

HDR="$WORK/pkgs/usr/src/linux-headers-$REL"
[ -s "$HDR/.config" ] && [ -s "$HDR/Module.symvers" ] || die "linux-headers-$REL has no .config/Module.symvers"
log "extracting the kernel source"
tar -xJf "$WORK/pkgs/usr/src/linux-source-6.12.tar.xz" -C "$WORK" \
    --exclude='linux-source-6.12/Documentation' --exclude='linux-source-6.12/tools/testing'
SRC="$WORK/linux-source-6.12"
# Kconfig sources Documentation/Kconfig (documentation checks only).
mkdir -p "$SRC/Documentation" && : >"$SRC/Documentation/Kconfig"
cp "$HDR/.config" "$HDR/Module.symvers" "$SRC/"
MAKE=(make -C "$SRC" ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu- KERNELRELEASE="$REL" -j"$(nproc)")
"$SRC/scripts/config" --file "$SRC/.config" --module TCG_TIS
log "configuring and preparing (a minute or two)"
"${MAKE[@]}" olddefconfig >"$WORK/build.log" 2>&1 || { tail -n 20 "$WORK/build.log" >&2; die "olddefconfig failed"; }
grep -qx 'CONFIG_TCG_TIS=m' "$SRC/.config" || die "CONFIG_TCG_TIS=m did not survive olddefconfig"
"${MAKE[@]}" modules_prepare >>"$WORK/build.log" 2>&1 || { tail -n 20 "$WORK/build.log" >&2; die "modules_prepare failed"; }
"${MAKE[@]}" M=drivers/char/tpm modules >>"$WORK/build.log" 2>&1 || { tail -n 20 "$WORK/build.log" >&2; die "building drivers/char/tpm failed"; }
mkdir -p "$OUT.new"
cp "$SRC/drivers/char/tpm/tpm_tis.ko" "$SRC/drivers/char/tpm/tpm_tis_core.ko" "$OUT.new/"
rm -rf "$OUT" && mv "$OUT.new" "$OUT"
log "built $OUT/tpm_tis.ko and tpm_tis_core.ko"
echo "$OUT"

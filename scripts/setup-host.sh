#!/usr/bin/env bash
# Install the host tools Strata's build, guest assets and tests need.
# Idempotent: does nothing (and needs no network) when everything is present;
# runs `apt-get update` only if a package is missing.
set -euo pipefail

die() { echo "setup-host: ERROR: $*" >&2; exit 1; }

# Debian package -> a file/command that proves it is installed (checked first,
# so a machine that has the tool from elsewhere is not "fixed" by apt).
PKGS=(
    "qemu-system-misc:/usr/bin/qemu-system-riscv64"
    "opensbi:/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
    "gcc-riscv64-unknown-elf:/usr/bin/riscv64-unknown-elf-gcc"
    "gcc-riscv64-linux-gnu:/usr/bin/riscv64-linux-gnu-gcc"
    "libc6-dev-riscv64-cross:/usr/riscv64-linux-gnu/include/stdio.h"
    "binutils-riscv64-linux-gnu:/usr/bin/riscv64-linux-gnu-objdump"
    "e2fsprogs:/sbin/mke2fs"
    "cpio:/usr/bin/cpio"
    "xz-utils:/usr/bin/xz"
    "zstd:/usr/bin/zstd"
    "kmod:/usr/bin/kmod"
    "hyperfine:/usr/bin/hyperfine"
    "gdb-multiarch:/usr/bin/gdb-multiarch"
    "device-tree-compiler:/usr/bin/dtc"
    "debian-archive-keyring:/usr/share/keyrings/debian-archive-keyring.gpg"
    "ca-certificates:/etc/ssl/certs/ca-certificates.crt"
    "make:/usr/bin/make"
    "jq:/usr/bin/jq"
    # softfloat-sys (the FPU's reference IEEE implementation) builds with CMake.
    "cmake:/usr/bin/cmake"
    # tests/virtio: host side of the guest agent and sockets (python3), the
    # network namespace and TAP (iproute2), setsid (util-linux).
    "python3:/usr/bin/python3"
    "iproute2:/sbin/ip"
    "util-linux:/usr/bin/setsid"
    # tests/stream: a real HTTP server for streamed disks, run as the test's own
    # process on a loopback port (the package's own service is not used).
    "nginx:/usr/sbin/nginx"
    # tests/api: the control API through its Unix socket.
    "curl:/usr/bin/curl"
    # tests/tpm: the software TPM behind --tpm swtpm (swtpm-tools: swtpm_setup).
    "swtpm:/usr/bin/swtpm"
    "swtpm-tools:/usr/bin/swtpm_setup"
    # scripts/build-tpm-module.sh: tpm_tis.ko from Debian's kernel source.
    "flex:/usr/bin/flex"
    "bison:/usr/bin/bison"
    "bc:/usr/bin/bc"
    "libssl-dev:/usr/include/openssl/ssl.h"
)

missing=()
for entry in "${PKGS[@]}"; do
    pkg=${entry%%:*}
    file=${entry#*:}
    if [ -e "$file" ]; then continue; fi
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then continue; fi
    missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup-host: installing: ${missing[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
        SUDO=sudo
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install these by hand: ${missing[*]}"
    log=$(mktemp)
    if ! $SUDO apt-get -o DPkg::Lock::Timeout=300 update >"$log" 2>&1; then
        die "apt-get update failed (no network/archive?), cannot install: ${missing[*]} (apt output: $log)"
    fi
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
        die "cannot install: ${missing[*]} ($(grep -m1 '^E:' "$log" || echo 'apt-get install failed'); apt output: $log)"
    fi
    rm -f "$log"
fi

# The trixie guest is fetched with signature checks on: the keyring must know
# Debian 13's keys (bookworm's debian-archive-keyring >= 2023.3+deb12u1 does).
if [ ! -e /usr/share/keyrings/debian-archive-trixie-automatic.gpg ]; then
    die "debian-archive-keyring has no Debian 13/trixie key; upgrade debian-archive-keyring (bookworm >= 2023.3+deb12u1)"
fi

command -v cargo >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo" ] \
    || die "cargo (Rust toolchain) not found; install it (rustup, or apt-get install cargo) and put it on PATH"

echo "setup-host: all host tools present" >&2

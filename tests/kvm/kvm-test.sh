#!/usr/bin/env bash
# KVM test: Linux's own KVM (Debian's kvm.ko) running a VS-mode payload on the
# machine's H extension (Privileged 20211203 ch. 8).
#
#   1. builds tests/kvm/guest (bare-metal VS-mode payload) and tests/kvm/kvm-test.c
#      (a minimal VMM, riscv64-linux-gnu-gcc -static, payload embedded);
#   2. packs /kvm-test into a second cpio archive appended to the default
#      initramfs (Linux unpacks concatenated newc archives in order), so the
#      main initramfs is not rebuilt;
#   3. boots the default guest kernel with strata.modules=kvm and runs
#      /kvm-test, which creates a VM with 3 memory slots and checks the
#      payload's SBI calls, MMIO, page faults, interrupts and dirty log;
#   4. checks: clean power-off, kvm.ko initialised, /dev/kvm present,
#      "KVM-TEST PASS", no "KVM-TEST FAIL", command exit 0.
#
# Usage: tests/kvm/kvm-test.sh [--machine qemu|strata] [--smp N] [--timeout SECS]
# Env:   MACHINE (strata), SMP (2), BOOT_TIMEOUT (900), STRATA_BIN
#        (target/release/strata), QEMU_BIN (qemu-system-riscv64), QEMU_CPU
#        (rv64,h=true), CC_RISCV (riscv64-linux-gnu-gcc), KVM_TEST_VERBOSE=1,
#        STRATA_EXTRA_ARGS (more strata flags, e.g. --stats for scripts/bench-kvm.sh)
# Logs:  build/test/kvm-<machine>.log
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.  A
# machine without the H extension FAILS here (kvm.ko refuses to load): this
# test never skips.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/kvm"
MACHINE=${MACHINE:-strata}
SMP=${SMP:-2}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-900}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
QEMU_CPU=${QEMU_CPU:-rv64,h=true}
CC=${CC_RISCV:-riscv64-linux-gnu-gcc}
OBJCOPY=${OBJCOPY_RISCV:-riscv64-linux-gnu-objcopy}
while [ $# -gt 0 ]; do
    case "$1" in
        --machine) MACHINE=$2; shift 2 ;;
        --machine=*) MACHINE=${1#*=}; shift ;;
        --smp) SMP=$2; shift 2 ;;
        --smp=*) SMP=${1#*=}; shift ;;
        --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
        --timeout=*) BOOT_TIMEOUT=${1#*=}; shift ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "kvm-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$MACHINE" in
    qemu|strata) ;;
    *) echo "kvm-test: unknown machine '$MACHINE' (qemu|strata)" >&2; exit 2 ;;
esac
case "$SMP" in
    [1-8]) ;;
    *) echo "kvm-test: --smp must be 1..8 (got '$SMP')" >&2; exit 2 ;;
esac

GUEST="$ROOT/build/guest"
LOGDIR="$ROOT/build/test"
WORK="$ROOT/build/test/kvm-$MACHINE"
LOG="$LOGDIR/kvm-$MACHINE.log"
mkdir -p "$LOGDIR"
rm -rf "$WORK"
mkdir -p "$WORK/root"

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"

# --- preconditions: each is a counted failure, never a skip ---------------
require_guest "$GUEST" fw_dynamic.bin Image initramfs.cpio
for t in "$CC" "$OBJCOPY" cpio; do
    command -v "$t" >/dev/null 2>&1 || { fail "$t not found (run: scripts/setup-host.sh)"; finish; }
done
[ -f /usr/riscv64-linux-gnu/include/linux/kvm.h ] ||
    { fail "no RISC-V linux/kvm.h (install libc6-dev-riscv64-cross / linux-libc-dev-riscv64-cross)"; finish; }
case "$MACHINE" in
    qemu)   command -v "$QEMU_BIN" >/dev/null 2>&1 || { fail "$QEMU_BIN not found (run: scripts/setup-host.sh)"; finish; } ;;
    strata) [ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; } ;;
esac

# --- build the payload and the VMM ------------------------------------------
GFLAGS=(-march=rv64gc -mabi=lp64 -mcmodel=medany -mno-relax -ffreestanding -fno-builtin
        -fno-stack-protector -fno-pic -nostdlib -nostartfiles -static -no-pie -O2 -Wall -Werror
        -Wl,--no-relax -Wl,--build-id=none -T "$HERE/guest/guest.ld")
if ! "$CC" "${GFLAGS[@]}" -o "$WORK/guest.elf" "$HERE/guest/start.S" "$HERE/guest/guest.c" \
        >"$WORK/build.log" 2>&1 ||
   ! "$OBJCOPY" -O binary "$WORK/guest.elf" "$WORK/guest.bin" >>"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"; fail "cannot build the guest payload (tests/kvm/guest)"; finish
fi
if ! "$CC" -static -O2 -Wall -Werror -I"$HERE" -DGUEST_BIN="\"$WORK/guest.bin\"" \
        -o "$WORK/root/kvm-test" "$HERE/kvm-test.c" "$HERE/payload.S" >>"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"; fail "cannot build tests/kvm/kvm-test.c"; finish
fi
pass "built kvm-test ($(stat -c %s "$WORK/root/kvm-test") bytes, payload $(stat -c %s "$WORK/guest.bin") bytes)"

# --- initramfs = default archive + appended archive with /kvm-test -----------
(cd "$WORK/root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible >"$WORK/extra.cpio")
cat "$GUEST/initramfs.cpio" "$WORK/extra.cpio" >"$WORK/initramfs-kvm.cpio"

# --- boot ---------------------------------------------------------------------
GCMD='if [ -c /dev/kvm ]; then echo KVM-DEV-PRESENT; else echo KVM-DEV-MISSING; fi; /kvm-test'
[ "${KVM_TEST_VERBOSE:-}" = 1 ] && GCMD="export KVM_TEST_VERBOSE=1; $GCMD"
# QEMU 7.2's known departures (tests/kvm/README.md) are noted, not failed;
# never for Strata.
[ "$MACHINE" = qemu ] && GCMD="export KVM_TEST_QEMU_DEPARTURES=1; $GCMD"
APPEND="console=ttyS0 panic=-1 strata.modules=kvm strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)"
case "$MACHINE" in
    qemu)
        CMD=("$QEMU_BIN" -M virt -cpu "$QEMU_CPU" -smp "$SMP" -m 512M
             -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
             -initrd "$WORK/initramfs-kvm.cpio" -append "$APPEND"
             -display none -monitor none -serial stdio -no-reboot) ;;
    strata)
        # Virtual time: the nested guest's timers are a function of the
        # work done, not of how loaded the host is (deterministic runs).
        CMD=("$STRATA_BIN" machine --clock virtual --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
             --initrd "$WORK/initramfs-kvm.cpio" --append "$APPEND" -m 512M --smp "$SMP"
             ${STRATA_EXTRA_ARGS:-}) ;;
esac
{ printf '#'; printf ' %q' "${CMD[@]}"; echo; } >"$LOG"
echo "== kvm-test on $MACHINE smp=$SMP (timeout ${BOOT_TIMEOUT}s, log $LOG)"
set +e
timeout --kill-after=10 "$BOOT_TIMEOUT" "${CMD[@]}" </dev/null >>"$LOG" 2>&1
RC=$?
set -e
out=$(tr -d '\r' <"$LOG")

# --- verdict ---------------------------------------------------------------
tag="kvm-test $MACHINE"
if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
    fail "$tag: timed out after ${BOOT_TIMEOUT}s"
elif [ "$RC" -ne 0 ]; then
    fail "$tag: exit status $RC (want 0 = clean power-off)"
elif ! grep -q 'reboot: Power down' <<<"$out"; then
    fail "$tag: exit status 0 but no 'reboot: Power down'"
else
    pass "$tag: clean power-off"
fi
grep -q 'STRATA-GUEST-READY' <<<"$out" && pass "$tag: guest booted to /init" ||
    fail "$tag: no STRATA-GUEST-READY (last lines: $(tail -n 3 <<<"$out" | tr '\n' '|'))"
if grep -q 'strata-init: FAILED to load module kvm' <<<"$out"; then
    why=$(grep -m1 -E 'kvm[^a-z_].*(not available|require|error|fail)' <<<"$out" || true)
    fail "$tag: kvm.ko did not load${why:+: $why} (the machine must advertise 'h' in the DT ISA string and implement the H extension)"
elif grep -qE 'kvm( \[[0-9]+\])?: hypervisor extension available' <<<"$out"; then
    pass "$tag: kvm.ko initialised ($(grep -oE 'kvm( \[[0-9]+\])?: (using|highest) .*G-stage.*' <<<"$out" | head -n 1))"
else
    fail "$tag: kvm.ko never said 'hypervisor extension available'"
fi
grep -qx 'KVM-DEV-PRESENT' <<<"$out" && pass "$tag: /dev/kvm exists" || fail "$tag: /dev/kvm is missing"
nfails=$(grep -c '^KVM-TEST FAIL' <<<"$out" || true)
if [ "$nfails" -gt 0 ]; then
    fail "$tag: $nfails KVM-TEST FAIL line(s):"
    grep '^KVM-TEST FAIL' <<<"$out" | head -n 30 | sed 's/^/      /'
fi
if line=$(grep -m1 -E '^KVM-TEST PASS [0-9]+ checks$' <<<"$out"); then
    pass "$tag: $line"
else
    fail "$tag: no 'KVM-TEST PASS' line"
fi
grep '^KVM-TEST known QEMU departure' <<<"$out" | sed 's/^/NOTE: /' || true
grep -qE 'STRATA-CMD-EXIT 0$' <<<"$out" && pass "$tag: /kvm-test exit status 0" ||
    fail "$tag: guest command: $(grep -o 'STRATA-CMD-EXIT.*' <<<"$out" || echo 'no STRATA-CMD-EXIT')"
finish

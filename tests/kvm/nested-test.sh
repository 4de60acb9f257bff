#!/usr/bin/env bash
# Nested Linux guest: inside the Strata guest, tests/kvm/nested/vmm.c (a
# minimal KVM VMM: one vCPU, RAM, a generated device tree, an initrd, SBI
# DBCN console) boots the same Debian kernel Image as a KVM guest; its /init
# (tests/kvm/nested/init.c) prints NESTED-GUEST-OK through /dev/kmsg and
# powers off through SBI SRST.
#
# Usage: tests/kvm/nested-test.sh [--machine qemu|strata] [--timeout SECS]
#                                  [--preempt NS]
# --preempt NS: run tests/kvm/nested/waker.c beside the VMM in the outer
#        guest, waking every NS ns, so that the VMM's vCPU thread is
#        preempted all the time, also inside kvm.ko's run loop.
# The outer machine has no Sstc (Strata --cpu rv64gc, QEMU sstc=false): with
# Sstc, kvm.ko (Debian's 6.12) can lose a guest's SBI set_timer when the vCPU
# thread is scheduled out before the guest runs again, and a nested Linux
# then never gets another timer interrupt (tests/kvm/README.md, "kvm.ko's
# Sstc timer race").
# Env:   MACHINE (strata), BOOT_TIMEOUT (1800), STRATA_BIN, QEMU_BIN,
#        QEMU_CPU (rv64,h=true,sstc=false), CC_RISCV, NESTED_MEM_MB (256),
#        NESTED_PREEMPT_NS (the same as --preempt), NESTED_CPU (Strata's
#        --cpu, rv64gc; NESTED_CPU=default gives kvm.ko Sstc, and with
#        --preempt the race then hangs the nested guest)
# Logs:  build/test/kvm-nested-<machine>.log (-preempt.log with --preempt);
#        TEST_LOGDIR puts them elsewhere
# Env:   STRATA_EXTRA_ARGS (more strata flags, e.g. --stats for scripts/bench-kvm.sh)
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure (a
# machine without the H extension fails: kvm.ko does not load).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/kvm"
MACHINE=${MACHINE:-strata}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-1800}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
QEMU_CPU=${QEMU_CPU:-rv64,h=true,sstc=false}
CC=${CC_RISCV:-riscv64-linux-gnu-gcc}
NESTED_MEM_MB=${NESTED_MEM_MB:-256}
NESTED_PREEMPT_NS=${NESTED_PREEMPT_NS:-}
NESTED_CPU=${NESTED_CPU:-rv64gc}
while [ $# -gt 0 ]; do
    case "$1" in
        --machine) MACHINE=$2; shift 2 ;;
        --machine=*) MACHINE=${1#*=}; shift ;;
        --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
        --timeout=*) BOOT_TIMEOUT=${1#*=}; shift ;;
        --preempt) NESTED_PREEMPT_NS=$2; shift 2 ;;
        --preempt=*) NESTED_PREEMPT_NS=${1#*=}; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "nested-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$MACHINE" in
    qemu|strata) ;;
    *) echo "nested-test: unknown machine '$MACHINE' (qemu|strata)" >&2; exit 2 ;;
esac

case "$NESTED_PREEMPT_NS" in
    '') SUFFIX= ;;
    *[!0-9]*|0) echo "nested-test: --preempt takes a number of nanoseconds, not '$NESTED_PREEMPT_NS'" >&2; exit 2 ;;
    *) SUFFIX=-preempt ;;
esac

GUEST="$ROOT/build/guest"
LOGDIR=${TEST_LOGDIR:-$ROOT/build/test}
WORK="$LOGDIR/kvm-nested-$MACHINE$SUFFIX"
LOG="$LOGDIR/kvm-nested-$MACHINE$SUFFIX.log"
mkdir -p "$LOGDIR"
rm -rf "$WORK"
mkdir -p "$WORK/root/nested" "$WORK/nroot"

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"

require_guest "$GUEST" fw_dynamic.bin Image initramfs.cpio kernel-release
for t in "$CC" cpio; do
    command -v "$t" >/dev/null 2>&1 || { fail "$t not found (run: scripts/setup-host.sh)"; finish; }
done
case "$MACHINE" in
    qemu)   command -v "$QEMU_BIN" >/dev/null 2>&1 || { fail "$QEMU_BIN not found"; finish; } ;;
    strata) [ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; } ;;
esac
REL=$(cat "$GUEST/kernel-release")

if ! "$CC" -static -O2 -Wall -Werror -o "$WORK/root/kvm-nested" "$HERE/nested/vmm.c" >"$WORK/build.log" 2>&1 ||
   ! "$CC" -static -O2 -Wall -Werror -o "$WORK/nroot/init" "$HERE/nested/init.c" >>"$WORK/build.log" 2>&1 ||
   ! "$CC" -static -O2 -Wall -Werror -o "$WORK/root/waker" "$HERE/nested/waker.c" >>"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"; fail "cannot build tests/kvm/nested"; finish
fi
(cd "$WORK/nroot" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible >"$WORK/root/nested/initrd.cpio")
cp "$GUEST/Image" "$WORK/root/nested/Image"
(cd "$WORK/root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible >"$WORK/extra.cpio")
cat "$GUEST/initramfs.cpio" "$WORK/extra.cpio" >"$WORK/initramfs-nested.cpio"
pass "built kvm-nested and the nested initrd"

GCMD="export KVM_NESTED_MEM_MB=$NESTED_MEM_MB; /kvm-nested /nested/Image /nested/initrd.cpio"
if [ -n "$NESTED_PREEMPT_NS" ]; then
    # The waker starts first and is stopped after the VMM; the VMM's exit
    # status is what STRATA-CMD-EXIT reports.
    GCMD="/waker $NESTED_PREEMPT_NS & $GCMD; rc=\$?; kill %1; exit \$rc"
fi
APPEND="console=ttyS0 panic=-1 strata.modules=kvm strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)"
case "$MACHINE" in
    qemu)
        CMD=("$QEMU_BIN" -M virt -cpu "$QEMU_CPU" -smp 1 -m 1G
             -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
             -initrd "$WORK/initramfs-nested.cpio" -append "$APPEND"
             -display none -monitor none -serial stdio -no-reboot) ;;
    strata)
        # Virtual time (deterministic), as in kvm-test.sh.
        CMD=("$STRATA_BIN" machine --cpu "$NESTED_CPU" --clock virtual --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
             --initrd "$WORK/initramfs-nested.cpio" --append "$APPEND" -m 1G --smp 1
             ${STRATA_EXTRA_ARGS:-}) ;;
esac
{ printf '#'; printf ' %q' "${CMD[@]}"; echo; } >"$LOG"
echo "== nested Linux under KVM on $MACHINE (timeout ${BOOT_TIMEOUT}s, log $LOG)"
t0=$(date +%s)
set +e
timeout --kill-after=10 "$BOOT_TIMEOUT" "${CMD[@]}" </dev/null >>"$LOG" 2>&1
RC=$?
set -e
secs=$(( $(date +%s) - t0 ))
out=$(tr -d '\r' <"$LOG")

tag="nested $MACHINE${NESTED_PREEMPT_NS:+ --preempt $NESTED_PREEMPT_NS}"
if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
    fail "$tag: timed out after ${BOOT_TIMEOUT}s"
elif [ "$RC" -ne 0 ] || ! grep -q 'reboot: Power down' <<<"$out"; then
    fail "$tag: outer machine exit status $RC (want a clean power-off)"
else
    pass "$tag: outer clean power-off (${secs}s in all)"
fi
if grep -qE 'kvm( \[[0-9]+\])?: hypervisor extension available' <<<"$out"; then
    pass "$tag: kvm.ko initialised"
else
    fail "$tag: kvm.ko did not initialise ($(grep -m1 -E 'kvm[^a-z_].*not available' <<<"$out" || echo 'no kvm line'))"
fi
nested=$(awk '/^KVM-NESTED start/ { on = 1 } on' <<<"$out")
grep -q '^KVM-NESTED start' <<<"$out" && pass "$tag: VMM started the vCPU" || fail "$tag: the VMM did not start"
grep -q "Linux version $REL" <<<"$nested" && pass "$tag: nested kernel banner (Linux $REL)" ||
    fail "$tag: no nested kernel banner"
want="NESTED-GUEST-OK release=$REL machine=riscv64 cpus=1 sum=333338333350000"
grep -qF "$want" <<<"$nested" && pass "$tag: nested user space ran ($want)" ||
    fail "$tag: no '$want' (last lines: $(tail -n 4 <<<"$nested" | tr '\n' '|'))"
grep -qE '^KVM-NESTED EXIT system-event 1 ' <<<"$nested" && pass "$tag: nested guest shut down through SBI SRST" ||
    fail "$tag: $(grep -o 'KVM-NESTED EXIT.*' <<<"$nested" || echo 'no KVM-NESTED EXIT line')"
grep -qE 'STRATA-CMD-EXIT 0$' <<<"$out" && pass "$tag: VMM exit status 0" ||
    fail "$tag: $(grep -o 'STRATA-CMD-EXIT.*' <<<"$out" || echo 'no STRATA-CMD-EXIT')"
finish

#!/usr/bin/env bash
# Cost of Linux KVM on Strata (tests/kvm), on QEMU and on Strata: the KVM
# test (boot the default guest, load kvm.ko, run the VMM and its VS-mode
# payload, power off) and the nested run (the same, but KVM boots Debian's
# kernel to user space in a VM), with Strata's TLB and two-stage walk
# statistics for each.
#
# Env: RUNS (1), MACHINES ("qemu strata"), NESTED (1: also the nested run)
# Output: build/bench/kvm-summary.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-1}
MACHINES=${MACHINES:-"qemu strata"}
NESTED=${NESTED:-1}
OUT="$ROOT/build/bench"
mkdir -p "$OUT"
declare -A SECS
TESTS="kvm"
[ "$NESTED" = 1 ] && TESTS="kvm nested"
for t in $TESTS; do
    for m in $MACHINES; do
        total=0
        for _ in $(seq "$RUNS"); do
            t0=$(date +%s.%N)
            STRATA_EXTRA_ARGS=--stats "$ROOT/tests/kvm/$t-test.sh" --machine "$m" >"$OUT/$t-$m.out" 2>&1 \
                || { cat "$OUT/$t-$m.out"; echo "bench-kvm: ERROR: tests/kvm/$t-test.sh failed on $m" >&2; exit 1; }
            t1=$(date +%s.%N)
            total=$(awk -v a="$total" -v b="$t0" -v c="$t1" 'BEGIN { print a + c - b }')
        done
        SECS[$t-$m]=$(awk -v t="$total" -v n="$RUNS" 'BEGIN { printf "%.1f", t / n }')
    done
done
log_of() { if [ "$1" = kvm ]; then echo "$ROOT/build/test/kvm-strata.log"; else echo "$ROOT/build/test/kvm-nested-strata.log"; fi; }
{
    for t in $TESTS; do
        if [ "$t" = kvm ]; then
            echo "Linux KVM test (boot, kvm.ko, VMM + VS payload, power-off), mean of $RUNS run(s):"
        else
            echo "nested Linux under KVM (boot, kvm.ko, VMM boots Debian's kernel in a VM, power-off), mean of $RUNS run(s):"
        fi
        for m in $MACHINES; do printf '  %-7s %7s s\n' "$m" "${SECS[$t-$m]}"; done
        if [ -n "${SECS[$t-qemu]:-}" ] && [ -n "${SECS[$t-strata]:-}" ]; then
            awk -v s="${SECS[$t-strata]}" -v q="${SECS[$t-qemu]}" 'BEGIN { printf "  ratio strata/qemu: %.2f\n", s / q }'
        fi
        if [ -n "${SECS[$t-strata]:-}" ]; then
            echo "  Strata's counters for that run:"
            grep -E "two-stage|tlb by address space|fences" "$(log_of "$t")" | sed 's/^/    /'
        fi
    done
} | tee "$OUT/kvm-summary.txt"

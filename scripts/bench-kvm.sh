#!/usr/bin/env bash
# Cost of Linux KVM on Strata (tests/kvm): the whole KVM test (boot the
# default guest, load kvm.ko, run the VMM and its VS-mode payload, power
# off) timed on QEMU and on Strata, and Strata's two-stage walk statistics
# for that run.
#
# Env: RUNS (1), MACHINES ("qemu strata")
# Output: build/bench/kvm-summary.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-1}
MACHINES=${MACHINES:-"qemu strata"}
OUT="$ROOT/build/bench"
mkdir -p "$OUT"
declare -A SECS
for m in $MACHINES; do
    total=0
    for _ in $(seq "$RUNS"); do
        t0=$(date +%s.%N)
        STRATA_EXTRA_ARGS=--stats "$ROOT/tests/kvm/kvm-test.sh" --machine "$m" >"$OUT/kvm-$m.out" 2>&1 \
            || { cat "$OUT/kvm-$m.out"; echo "bench-kvm: ERROR: the KVM test failed on $m" >&2; exit 1; }
        t1=$(date +%s.%N)
        total=$(awk -v a="$total" -v b="$t0" -v c="$t1" 'BEGIN { print a + c - b }')
    done
    SECS[$m]=$(awk -v t="$total" -v n="$RUNS" 'BEGIN { printf "%.1f", t / n }')
done
{
    echo "Linux KVM test (boot, kvm.ko, VMM + VS payload, power-off), mean of $RUNS run(s):"
    for m in $MACHINES; do printf '  %-7s %7s s\n' "$m" "${SECS[$m]}"; done
    if [ -n "${SECS[qemu]:-}" ] && [ -n "${SECS[strata]:-}" ]; then
        awk -v s="${SECS[strata]}" -v q="${SECS[qemu]}" 'BEGIN { printf "  ratio strata/qemu: %.2f\n", s / q }'
    fi
    if [ -n "${SECS[strata]:-}" ]; then
        echo "  Strata's counters for that run:"
        grep -E "two-stage|tlb by address space|fences" "$ROOT/build/test/kvm-strata.log" | sed 's/^/    /'
    fi
} | tee "$OUT/kvm-summary.txt"

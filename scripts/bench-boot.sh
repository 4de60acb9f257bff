#!/usr/bin/env bash
# Boot benchmark: boots the default guest kernel+initramfs to power-off (guest
# command `true`) with hyperfine on QEMU, on Strata's bare board (`strata
# machine`, under OpenSBI) and under Strata's hypervisor (`strata run`, the
# same kernel as a VM), in one run; prints each median, the ratios
# strata/qemu and run/machine, and Strata's instructions per second.
#
# Env: MACHINES   "qemu strata strata-run" (default); any subset, and
#                 "strata-nojit" (Strata with its JIT off, --no-jit)
#      SMP        guest CPUs (default 1)
#      RUNS       hyperfine runs per machine (default 5), WARMUP (default 1)
#      PAIRS      interleaved machine/run pairs for the hypervisor ratio (10)
#      CLOCK      Strata's --clock (default host, the default of strata itself,
#                 like QEMU's guest time; virtual for time from instructions)
#      STRATA_BIN (default target/release/strata), QEMU_BIN (qemu-system-riscv64)
# Output: build/bench/boot-<machine>.json (hyperfine --export-json),
#         build/bench/boot-summary.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MACHINES=${MACHINES:-"qemu strata strata-run"}
SMP=${SMP:-1}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
CLOCK=${CLOCK:-host}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
GUEST="$ROOT/build/guest"
OUT="$ROOT/build/bench"

die() { echo "bench-boot: ERROR: $*" >&2; exit 1; }

command -v hyperfine >/dev/null 2>&1 || die "hyperfine not found (run scripts/setup-host.sh)"
command -v jq >/dev/null 2>&1 || die "jq not found (run scripts/setup-host.sh)"
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
for m in $MACHINES; do
    case "$m" in
        qemu)   command -v "$QEMU_BIN" >/dev/null 2>&1 || die "$QEMU_BIN not found (run scripts/setup-host.sh)" ;;
        strata|strata-run|strata-nojit) [ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first" ;;
        *) die "unknown machine '$m' (qemu|strata|strata-run|strata-nojit)" ;;
    esac
done
mkdir -p "$OUT"

APPEND='console=ttyS0 panic=-1 strata.cmd=true'
q() { printf '%q ' "$@"; }
cmd_for() {
    case "$1" in
        qemu)   q "$QEMU_BIN" -M virt -smp "$SMP" -m 512M -bios "$GUEST/fw_dynamic.bin" \
                  -kernel "$GUEST/Image" -initrd "$GUEST/initramfs.cpio" -append "$APPEND" \
                  -display none -monitor none -serial stdio -no-reboot ;;
        strata) q "$STRATA_BIN" machine --clock "$CLOCK" --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" \
                  --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 512M --smp "$SMP" ;;
        strata-nojit) q "$STRATA_BIN" machine --clock "$CLOCK" --no-jit --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" \
                  --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 512M --smp "$SMP" ;;
        strata-run) q "$STRATA_BIN" run --clock "$CLOCK" --kernel "$GUEST/Image" \
                  --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 512M --smp "$SMP" ;;
    esac
}

declare -A MEDIAN MIPS
for m in $MACHINES; do
    cmd=$(cmd_for "$m")
    json="$OUT/boot-$m.json"
    echo "== $m (smp=$SMP, $RUNS runs): $cmd"
    # A boot must end in a clean power-off (exit 0): hyperfine fails otherwise.
    hyperfine --runs "$RUNS" --warmup "$WARMUP" --shell bash --output null \
        --command-name "$m" --export-json "$json" "$cmd" \
        || die "$m: boot failed (non-zero exit); try: tests/boot/boot-test.sh --machine strata"
    MEDIAN[$m]=$(jq -r '.results[0].median' "$json")
    if [ "$m" != qemu ]; then
        # One more boot for the counters (not timed by hyperfine).
        MIPS[$m]=$(eval "$cmd --stats" </dev/null 2>&1 >/dev/null | sed -n 's/.* \([0-9.]*\) MIPS$/\1/p' | head -n 1)
    fi
done

# The host's speed drifts (shared VMs): for the hypervisor-over-board ratio,
# also time the two interleaved, pair by pair, and take the median ratio.
PAIRS=${PAIRS:-10}
PAIRED=""
if [[ " $MACHINES " == *" strata "* && " $MACHINES " == *" strata-run "* ]]; then
    ratios=()
    for _ in $(seq "$PAIRS"); do
        t0=$(date +%s%N); eval "$(cmd_for strata)" </dev/null >/dev/null 2>&1 || die "strata: boot failed"
        t1=$(date +%s%N); eval "$(cmd_for strata-run)" </dev/null >/dev/null 2>&1 || die "strata-run: boot failed"
        t2=$(date +%s%N)
        ratios+=("$(awk -v a=$((t1 - t0)) -v b=$((t2 - t1)) 'BEGIN { printf "%.4f", b / a }')")
    done
    PAIRED=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m }')
fi

{
    echo "boot to power-off, median of $RUNS runs (smp=$SMP, strata --clock $CLOCK):"
    for m in $MACHINES; do
        printf '  %-10s %8.3f s%s\n' "$m" "${MEDIAN[$m]}" "${MIPS[$m]:+   (${MIPS[$m]} MIPS)}"
    done
    if [ -n "${MEDIAN[qemu]:-}" ] && [ -n "${MEDIAN[strata]:-}" ]; then
        awk -v s="${MEDIAN[strata]}" -v q="${MEDIAN[qemu]}" 'BEGIN { printf "  ratio strata/qemu: %.2f\n", s / q }'
    fi
    if [ -n "${MEDIAN[strata-run]:-}" ] && [ -n "${MEDIAN[strata]:-}" ]; then
        awk -v r="${MEDIAN[strata-run]}" -v s="${MEDIAN[strata]}" 'BEGIN { printf "  ratio strata-run/strata (hypervisor over bare board): %.2f\n", r / s }'
    fi
    if [ -n "$PAIRED" ]; then
        echo "  ratio strata-run/strata, median of $PAIRS interleaved pairs: $PAIRED"
    fi
} | tee "$OUT/boot-summary.txt"

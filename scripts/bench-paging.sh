#!/usr/bin/env bash
# Paging modes side by side (docs/hypervisor.md "Paging modes",
# docs/benchmarks.md): the same Debian guest under `strata run --paging
# nested` and `--paging shadow`, one VM with one vCPU, and on the bare
# board under OpenSBI (`strata machine`, the native baseline: no
# hypervisor, single-stage walks), for two workloads:
#   boot   — boot to the shell, run `uname -a`, power off;
#   spawn  — boot, then fork and exec /bin/true $SPAWN times (process-heavy:
#            every exec builds and tears down an address space);
#   tlb    — boot, then tests/hyp/tlbstress.c (built here, static, with
#            riscv64-linux-gnu-gcc): $TLB_STEPS random read-modify-writes
#            over $TLB_MIB MiB, far beyond the TLB's reach; its checksum
#            must be the same in every mode.
# Each run once (no loops); from its --stats: wall time, guest instructions
# retired, TLB misses, page-table walks with PTEs read per walk (mean and
# max; the runner reports no maximum for single-stage walks, so native's
# is "-"), exits to the hypervisor, and for shadow the shadow counters.
#
# Env:    STRATA_BIN (target/release/strata), SPAWN (500), TLB_MIB (64),
#         TLB_STEPS (2000000), CC_LINUX (riscv64-linux-gnu-gcc), RUN_TIMEOUT (900),
#         WORKLOADS ("boot spawn tlb"), MODES ("native nested shadow"): a
#         subset, for a paired before/after of one change; BENCH_OUT
#         (build/bench): where the summary and logs go
# Output: build/bench/paging-summary.txt, logs build/bench/paging-*.log
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
SPAWN=${SPAWN:-500}
TLB_MIB=${TLB_MIB:-64}
TLB_STEPS=${TLB_STEPS:-2000000}
CC_LINUX=${CC_LINUX:-riscv64-linux-gnu-gcc}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
GUEST="$ROOT/build/guest"
OUT=${BENCH_OUT:-$ROOT/build/bench}
WORKLOADS=${WORKLOADS:-boot spawn tlb}
MODES=${MODES:-native nested shadow}
die() { echo "bench-paging: ERROR: $*" >&2; exit 1; }
[ -x "$STRATA_BIN" ] || die "$STRATA_BIN not found (run: make build)"
[ -s "$GUEST/Image" ] || die "missing $GUEST/Image (run: make setup)"
mkdir -p "$OUT"
command -v "$CC_LINUX" >/dev/null 2>&1 || die "$CC_LINUX not found (run: scripts/setup-host.sh)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The default initramfs plus an appended archive with /bin/tlbstress
# (Linux unpacks concatenated newc archives in order).
mkdir -p "$WORK/root/bin"
"$CC_LINUX" -static -O2 -o "$WORK/root/bin/tlbstress" "$ROOT/tests/hyp/tlbstress.c" || die "cannot build tlbstress"
(cd "$WORK/root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible >"$WORK/extra.cpio")
cat "$GUEST/initramfs.cpio" "$WORK/extra.cpio" >"$WORK/initramfs.cpio"

declare -A CMD=(
    [boot]='uname -a'
    [spawn]="i=0; while [ \$i -lt $SPAWN ]; do /bin/true; i=\$((i+1)); done; echo SPAWNED \$i"
    [tlb]="/bin/tlbstress $TLB_MIB $TLB_STEPS"
)
SUM=

row() {   # row WORKLOAD MODE: runs it, prints one table row
    local w=$1 mode=$2 log="$OUT/paging-$1-$2.log"
    set +e
    local how=(run --paging "$mode")
    [ "$mode" != native ] || how=(machine --bios "$GUEST/fw_dynamic.bin")
    timeout --kill-after=10 "$RUN_TIMEOUT" "$STRATA_BIN" "${how[@]}" --kernel "$GUEST/Image" \
        --initrd "$WORK/initramfs.cpio" -m 256M --smp 1 --stats \
        --append "console=ttyS0 panic=-1 strata.cmd=\"${CMD[$w]}\"" </dev/null >"$log" 2>&1
    local rc=$?
    set -e
    [ "$rc" -eq 0 ] || die "$w under --paging $mode: exit status $rc (see $log)"
    grep -q '^STRATA-CMD-EXIT 0' "$log" || die "$w under --paging $mode: the command failed (see $log)"
    if [ "$w" = tlb ]; then
        local sum
        sum=$(sed -n 's/^TLBSTRESS \([0-9]*\).*/\1/p' "$log" | tr -d '\r')
        [ -n "$sum" ] || die "tlb under $mode: no checksum (see $log)"
        [ -z "$SUM" ] || [ "$sum" = "$SUM" ] || die "tlb under $mode: checksum $sum, $SUM in the first mode"
        SUM=$sum
    fi
    local wall insns misses walks reads max exits
    wall=$(sed -n 's/^strata: wall time \([0-9.]*\) s, \([0-9]*\) instructions.*/\1/p' "$log")
    insns=$(sed -n 's/^strata: wall time [0-9.]* s, \([0-9]*\) instructions.*/\1/p' "$log")
    misses=$(sed -n 's/.*tlb misses fetch \([0-9]*\) load \([0-9]*\) store \([0-9]*\).*/\1 \2 \3/p' "$log" \
        | awk '{ s += $1 + $2 + $3 } END { print s + 0 }')
    # Walks: single-stage plus two-stage (with hgatp Bare, a VS-stage walk
    # is counted as two-stage by the hart but reads no G-stage entries).
    walks=$(sed -n 's/.*walks single-stage \([0-9]*\) (PTE reads \([0-9]*\)).* two-stage \([0-9]*\) (PTE reads \([0-9]*\).*max \([0-9]*\)).*/\1 \2 \3 \4 \5/p' "$log" \
        | awk '{ w += $1 + $3; r += $2 + $4; t += $3; if ($5 > m) m = $5 } END { printf "%d %d %s", w, r, t ? m : "-" }')
    read -r walks reads max <<<"$walks"
    exits=$(sed -n 's/.*vcpu0 ran [0-9]* exits \([0-9]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$exits" ] || exits=-
    local extra=""
    if [ "$mode" = shadow ]; then
        extra=$(sed -n 's/^vm vm0 paging shadow: //p' "$log")
    fi
    printf '  %-6s %-7s %8.2fs %14s %11s %11s %6.2f %4s %10s  %s\n' "$w" "$mode" "$wall" "$insns" "$misses" \
        "$walks" "$(awk -v r="$reads" -v w="$walks" 'BEGIN { print (w ? r / w : 0) }')" "$max" "$exits" "$extra"
}

{
    echo "paging modes: Debian guest, 1 hart or vCPU, 256 MiB, host clock; commit $(cd "$ROOT" && git rev-parse --short HEAD)"
    printf '  %-6s %-7s %9s %14s %11s %11s %6s %4s %10s\n' workld mode wall "guest insns" "tlb misses" walks \
        "PTE/w" max exits
    for w in $WORKLOADS; do
        for mode in $MODES; do
            row "$w" "$mode"
        done
    done
} | tee "$OUT/paging-summary.txt"

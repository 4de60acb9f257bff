#!/usr/bin/env bash
# Monitor benchmark (issue 18, docs/monitor.md): what watching a guest from
# outside costs it. Boots the default guest kernel+initramfs on `strata
# machine` with a busy workload (LOOPS short processes, then power-off),
# PAIRS times each mode, interleaved:
#   plain    --api-sock (one host thread, as every mode here)
#   hooks    + --system-map: monitor hooks attached (satp/stvec published
#            each round), no check running
#   int100   + --monitor integrity,interval=100ms
#   int10    + --monitor integrity,interval=10ms
#   int10off + --monitor integrity,interval=10ms,retry=off
# Prints the median wall time of each, its ratio to plain, and the
# monitor's rounds, retries and violations (its summary line on stderr).
# Then the cost of a write watch per guest store (crates/memory example
# watch_cost). Times vary with the host's load: compare ratios of one run.
#
# Env: PAIRS (default 3), LOOPS (default 150), STRATA_BIN, SYSTEM_MAP
#      (default build/guest/System.map: scripts/fetch-symbols.sh)
# Output: build/bench/monitor-summary.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAIRS=${PAIRS:-3}
LOOPS=${LOOPS:-150}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GUEST="$ROOT/build/guest"
MAP=${SYSTEM_MAP:-$GUEST/System.map}
OUT="$ROOT/build/bench"
mkdir -p "$OUT"
die() { echo "bench-monitor: ERROR: $*" >&2; exit 1; }
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
[ -s "$MAP" ] || die "missing $MAP (run: scripts/fetch-symbols.sh)"
[ -x "$STRATA_BIN" ] || die "no $STRATA_BIN (run: make build)"

WORK=$(mktemp -d /tmp/strata-bench-monitor.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
LOAD="i=0; while [ \$i -lt $LOOPS ]; do /bin/busybox true; i=\$((i+1)); done"
base=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
      --initrd "$GUEST/initramfs.cpio" --append "console=ttyS0 panic=-1 strata.cmd=\"$LOAD\"" -m 256M
      --api-sock "$WORK/api.sock")

# boot MODE: prints the wall time and the monitor's summary numbers.
boot() {
    local mode=$1 t0 t1
    local cmd=("${base[@]}")
    case "$mode" in
        plain) ;;
        hooks) cmd+=(--system-map "$MAP") ;;
        int100) cmd+=(--system-map "$MAP" --monitor integrity,interval=100ms) ;;
        int10) cmd+=(--system-map "$MAP" --monitor integrity,interval=10ms) ;;
        int10off) cmd+=(--system-map "$MAP" --monitor integrity,interval=10ms,retry=off) ;;
    esac
    t0=$(date +%s.%N)
    "${cmd[@]}" </dev/null >"$WORK/$mode.log" 2>&1 || die "$mode: strata failed ($(tail -n 2 "$WORK/$mode.log"))"
    t1=$(date +%s.%N)
    grep -q 'STRATA-CMD-EXIT 0' "$WORK/$mode.log" || die "$mode: the workload did not finish"
    local summary
    summary=$(sed -n 's/.*strata: monitor: integrity .*: \([0-9]*\) rounds, \([0-9]*\) retries.*, \([0-9]*\) given up, \([0-9]*\) violations/\1 \2 \3 \4/p' "$WORK/$mode.log")
    awk -v a="$t0" -v b="$t1" -v s="${summary:-0 0 0 0}" 'BEGIN { printf "%.3f %s\n", b - a, s }'
}

MODES=(plain hooks int100 int10 int10off)
declare -A times stats
for i in $(seq "$PAIRS"); do
    for mode in "${MODES[@]}"; do
        read -r t r q g v < <(boot "$mode")
        times[$mode]+="$t "
        stats[$mode]+="$r/$q/$g/$v "
        echo "run $i $mode: ${t}s (rounds/retries/given-up/violations $r/$q/$g/$v)" >&2
    done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
{
    echo "bench-monitor: $PAIRS runs per mode, $LOOPS short processes, commit $(git -C "$ROOT" rev-parse --short HEAD)"
    plain=$(echo "${times[plain]}" | median)
    for mode in "${MODES[@]}"; do
        m=$(echo "${times[$mode]}" | median)
        awk -v n="$mode" -v m="$m" -v p="$plain" -v s="${stats[$mode]}" \
            'BEGIN { printf "%-9s median %7.3f s  x%.3f of plain  rounds/retries/given-up/violations per run: %s\n", n, m, m / p, s }'
    done
    echo "write watch, per 8-byte store (crates/memory/examples/watch_cost.rs):"
    (cd "$ROOT" && cargo run --release -q -p strata-memory --example watch_cost) | sed 's/^/  /'
} | tee "$OUT/monitor-summary.txt"

#!/usr/bin/env bash
# Real-time latency beside Linux (issue 22; docs/realtime.md). The real-time
# guest (tests/rt/rtguest.c; 1 vCPU, real-time on hart 0, tasks every 1, 2
# and 5 ms) under `strata run` on 2 harts:
#
#   alone         no other VM (the floor: what the host's thread wake-ups cost)
#   POLICY idle   beside Linux (2 vCPUs) that has booted and sleeps; the
#                 real-time guest records only after a warm-up (WARMUP_MS)
#                 that covers Linux's boot
#   POLICY load   beside Linux booting and then running a CPU-bound job
#                 (shell arithmetic, ITERS iterations); Linux's throughput is
#                 the job's iterations per second of its own clock (host time)
#
# for POLICY in dedicated, share, migrate. Latency is the guest's own
# measure: `time` at its trap entry minus the deadline it programmed, in
# host time (clock host); p50/p99/p99.9/max in microseconds. Each row is the
# median of REPS runs (per column). The move cost is the hypervisor's
# (`--stats`: host ns per real-time move: unload, queue change, load with
# HFENCE.GVMA of the VMID).
#
# Env: REPS (3), ITERS (150000), WARMUP_MS (30000), DURATION_MS (6000),
#      PERIOD_US (1000), POLICIES ("dedicated share migrate"),
#      RUN_TIMEOUT (900), STRATA_BIN, CC_RISCV, BENCH_OUT (build/bench)
# Output: build/bench/rt.txt (the table), build/bench/rt-<row>-<rep>.log
# Exit status: 1 if a run failed (a VM did not power off, a check failed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPS=${REPS:-3}
ITERS=${ITERS:-150000}
WARMUP_MS=${WARMUP_MS:-30000}
DURATION_MS=${DURATION_MS:-6000}
PERIOD_US=${PERIOD_US:-1000}
POLICIES=${POLICIES:-"dedicated share migrate"}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
CC=${CC_RISCV:-riscv64-unknown-elf-gcc}
GUEST="$ROOT/build/guest"
OUT=${BENCH_OUT:-$ROOT/build/bench}

die() { echo "bench-rt: ERROR: $*" >&2; exit 1; }
[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
for f in Image initramfs.cpio; do [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"; done
command -v "$CC" >/dev/null || die "$CC not found (run: scripts/setup-host.sh)"
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$CC" -march=rv64gc -mabi=lp64d -mcmodel=medany -nostdlib -nostartfiles -static -ffreestanding -O2 \
    -T "$ROOT/tests/conformance/env/link.ld" -o "$WORK/rt.elf" "$ROOT/tests/rt/start.S" "$ROOT/tests/rt/rtguest.c"

JOB="t0=\$(cut -d' ' -f1 /proc/uptime); s=0; i=0; while [ \$i -lt $ITERS ]; do s=\$(( (s*31 + i) % 1000003 )); i=\$((i+1)); done; t1=\$(cut -d' ' -f1 /proc/uptime); echo LINUX-TIME \$t0 \$t1 \$s"
IDLE="sleep $(( (WARMUP_MS + DURATION_MS) / 1000 + 5 ))"

# config FILE POLICY RT_CMDLINE [LINUX_CMD]
config() {
    {
        printf 'harts = 2\nplacement = "%s"\n' "$2"
        printf '[[vm]]\nname = "rt"\nmemory = "16M"\nkernel = "%s"\ncmdline = "%s"\nrealtime = true\nharts = [0]\n' "$WORK/rt.elf" "$3"
        if [ -n "${4:-}" ]; then
            printf '[[vm]]\nname = "linux"\nmemory = "256M"\nvcpus = 2\nkernel = "%s"\ninitrd = "%s"\n' "$GUEST/Image" "$GUEST/initramfs.cpio"
            printf 'cmdline = "console=ttyS0 panic=-1 strata.cmd=\\"%s\\""\n' "$4"
        fi
    } >"$1"
}

# median of the arguments (the lower middle for an even count)
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }

TABLE="$OUT/rt.txt"
{
    echo "# strata run: the real-time guest (period $PERIOD_US us) on hart 0 of 2, beside Linux (2 vCPUs); medians of $REPS runs"
    echo "# host: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); commit $(git -C "$ROOT" rev-parse --short HEAD); $(date -u +%Y-%m-%dT%H:%MZ)"
    printf '%-16s %8s %8s %8s %8s %6s %12s %8s %10s\n' row "p50 us" "p99 us" "p99.9 us" "max us" late "Linux it/s" moves "move ns"
} | tee "$TABLE"

FAILED=0
row() {   # row NAME POLICY RT_CMDLINE [LINUX_CMD]
    local name=$1 p50=() p99=() p999=() max=() late=() tput=() moves=() mns=() r log line
    for r in $(seq 1 "$REPS"); do
        log="$OUT/rt-$name-$r.log"
        config "$WORK/c.toml" "$2" "$3" "${4:-}"
        if ! timeout --kill-after=10 "$RUN_TIMEOUT" "$STRATA_BIN" run --config "$WORK/c.toml" --stats </dev/null >"$log" 2>&1 \
            || ! grep -q 'RT CHECK ok' "$log"; then
            echo "bench-rt: $name run $r failed (see $log)" >&2
            FAILED=1
            continue
        fi
        line=$(grep 'RT RESULT' "$log" | tr -d '\r')
        get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
        p50+=("$(get p50_us)"); p99+=("$(get p99_us)"); p999+=("$(get p999_us)"); max+=("$(get max_us)"); late+=("$(get late)")
        if grep -q 'LINUX-TIME' "$log"; then
            tput+=("$(tr -d '\r' <"$log" | awk -v n="$ITERS" '/LINUX-TIME/ { d = $4 - $3; if (d > 0) printf "%.0f", n / d }')")
        fi
        moves+=("$(sed -n 's/^scheduler: [0-9]* switches, \([0-9]*\) moves.*/\1/p' "$log")")
        mns+=("$(sed -n 's/.*move cost \([0-9]*\) ns over.*/\1/p' "$log")")
    done
    printf '%-16s %8s %8s %8s %8s %6s %12s %8s %10s\n' "$name" "$(median "${p50[@]}")" "$(median "${p99[@]}")" \
        "$(median "${p999[@]}")" "$(median "${max[@]}")" "$(median "${late[@]}")" \
        "$( ((${#tput[@]})) && median "${tput[@]}" || echo -)" "$(median "${moves[@]}")" "$(median "${mns[@]}")" | tee -a "$TABLE"
}

row alone share "rt.period_us=$PERIOD_US rt.duration_ms=$DURATION_MS"
for p in $POLICIES; do
    row "$p-idle" "$p" "rt.period_us=$PERIOD_US rt.warmup_ms=$WARMUP_MS rt.duration_ms=$DURATION_MS" "$IDLE"
    row "$p-load" "$p" "rt.period_us=$PERIOD_US rt.duration_ms=$DURATION_MS" "$JOB"
done
exit "$FAILED"

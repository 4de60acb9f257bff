#!/usr/bin/env bash
# Control API benchmark (issue 16): what the API and a Prometheus scraper
# cost the guest. Boots the default guest kernel+initramfs to power-off
# (guest command `true`) on `strata machine`, PAIRS times each, interleaved:
#   plain    --threads 1 (the API's thread setting), no API
#   api      --api-sock, nobody asking (one atomic load per round)
#   scraped  --api-sock and a scraper polling GET /metrics every 100 ms
# Prints the median of each, the ratios to plain, and the scraper's count.
# Then, PAIRS times, the time from POST /vms of a new VM (the same kernel,
# `earlycon`) on a running `strata run` to its first console line, seen by
# polling the console log every 10 ms.
# A time is one boot's wall time (date around the run); figures vary with
# the host's load, so compare the ratios of one run.
#
# Env: PAIRS (default 5), STRATA_BIN (default target/release/strata)
# Output: build/bench/api-summary.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAIRS=${PAIRS:-5}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GUEST="$ROOT/build/guest"
OUT="$ROOT/build/bench"
mkdir -p "$OUT"
die() { echo "bench-api: ERROR: $*" >&2; exit 1; }
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
[ -x "$STRATA_BIN" ] || die "no $STRATA_BIN (run: make build)"
command -v curl >/dev/null 2>&1 || die "curl not found (run scripts/setup-host.sh)"

WORK=$(mktemp -d /tmp/strata-bench-api.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SOCK="$WORK/api.sock"
base=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
      --initrd "$GUEST/initramfs.cpio" --append 'console=ttyS0 panic=-1 strata.cmd=true' -m 512M --threads 1)

# boot MODE: prints the boot's wall time in seconds (and the scrapes made).
boot() {
    local mode=$1 t0 t1 scrapes=0
    local cmd=("${base[@]}")
    [ "$mode" = plain ] || cmd+=(--api-sock "$SOCK")
    t0=$(date +%s.%N)
    "${cmd[@]}" </dev/null >"$WORK/$mode.log" 2>&1 &
    local pid=$!
    if [ "$mode" = scraped ]; then
        while kill -0 "$pid" 2>/dev/null; do
            curl -s --max-time 5 --unix-socket "$SOCK" -o /dev/null http://localhost/metrics && scrapes=$((scrapes + 1))
            sleep 0.1
        done
    fi
    wait "$pid" || die "$mode: strata failed (log $WORK/$mode.log: $(tail -n 2 "$WORK/$mode.log"))"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v s="$scrapes" 'BEGIN { printf "%.3f %d\n", b - a, s }'
}

declare -A times
for i in $(seq "$PAIRS"); do
    for mode in plain api scraped; do
        read -r t s < <(boot "$mode")
        times[$mode]+="$t "
        [ "$mode" = scraped ] && scraped_count=$s
        echo "run $i $mode: ${t}s$([ "$mode" = scraped ] && echo " ($s scrapes)")" >&2
    done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
p=$(median <<<"${times[plain]}"); a=$(median <<<"${times[api]}"); s=$(median <<<"${times[scraped]}")
{
    echo "bench-api: boot to power-off, strata machine --threads 1, median of $PAIRS ($(git -C "$ROOT" rev-parse --short HEAD))"
    echo "plain    ${p}s"
    awk -v x="$a" -v p="$p" 'BEGIN { printf "api      %ss  (%.3fx plain)\n", x, x / p }'
    awk -v x="$s" -v p="$p" -v n="$scraped_count" 'BEGIN { printf "scraped  %ss  (%.3fx plain; last run %d scrapes, every 100 ms)\n", x, x / p, n }'
} | tee "$OUT/api-summary.txt"

# ---- POST /vms to the new VM's first console output ----
post_times=""
for i in $(seq "$PAIRS"); do
    log="$WORK/run.log"
    rm -f "$SOCK"
    "$STRATA_BIN" run --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio" -m 128M --name base \
        --append 'console=ttyS0 panic=-1 strata.cmd="while :; do sleep 1; done"' \
        --spare-memory 256M --api-sock "$SOCK" </dev/null >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do [ -S "$SOCK" ] && break; sleep 0.1; done
    req=$(jq -cn --arg k "$GUEST/Image" --arg i "$GUEST/initramfs.cpio" \
        '{name: "new", kernel: $k, initrd: $i, cmdline: "console=ttyS0 earlycon", memory: "128M"}')
    t0=$(date +%s.%N)
    code=$(curl -s --unix-socket "$SOCK" -o /dev/null -w '%{http_code}' -X POST --data "$req" http://localhost/vms)
    [ "$code" = 201 ] || die "POST /vms: $code"
    for _ in $(seq 3000); do grep -q '^\[new\] ' "$log" && break; sleep 0.01; done
    t1=$(date +%s.%N)
    grep -q '^\[new\] ' "$log" || die "the new VM printed nothing in 30 s"
    curl -s --unix-socket "$SOCK" -o /dev/null -X PUT http://localhost/machine/stop
    wait "$pid" || true
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    echo "run $i: POST /vms to first console line ${t}s" >&2
    post_times+="$t "
done
echo "POST /vms to the new VM's first console line: median $(median <<<"$post_times")s of $PAIRS" | tee -a "$OUT/api-summary.txt"

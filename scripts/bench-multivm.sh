#!/usr/bin/env bash
# Multi-VM benchmark (issue 12 case 4): N VMs of the default guest (Debian
# kernel + initramfs, 128 MiB each) under `strata run`, on 1 and on 2
# physical harts. Each VM boots, runs a command that does some work, and
# powers off. For each (VMs, harts): the total CPU time of the process
# (user + system) and the time until every VM has powered off (wall), and
# the CPU time per VM. Fair, work-conserving scheduling makes N VMs cost
# about N times one VM, whatever the number of harts.
#
# Env: COUNTS      VM counts (default "1 2 4 8")
#      HARTS       hart counts (default "1 2")
#      MEM         memory per VM (default 128M)
#      WORK        the guest command (default: a shell loop, then md5sum)
#      RUN_TIMEOUT seconds per run (default 1800)
#      STRATA_BIN  (default target/release/strata)
#      OUT         where the table and logs go (default build/bench)
# Output: build/bench/multivm.txt (the table), build/bench/multivm-<n>x<h>.log
# Exit status: 1 if a run failed (a VM did not power off cleanly).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COUNTS=${COUNTS:-"1 2 4 8"}
HARTS=${HARTS:-"1 2"}
MEM=${MEM:-128M}
WORK=${WORK:-'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; md5sum /init'}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GUEST="$ROOT/build/guest"
OUT=${OUT:-$ROOT/build/bench}

die() { echo "bench-multivm: ERROR: $*" >&2; exit 1; }

[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
for f in Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found (the 'time' package)"
mkdir -p "$OUT"
WORKDIR=$(mktemp -d)
trap 'rm -rf "$WORKDIR"' EXIT

CMD64=$(printf '%s' "$WORK" | base64 -w0)
TABLE="$OUT/multivm.txt"
{
    echo "# strata run: N VMs of $MEM each (Debian guest), strata.cmd: $WORK"
    echo "# host: $(nproc) CPUs, $(uname -r); $(date -u +%Y-%m-%dT%H:%MZ)"
    printf '%-5s %-6s %12s %12s %14s\n' VMs harts "CPU s" "wall s" "CPU s per VM"
} | tee "$TABLE"

FAILED=0
for h in $HARTS; do
    for n in $COUNTS; do
        cfg="$WORKDIR/vms-$n-$h.toml"
        echo "harts = $h" >"$cfg"
        for i in $(seq 1 "$n"); do
            cat >>"$cfg" <<EOF
[[vm]]
name = "vm$i"
memory = "$MEM"
kernel = "$GUEST/Image"
initrd = "$GUEST/initramfs.cpio"
cmdline = "console=ttyS0 panic=-1 strata.cmd64=$CMD64"
EOF
        done
        log="$OUT/multivm-${n}x${h}.log"
        set +e
        /usr/bin/time -o "$WORKDIR/time" -f '%e %U %S' \
            timeout --kill-after=10 "$RUN_TIMEOUT" "$STRATA_BIN" run --config "$cfg" --stats </dev/null >"$log" 2>&1
        rc=$?
        set -e
        ok=$(grep -c 'STRATA-CMD-EXIT 0' "$log" || true)
        if [ "$rc" -ne 0 ] || [ "$ok" -ne "$n" ]; then
            echo "bench-multivm: $n VMs on $h harts: exit status $rc, $ok of $n commands succeeded (see $log)" >&2
            FAILED=$((FAILED + 1))
            continue
        fi
        read -r wall user sys <"$WORKDIR/time"
        cpu=$(echo "$user + $sys" | bc -l)
        printf '%-5s %-6s %12.1f %12.1f %14.2f\n' "$n" "$h" "$cpu" "$wall" "$(echo "$cpu / $n" | bc -l)" | tee -a "$TABLE"
    done
done
[ "$FAILED" -eq 0 ] || die "$FAILED runs failed"

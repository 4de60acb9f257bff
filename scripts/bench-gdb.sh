#!/usr/bin/env bash
# gdb watchpoints (issue 16): what a watchpoint costs a Debian boot, on
# Strata and on QEMU (the peer), each under gdb-multiarch in batch mode:
#   plain   gdb attached, no watchpoint: `continue` to power-off
#   watch   gdb attached, `awatch` on 8 bytes at virtual address 8 (no one
#           touches it, so the machine never stops): `continue` to power-off
# Boot: the default kernel+initramfs, 1 hart, guest command `true`,
# PAIRS runs of each, interleaved. A time is the wall time from the
# machine's start to its exit (gdb's connection included). Strata runs every
# instruction one at a time while a watchpoint is set; QEMU marks the
# watched page in its soft TLB, so only accesses to that page are slowed.
#
# Env: PAIRS (default 3), STRATA_BIN, QEMU (default qemu-system-riscv64),
# GDB (default gdb-multiarch). Output: build/bench/gdb.txt
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAIRS=${PAIRS:-3}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU=${QEMU:-qemu-system-riscv64}
GDB=${GDB:-gdb-multiarch}
GUEST="$ROOT/build/guest"
OUT="$ROOT/build/bench"
die() { echo "bench-gdb: ERROR: $*" >&2; exit 1; }
[ -x "$STRATA_BIN" ] || die "no $STRATA_BIN (run: make build)"
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
command -v "$GDB" >/dev/null || die "$GDB not found (run: scripts/setup-host.sh)"
command -v "$QEMU" >/dev/null || die "$QEMU not found (run: scripts/setup-host.sh)"
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/strata-bench-gdb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
APPEND='console=ttyS0 panic=-1 strata.cmd=true'
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run MACHINE MODE: one boot under gdb; prints its wall time in seconds.
run() {
    local machine=$1 mode=$2 port log t0 t1 pid
    port=$(free_port)
    log="$WORK/$machine-$mode.log"
    t0=$(date +%s.%N)
    if [ "$machine" = strata ]; then
        "$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" \
            --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 512M --smp 1 \
            --gdb "tcp:127.0.0.1:$port" </dev/null >"$log" 2>&1 &
    else
        "$QEMU" -M virt -m 512M -smp 1 -nographic -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image" \
            -initrd "$GUEST/initramfs.cpio" -append "$APPEND" -gdb "tcp:127.0.0.1:$port" -S \
            </dev/null >"$log" 2>&1 &
    fi
    pid=$!
    {
        printf 'set confirm off\nset pagination off\nset architecture riscv:rv64\n'
        # gdb may try before the machine listens: retry the connection.
        printf 'set tcp auto-retry on\nset tcp connect-timeout 30\ntarget remote 127.0.0.1:%s\n' "$port"
        [ "$mode" = watch ] && printf 'awatch *(unsigned long *) 8\n'
        printf 'continue\n'
    } >"$WORK/cmds.gdb"
    timeout 600 "$GDB" -batch -x "$WORK/cmds.gdb" >"$WORK/gdb-$machine-$mode.log" 2>&1 || true
    timeout 60 tail --pid="$pid" -f /dev/null || kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    t1=$(date +%s.%N)
    grep -q "STRATA-CMD-EXIT 0" "$log" || { tail -n 5 "$log" >&2; die "$machine $mode: the guest did not finish (log $log)"; }
    if [ "$mode" = watch ] && ! grep -q "Hardware access (read/write) watchpoint" "$WORK/gdb-$machine-$mode.log"; then
        die "$machine: gdb did not set a hardware watchpoint (log $WORK/gdb-$machine-$mode.log)"
    fi
    echo "$t1 - $t0" | bc
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
declare -A T
for i in $(seq 1 "$PAIRS"); do
    for machine in strata qemu; do
        for mode in plain watch; do
            T[$machine-$mode]+="$(run "$machine" "$mode") "
        done
    done
done
{
echo "Debian boot to power-off under gdb, 1 hart, median of $PAIRS (wall seconds), $(date -u +%F), commit $(git -C "$ROOT" rev-parse --short HEAD)"
printf '%-8s %10s %10s %8s\n' machine plain awatch ratio
for machine in strata qemu; do
    p=$(tr ' ' '\n' <<<"${T[$machine-plain]}" | grep . | median)
    w=$(tr ' ' '\n' <<<"${T[$machine-watch]}" | grep . | median)
    printf '%-8s %10.2f %10.2f %8.1f\n' "$machine" "$p" "$w" "$(echo "$w / $p" | bc -l)"
done
} | tee "$OUT/gdb.txt"

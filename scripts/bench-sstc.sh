#!/usr/bin/env bash
# Sstc (issue 20): what the supervisor timer saves a Debian boot. Boots the
# guest to power-off with --cpu rv64gc (timer through SBI set_timer: an
# ECALL from S, OpenSBI writes MTIMECMP, an M-mode timer interrupt raises
# STIP) and with the default CPU (Sstc in the device tree: Linux writes
# stimecmp itself), 1 and 2 harts, with --clock virtual so that the counts
# are the same on every run and host. Reports, summed over the harts, from
# --stats: ECALLs from S (cause 9: every SBI call, set_timer among them),
# M-mode timer interrupts (7), traps into M, the guest time at /init and
# the instructions retired; plus the wall time (informative only, the host
# is shared). Output: build/bench/sstc.txt. A boot that fails stops the
# script with its log.
#
# Env: SMP_LIST (default "1 2"), STRATA_BIN.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMP_LIST=${SMP_LIST:-"1 2"}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GUEST="$ROOT/build/guest"
OUT="$ROOT/build/bench"
die() { echo "bench-sstc: ERROR: $*" >&2; exit 1; }
[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
mkdir -p "$OUT"
CMD="grep -c ^processor /proc/cpuinfo"

# sum LOG CAUSE KIND: the counts of CAUSE in every hart's "KIND by cause [...]" list.
sum() {
    { grep -o "$3 by cause \[[^]]*\]" "$1" | grep -o "\b$2:[0-9]*" || true; } | cut -d: -f2 | awk '{s += $1} END {print s + 0}'
}

{
printf '%-8s %4s %10s %10s %10s %12s %14s %8s\n' cpu harts "S ecalls" "M timer" "traps to M" "/init at (s)" "instructions" "wall (s)"
for smp in $SMP_LIST; do
    for cpu in rv64gc default; do
        log="$OUT/sstc-$cpu-smp$smp.log"
        t0=$(date +%s.%N)
        if ! "$STRATA_BIN" machine --cpu "$cpu" --clock virtual --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" \
                --initrd "$GUEST/initramfs.cpio" --append "console=ttyS0 panic=-1 strata.cmd=\"$CMD\"" \
                -m 512M --smp "$smp" --stats >"$log" 2>&1 </dev/null; then
            tail -n 20 "$log" >&2; die "boot with --cpu $cpu --smp $smp failed (log: $log)"
        fi
        t1=$(date +%s.%N)
        grep -q "^STRATA-CMD-EXIT 0" "$log" || die "the guest's command did not run (log: $log)"
        ecalls=$(sum "$log" 9 exceptions)
        mti=$(sum "$log" 7 interrupts)
        tom=$(grep -o "traps to M [0-9]*" "$log" | awk '{s += $4} END {print s + 0}')
        init=$(sed -n 's/^\[ *\([0-9.]*\)\] Run \/init.*/\1/p' "$log" | head -n 1)
        insns=$(sed -n 's/.* \([0-9]*\) instructions retired.*/\1/p' "$log" | head -n 1)
        printf '%-8s %4s %10s %10s %10s %12s %14s %8.2f\n' "$cpu" "$smp" "$ecalls" "$mti" "$tom" "$init" "$insns" \
            "$(echo "$t1 - $t0" | bc)"
    done
done
} | tee "$OUT/sstc.txt"

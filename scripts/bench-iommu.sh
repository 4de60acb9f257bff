#!/usr/bin/env bash
# virtio-blk behind the IOMMU: throughput and IOPS with the IOMMU off (no
# --iommu), on with Linux's strict invalidation and on with lazy
# invalidation (iommu.passthrough=0, iommu.strict=1/0), in one run, with
# Debian's 7.x kernel (the guest profile with the riscv-iommu driver), and
# the IOMMU's counters (--stats: DMA seen, IOTLB hits and misses).
#
# Each round boots the three configurations one after the other (paired:
# the same host moment for all three; the order rotates from round to
# round, so that no configuration always runs last), each boot running one O_DIRECT
# sequential write and read of SIZE_MIB with 1 MiB blocks and IOPS_N 4 KiB
# O_DIRECT reads (busybox dd), timed on the host from the guest's console
# markers. Prints the median over ROUNDS of each figure.
#
# Env: ROUNDS (default 3), SIZE_MIB (256), IOPS_N (16384), STRATA_BIN, TIMEOUT
# Output: build/bench/iommu-<config>-<round>.log, build/bench/iommu.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-256}
IOPS_N=${IOPS_N:-16384}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
TIMEOUT=${TIMEOUT:-600}
GUEST="$ROOT/build/guest-newer"
OUT="$ROOT/build/bench"

die() { echo "bench-iommu: ERROR: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 not found (run scripts/setup-host.sh)"
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make guest-newer)"
done
[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
[[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ && "$ROUNDS" =~ ^[1-9][0-9]*$ && "$IOPS_N" =~ ^[1-9][0-9]*$ ]] \
    || die "ROUNDS, SIZE_MIB and IOPS_N must be positive integers"
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-iommu.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 143' TERM INT HUP

IMG="$WORK/disk.img"
dd if=/dev/urandom of="$IMG" bs=1M count="$SIZE_MIB" status=none

GCMD="set -e
echo BENCH-W-START
dd if=/dev/zero of=/dev/vda bs=1M count=$SIZE_MIB oflag=direct 2>/dev/null
echo BENCH-W-END
echo BENCH-R-START
dd if=/dev/vda of=/dev/null bs=1M count=$SIZE_MIB iflag=direct 2>/dev/null
echo BENCH-R-END
echo BENCH-I-START
dd if=/dev/vda of=/dev/null bs=4k count=$IOPS_N iflag=direct 2>/dev/null
echo BENCH-I-END"
B64=$(printf '%s' "$GCMD" | base64 -w0)
BASE="console=ttyS0 panic=-1 strata.modules=virtio_mmio,virtio_blk strata.cmd64=$B64"

STAMP='import sys, time
for line in sys.stdin:
    sys.stdout.write("%.6f %s" % (time.monotonic(), line))
    sys.stdout.flush()'

# seconds between the START and END markers of $2 in log $1
span() {
    python3 - "$1" "$2" <<'EOF'
import sys
t0 = None
for line in open(sys.argv[1], errors="replace"):
    parts = line.split(" ", 1)
    if len(parts) < 2:
        continue
    text = parts[1].strip()
    if text == f"BENCH-{sys.argv[2]}-START":
        t0 = float(parts[0])
    elif text == f"BENCH-{sys.argv[2]}-END" and t0 is not None:
        print("%.6f" % (float(parts[0]) - t0))
        sys.exit(0)
sys.exit(1)
EOF
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

CONFIGS="off strict lazy"
declare -A WR RD IOPS DIRECT HITS MISSES
ORDER=($CONFIGS)
for round in $(seq "$ROUNDS"); do
    for k in 0 1 2; do
        c=${ORDER[$(((round + k) % 3))]}
        case "$c" in
            off)    flags=(); append="$BASE" ;;
            strict) flags=(--iommu); append="iommu.passthrough=0 iommu.strict=1 $BASE" ;;
            lazy)   flags=(--iommu); append="iommu.passthrough=0 iommu.strict=0 $BASE" ;;
        esac
        log="$OUT/iommu-$c-$round.log"
        echo "== round $round, IOMMU $c (log $log)"
        set +e
        timeout --kill-after=10 "$TIMEOUT" "$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" \
            --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio" -m 512M --smp 1 --stats \
            --drive "file=$IMG" "${flags[@]}" --append "$append" </dev/null 2>&1 | python3 -c "$STAMP" >"$log"
        rc=${PIPESTATUS[0]}
        set -e
        grep -q 'STRATA-CMD-EXIT 0' "$log" && [ "$rc" -eq 0 ] || die "$c: the guest run failed (exit $rc; see $log)"
        w=$(span "$log" W) && r=$(span "$log" R) && i=$(span "$log" I) || die "$c: no timings in $log"
        WR[$c]+="$(awk -v m="$SIZE_MIB" -v t="$w" 'BEGIN {printf "%.1f", m * 1048576 / 1e6 / t}') "
        RD[$c]+="$(awk -v m="$SIZE_MIB" -v t="$r" 'BEGIN {printf "%.1f", m * 1048576 / 1e6 / t}') "
        IOPS[$c]+="$(awk -v n="$IOPS_N" -v t="$i" 'BEGIN {printf "%.0f", n / t}') "
        if [ "$c" != off ]; then
            line=$(grep -a 'strata: iommu device 1:' "$log" || true)
            [ -n "$line" ] || die "$c: no IOMMU counters for the disk in $log"
            DIRECT[$c]+="$(sed -E 's/.* direct ([0-9]+) .*/\1/' <<<"$line") "
            HITS[$c]+="$(sed -E 's/.* hits ([0-9]+) .*/\1/' <<<"$line") "
            MISSES[$c]+="$(sed -E 's/.* misses ([0-9]+) .*/\1/' <<<"$line") "
        fi
    done
done

{
    echo "virtio-blk behind the IOMMU, Debian $(cat "$GUEST/kernel-release"), 1 hart, median of $ROUNDS paired rounds"
    echo "(seq: dd O_DIRECT bs=1M, $SIZE_MIB MiB; IOPS: $IOPS_N dd O_DIRECT 4 KiB reads; MB/s = 10^6 bytes/s of host wall time)"
    printf '  %-7s %12s %12s %10s   %s\n' IOMMU "write MB/s" "read MB/s" "4K IOPS" "disk DMA through the IOMMU (device 1)"
    for c in $CONFIGS; do
        extra="-"
        if [ "$c" != off ]; then
            h=$(median <<<"${HITS[$c]}") m=$(median <<<"${MISSES[$c]}") d=$(median <<<"${DIRECT[$c]}")
            if [ $((h + m)) -eq 0 ]; then
                extra="$d direct requests, IOTLB 0 lookups (identity domain: no translation)"
            else
                extra="$d direct, IOTLB hits $h misses $m ($(awk -v h="$h" -v m="$m" 'BEGIN {printf "%.1f", 100 * h / (h + m)}')% hits)"
            fi
        fi
        printf '  %-7s %12s %12s %10s   %s\n' "$c" "$(median <<<"${WR[$c]}")" "$(median <<<"${RD[$c]}")" \
            "$(median <<<"${IOPS[$c]}")" "$extra"
    done
} | tee "$OUT/iommu.txt"

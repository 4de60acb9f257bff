#!/usr/bin/env bash
# virtio-blk throughput benchmark: sequential write and read with O_DIRECT
# (busybox dd oflag=direct / iflag=direct, 1 MiB blocks) inside the guest,
# on the same raw image for every machine. Each machine boots once and runs
# RUNS writes then RUNS reads of SIZE_MIB; a run is timed on the host from
# the guest's console markers around it (the guest's own clock is Strata's
# instruction-driven virtual time, not wall time). Prints the median MB/s
# (10^6 bytes/s) per machine and direction, and the ratio Strata/QEMU.
#
# Env: MACHINES   "qemu strata" (default) or "qemu" for a QEMU-only run
#      SIZE_MIB   bytes per run (default 256), RUNS (default 3)
#      STRATA_BIN (default target/release/strata), QEMU_BIN (qemu-system-riscv64)
# Output: build/bench/virtio-blk-<machine>.log (console, time-stamped) and
#         build/bench/virtio-blk.txt (the summary printed last)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MACHINES=${MACHINES:-"qemu strata"}
SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-3}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
TIMEOUT=${TIMEOUT:-600}
GUEST="$ROOT/build/guest"
OUT="$ROOT/build/bench"

die() { echo "bench-virtio: ERROR: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 not found (run scripts/setup-host.sh)"
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
for m in $MACHINES; do
    case "$m" in
        qemu)   command -v "$QEMU_BIN" >/dev/null 2>&1 || die "$QEMU_BIN not found (run scripts/setup-host.sh)" ;;
        strata) [ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first (or MACHINES=qemu)" ;;
        *) die "unknown machine '$m' (qemu|strata)" ;;
    esac
done
[[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ && "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB and RUNS must be positive integers"
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-virtio.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 143' TERM INT HUP

# One image, fully allocated (no holes that would make reads cheaper).
IMG="$WORK/disk.img"
dd if=/dev/urandom of="$IMG" bs=1M count="$SIZE_MIB" status=none

GCMD="set -e
for i in \$(seq $RUNS); do
  echo BENCH-W-START
  dd if=/dev/zero of=/dev/vda bs=1M count=$SIZE_MIB oflag=direct 2>/dev/null
  echo BENCH-W-END
done
for i in \$(seq $RUNS); do
  echo BENCH-R-START
  dd if=/dev/vda of=/dev/null bs=1M count=$SIZE_MIB iflag=direct 2>/dev/null
  echo BENCH-R-END
done"
APPEND="console=ttyS0 panic=-1 strata.modules=virtio_mmio,virtio_blk strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)"

# Time-stamps every console line with the host's monotonic clock.
STAMP='import sys, time
for line in sys.stdin:
    sys.stdout.write("%.6f %s" % (time.monotonic(), line))
    sys.stdout.flush()'

# median MB/s of the START/END pairs of direction $2 in log $1
median_mbs() {
    python3 - "$1" "$2" "$SIZE_MIB" <<'EOF'
import sys
log, d, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0, rates = None, []
for line in open(log, errors="replace"):
    parts = line.split(" ", 1)
    if len(parts) < 2:
        continue
    text = parts[1].strip()
    if text == f"BENCH-{d}-START":
        t0 = float(parts[0])
    elif text == f"BENCH-{d}-END" and t0 is not None:
        rates.append(mib * 1048576 / 1e6 / (float(parts[0]) - t0))
        t0 = None
if not rates:
    sys.exit(1)
rates.sort()
print("%.1f" % rates[len(rates) // 2])
EOF
}

declare -A W R
for m in $MACHINES; do
    case "$m" in
        qemu)   CMD=("$QEMU_BIN" -M virt -smp 1 -m 512M -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
                     -initrd "$GUEST/initramfs.cpio" -append "$APPEND" -display none -monitor none -serial stdio -no-reboot
                     -global virtio-mmio.force-legacy=false
                     -drive "file=$IMG,if=none,id=d0,format=raw" -device virtio-blk-device,drive=d0) ;;
        strata) CMD=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
                     --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 512M --smp 1 --drive "file=$IMG") ;;
    esac
    log="$OUT/virtio-blk-$m.log"
    echo "== $m: $RUNS x $SIZE_MIB MiB O_DIRECT write, then read (log $log)"
    set +e
    timeout --kill-after=10 "$TIMEOUT" "${CMD[@]}" </dev/null 2>&1 | python3 -c "$STAMP" >"$log"
    rc=${PIPESTATUS[0]}
    set -e
    grep -q 'STRATA-CMD-EXIT 0' "$log" && [ "$rc" -eq 0 ] || die "$m: the guest run failed (exit $rc; see $log)"
    W[$m]=$(median_mbs "$log" W) || die "$m: no write timings in $log"
    R[$m]=$(median_mbs "$log" R) || die "$m: no read timings in $log"
done

{
    echo "virtio-blk, guest dd O_DIRECT bs=1M, $SIZE_MIB MiB x $RUNS runs (median), MB/s = 10^6 bytes/s of host wall time"
    for m in $MACHINES; do
        printf '  %-6s  seq write %8s MB/s   seq read %8s MB/s\n' "$m" "${W[$m]}" "${R[$m]}"
    done
    if [ -n "${W[strata]:-}" ] && [ -n "${W[qemu]:-}" ]; then
        printf '  strata/qemu  write %.2f   read %.2f\n' \
            "$(echo "${W[strata]} ${W[qemu]}" | awk '{print $1 / $2}')" "$(echo "${R[strata]} ${R[qemu]}" | awk '{print $1 / $2}')"
    fi
} | tee "$OUT/virtio-blk.txt"

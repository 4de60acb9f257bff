#!/usr/bin/env bash
# Snapshots (issue 15; docs/snapshot.md): the default Debian guest with
# 512 MiB of RAM, on the host clock, saved from userspace by SIGUSR1 with
# --snapshot-and-stop, then restored (`--restore --stats`, stopped by
# SIGTERM once it runs). Two guests:
#   idle  booted, waiting in `sleep`;
#   dirty the same after writing 128 MiB of random bytes to a tmpfs file
#         (incompressible pages: the worst case for size and time).
# Reported: the snapshot's size, RAM pages stored (not zero), the time to
# save (Strata's own figure: the snapshot is taken between two rounds) and
# to restore (read, check, decompress, rebuild: `--stats`' "restored in").
# Output: build/bench/snapshot.txt.
#
# Env: STRATA_BIN.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GUEST="$ROOT/build/guest"
OUT="$ROOT/build/bench"
W="$OUT/snapshot"
die() { echo "bench-snapshot: ERROR: $*" >&2; exit 1; }
[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
rm -rf "$W"
mkdir -p "$W"

wait_for() {   # wait_for PATTERN FILE: up to 600 s
    for _ in $(seq 6000); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done
    die "no '$1' in $2"
}

one() {   # one NAME GUEST-COMMAND
    local name=$1 cmd=$2 snap="$W/$1.snap"
    "$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio" \
        -m 512M --append "console=ttyS0 panic=-1 strata.cmd=\"$cmd; echo BENCH-READY | tr A-Z a-z; sleep 100000\"" \
        --snapshot-file "$snap" --snapshot-and-stop </dev/null >"$W/$name.out" 2>"$W/$name.err" &
    local pid=$!
    wait_for "^bench-ready" "$W/$name.out"
    kill -USR1 $pid
    wait $pid || die "$name: the run did not end with status 0 ($W/$name.err)"
    local line save
    line=$(grep "strata: snapshot" "$W/$name.err") || die "$name: no snapshot ($W/$name.err)"
    save=$(sed -n 's/.*saved in \([0-9.]*\) s.*/\1/p' <<<"$line")
    local pages zero
    pages=$(sed -n 's/.*RAM \([0-9]*\) pages.*/\1/p' <<<"$line")
    zero=$(sed -n 's/.*pages (\([0-9]*\) zero).*/\1/p' <<<"$line")
    "$STRATA_BIN" machine --restore "$snap" --stats </dev/null >"$W/$name-restored.out" 2>"$W/$name-restored.err" &
    pid=$!
    wait_for "restored .* in" "$W/$name-restored.err"
    kill -TERM $pid
    wait $pid || true
    local restore
    restore=$(sed -n 's/.*restored .* in \([0-9.]*\) s.*/\1/p' "$W/$name-restored.err")
    printf '%-6s %11d bytes (%6.1f MiB)  RAM pages stored %6d of %6d  save %6s s  restore %6s s\n' \
        "$name" "$(stat -c %s "$snap")" "$(echo "$(stat -c %s "$snap") / 1048576" | bc -l)" \
        $((pages - zero)) "$pages" "$save" "$restore"
}

{
    echo "# strata $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%d), $(nproc) host CPUs"
    one idle "true"
    one dirty "head -c 134217728 /dev/urandom >/tmp/fill"
} | tee "$OUT/snapshot.txt"

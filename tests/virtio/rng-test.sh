#!/usr/bin/env bash
# virtio-rng end-to-end test: boots with --device virtio-rng (off by
# default) and the guest's Debian virtio-rng module, checks that the kernel
# picked it as the hardware RNG and that /dev/hwrng delivers bytes.
# Usage: tests/virtio/rng-test.sh     Env: STRATA_BIN, BOOT_TIMEOUT (300)
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
GUEST="$ROOT/build/guest"
LOG="$ROOT/build/test/virtio-rng-strata.log"
mkdir -p "$ROOT/build/test"
PASSED=0; FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || { fail "missing $GUEST/$f (run: make setup)"; finish; }
done
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found"; finish; }
GCMD='echo rng_current=$(cat /sys/class/misc/hw_random/rng_current)
echo bytes=$(head -c 65536 /dev/hwrng | wc -c)
a=$(head -c 32 /dev/hwrng | md5sum); b=$(head -c 32 /dev/hwrng | md5sum)
[ "$a" != "$b" ] && echo reads-differ'
APPEND="console=ttyS0 panic=-1 strata.modules=virtio_mmio,virtio_rng strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)"
CMD=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio"
     --append "$APPEND" -m 512M --device virtio-rng)
{ printf '#'; printf ' %q' "${CMD[@]}"; echo; } >"$LOG"
echo "== strata: virtio-rng (log $LOG)"
set +e
timeout --kill-after=10 "$BOOT_TIMEOUT" "${CMD[@]}" </dev/null >>"$LOG" 2>&1
RC=$?
set -e
out=$(tr -d '\r' <"$LOG")
[ "$RC" -eq 0 ] && grep -q 'reboot: Power down' <<<"$out" && pass "clean power-off" || fail "exit status $RC"
grep -qE '^rng_current=virtio_rng' <<<"$out" && pass "the guest uses virtio_rng as its hardware RNG" \
    || fail "rng_current: $(grep -o 'rng_current=.*' <<<"$out" || echo none)"
grep -qx 'bytes=65536' <<<"$out" && pass "/dev/hwrng delivered 64 KiB" || fail "/dev/hwrng: $(grep -o 'bytes=.*' <<<"$out" || echo none)"
grep -qx 'reads-differ' <<<"$out" && pass "two reads differ" || fail "two 32-byte reads were equal"
finish

#!/usr/bin/env bash
# virtio-net end-to-end test on a host TAP interface, with the guest's own
# Debian virtio_net driver: ping the host, then send a file over TCP from
# the guest to a listener on the host and compare checksums.
#
# Needs root (CAP_NET_ADMIN) to create the TAP interface; without it the
# test FAILS (it never skips silently).
#
# Usage: tests/virtio/net-test.sh [--machine strata|qemu] [--timeout SECS]
# Env:   MACHINE (strata), BOOT_TIMEOUT (300), STRATA_BIN, QEMU_BIN, TAP (stratanet0)
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MACHINE=${MACHINE:-strata}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
TAP=${TAP:-stratanet0}
HOST_IP=10.213.0.1
GUEST_IP=10.213.0.2
PORT=5601

while [ $# -gt 0 ]; do
    case "$1" in
        --machine) MACHINE=$2; shift 2 ;;
        --machine=*) MACHINE=${1#*=}; shift ;;
        --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
        --timeout=*) BOOT_TIMEOUT=${1#*=}; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "net-test: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

GUEST="$ROOT/build/guest"
LOGDIR="$ROOT/build/test"
mkdir -p "$LOGDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-net-test.XXXXXX")
LISTENER=""
cleanup() {
    [ -n "$LISTENER" ] && kill "$LISTENER" 2>/dev/null
    ip link del "$TAP" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

PASSED=0
FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }

for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || { fail "missing $GUEST/$f (run: make setup)"; finish; }
done
command -v python3 >/dev/null || { fail "python3 not found (the TCP listener)"; finish; }
case "$MACHINE" in
    qemu)   command -v "$QEMU_BIN" >/dev/null 2>&1 || { fail "$QEMU_BIN not found"; finish; } ;;
    strata) [ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found"; finish; } ;;
    *) echo "net-test: unknown machine '$MACHINE'" >&2; exit 2 ;;
esac

ip link del "$TAP" 2>/dev/null || true
if ! ip tuntap add dev "$TAP" mode tap 2>"$WORK/err"; then
    fail "cannot create TAP $TAP: $(cat "$WORK/err") (needs root / CAP_NET_ADMIN)"; finish
fi
ip addr add "$HOST_IP/24" dev "$TAP"
ip link set "$TAP" up

# A one-shot TCP listener that stores what it receives.
python3 - "$HOST_IP" "$PORT" "$WORK/received" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(600)
c, _ = s.accept()
with open(sys.argv[3], "wb") as f:
    while True:
        b = c.recv(65536)
        if not b:
            break
        f.write(b)
EOF
LISTENER=$!

GEN='BEGIN { for (i = 0; i < 40000; i++) print "strata net line " i }'
WANT_SHA=$(awk "$GEN" | sha256sum | cut -d' ' -f1)
GCMD="set -e
ip link set eth0 up
ip addr add $GUEST_IP/24 dev eth0
cat /sys/class/net/eth0/address
ping -c 3 -W 5 $HOST_IP
awk '$GEN' >/tmp/payload
echo NC-START
nc $HOST_IP $PORT </tmp/payload
echo NC-END"
APPEND="console=ttyS0 panic=-1 strata.modules=virtio_mmio,virtio_net strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)"
case "$MACHINE" in
    qemu) CMD=("$QEMU_BIN" -M virt -smp 1 -m 512M -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
               -initrd "$GUEST/initramfs.cpio" -append "$APPEND" -display none -monitor none -serial stdio -no-reboot
               -netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no" -device "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56") ;;
    strata) CMD=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
                 --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 512M --clock paced
                 --netdev "tap,ifname=$TAP,mac=52:54:00:12:34:56") ;;
esac
log="$LOGDIR/virtio-net-$MACHINE.log"
echo "== $MACHINE: virtio-net over TAP $TAP (log $log)"
{ printf '#'; printf ' %q' "${CMD[@]}"; echo; } >"$log"
set +e
timeout --kill-after=10 "$BOOT_TIMEOUT" "${CMD[@]}" </dev/null 2>&1 |
    while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done >>"$log"
RC=${PIPESTATUS[0]}
set -e
out=$(cut -d' ' -f2- "$log" | tr -d '\r')
tag="$MACHINE net"
[ "$RC" -eq 0 ] && grep -q 'reboot: Power down' <<<"$out" && pass "$tag: clean power-off" || fail "$tag: exit status $RC"
grep -qx '52:54:00:12:34:56' <<<"$out" && pass "$tag: guest eth0 has the configured MAC" \
    || fail "$tag: eth0 MAC: $(grep -A1 STRATA-GUEST-READY <<<"$out" | tail -n 1)"
grep -q '3 packets transmitted, 3 packets received' <<<"$out" && pass "$tag: 3/3 pings to the host answered" \
    || fail "$tag: ping: $(grep 'packets transmitted' <<<"$out" || echo none)"
wait "$LISTENER" 2>/dev/null || true
LISTENER=""
got=$( { [ -f "$WORK/received" ] && sha256sum <"$WORK/received" | cut -d' ' -f1; } || echo "nothing received")
[ "$got" = "$WANT_SHA" ] && pass "$tag: host received the guest's TCP payload intact ($(stat -c %s "$WORK/received") bytes)" \
    || fail "$tag: TCP payload sha256 $got, want $WANT_SHA"
grep -qE 'STRATA-CMD-EXIT 0$' <<<"$out" && pass "$tag: guest command exit 0" || fail "$tag: guest command failed"
t0=$(awk '/ NC-START/ { print $1; exit }' "$log")
t1=$(awk '/ NC-END/ { print $1; exit }' "$log")
if [ -n "$t0" ] && [ -n "$t1" ]; then
    echo "   TCP guest->host ($MACHINE): $(stat -c %s "$WORK/received" 2>/dev/null || echo 0) bytes in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s host wall", b - a }')"
fi
finish

#!/usr/bin/env bash
# virtio-vsock end-to-end test (Firecracker-style host Unix sockets) with the
# guest's own Debian vsock modules. The guest-side client/server
# (vsock-tool.c) is compiled here with riscv64-linux-gnu-gcc -static and
# handed to the guest on a virtio-blk ext4 disk (so this also needs the
# block device).
#   1. guest -> host: the guest connects to CID 2 port 5000; the device
#      connects to <uds>_5000 where a host listener answers.
#   2. host -> guest: the guest listens on port 52; the host connects to
#      <uds>, sends "CONNECT 52", expects "OK <port>", then an echo.
#
# Usage: tests/virtio/vsock-test.sh [--timeout SECS]   (strata only: QEMU's
#        vhost-vsock has no Unix-socket bridge to compare with)
# Env:   BOOT_TIMEOUT (300), STRATA_BIN (target/release/strata)
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
CC=${CC_RISCV:-riscv64-linux-gnu-gcc}
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "vsock-test: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

GUEST="$ROOT/build/guest"
LOGDIR="$ROOT/build/test"
mkdir -p "$LOGDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-vsock-test.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

PASSED=0
FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }

for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || { fail "missing $GUEST/$f (run: make setup)"; finish; }
done
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found"; finish; }
command -v "$CC" >/dev/null || { fail "$CC not found (gcc-riscv64-linux-gnu)"; finish; }
command -v python3 >/dev/null || { fail "python3 not found"; finish; }
PATH=$PATH:/sbin:/usr/sbin
command -v mkfs.ext4 >/dev/null || { fail "mkfs.ext4 not found"; finish; }

mkdir -p "$WORK/root"
"$CC" -static -O2 -o "$WORK/root/vsock-tool" "$ROOT/tests/virtio/vsock-tool.c" || { fail "cannot build vsock-tool.c"; finish; }
truncate -s 16M "$WORK/tools.img"
mkfs.ext4 -q -F -d "$WORK/root" "$WORK/tools.img"

UDS="$WORK/v.sock"
LOG="$LOGDIR/virtio-vsock-strata.log"

# Host listener for guest -> host connections on port 5000.
python3 - "${UDS}_5000" "$WORK/from-guest" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(1); s.settimeout(600)
c, _ = s.accept()
line = b""
while not line.endswith(b"\n"):
    b = c.recv(1)
    if not b: break
    line += b
open(sys.argv[2], "wb").write(line)
c.sendall(b"host-ack " + line)
c.close()
EOF
PIDS+=($!)

GCMD='set -e
mkdir -p /t && mount -o ro /dev/vda /t
/t/vsock-tool connect 2 5000 hello-from-guest
/t/vsock-tool listen 52 &
wait
echo VSOCK-DONE'
APPEND="console=ttyS0 panic=-1 strata.modules=virtio_mmio,virtio_blk,ext4,vmw_vsock_virtio_transport strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)"
CMD=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio"
     --append "$APPEND" -m 512M --clock paced --drive "file=$WORK/tools.img,readonly=on" --vsock "cid=3,uds=$UDS")
{ printf '#'; printf ' %q' "${CMD[@]}"; echo; } >"$LOG"
echo "== strata: virtio-vsock (log $LOG)"
timeout --kill-after=10 "$BOOT_TIMEOUT" "${CMD[@]}" </dev/null >>"$LOG" 2>&1 &
VM=$!
PIDS+=($VM)

# Host -> guest once the guest listens.
deadline=$((SECONDS + BOOT_TIMEOUT))
while ! grep -q '^VSOCK-LISTENING 52' "$LOG" && kill -0 "$VM" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
if grep -q '^VSOCK-LISTENING 52' "$LOG"; then
    set +e
    reply=$(python3 - "$UDS" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
s.sendall(b"CONNECT 52\n")
f = s.makefile("rb")
ok = f.readline().decode().strip()
print(ok)
s.sendall(b"ping-from-host\n")
print(f.readline().decode().strip())
EOF
)
    set -e
    ok=$(sed -n 1p <<<"$reply")
    echo_line=$(sed -n 2p <<<"$reply")
    [[ "$ok" =~ ^OK\ [0-9]+$ ]] && pass "host CONNECT 52 answered '$ok'" || fail "host CONNECT 52: got '$ok'"
    [ "$echo_line" = "echo: ping-from-host" ] && pass "guest server echoed the host's line" || fail "host->guest echo: got '$echo_line'"
else
    fail "the guest never listened on vsock port 52"
fi
set +e
wait "$VM"
RC=$?
set -e
out=$(tr -d '\r' <"$LOG")
[ "$RC" -eq 0 ] && grep -q 'reboot: Power down' <<<"$out" && pass "clean power-off" || fail "exit status $RC"
[ "$(cat "$WORK/from-guest" 2>/dev/null)" = "hello-from-guest" ] && pass "host <uds>_5000 got the guest's line" \
    || fail "host <uds>_5000 got '$(cat "$WORK/from-guest" 2>/dev/null)'"
grep -qx 'host-ack hello-from-guest' <<<"$out" && pass "guest read the host's reply" || fail "guest did not print the host's reply"
grep -qx 'VSOCK-SERVED ping-from-host' <<<"$out" && pass "guest server saw the host's line" || fail "guest server did not see the host's line"
grep -q 'VSOCK-DONE' <<<"$out" && grep -qE 'STRATA-CMD-EXIT 0$' <<<"$out" && pass "guest command exit 0" \
    || fail "guest command: $(grep -o 'STRATA-CMD-EXIT.*' <<<"$out" || echo none)"
[ ! -e "$UDS" ] && pass "the emulator removed its socket $UDS on exit" || fail "$UDS left behind"
finish

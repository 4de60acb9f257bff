#!/usr/bin/env bash
# virtio-console end-to-end test: --virtio-console PATH, the guest's
# virtio_console driver (/dev/hvc0; built in, virtio_mmio is a module); a host client on the Unix
# socket receives a line the guest writes and sends one the guest reads.
# Usage: tests/virtio/console-test.sh     Env: STRATA_BIN, BOOT_TIMEOUT (300)
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
GUEST="$ROOT/build/guest"
LOG="$ROOT/build/test/virtio-console-strata.log"
mkdir -p "$ROOT/build/test"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-console-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PASSED=0; FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || { fail "missing $GUEST/$f (run: make setup)"; finish; }
done
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found"; finish; }
command -v python3 >/dev/null || { fail "python3 not found"; finish; }
SOCK="$WORK/con.sock"
GCMD='set -e
[ -c /dev/hvc0 ] || { echo "no /dev/hvc0 character device"; exit 1; }
exec 3<>/dev/hvc0
stty raw -echo <&3
echo guest-says-hello >&3
read -r line <&3
echo "GUEST-GOT $line"'
APPEND="console=ttyS0 panic=-1 strata.modules=virtio_mmio,virtio_console strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)"
CMD=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio"
     --append "$APPEND" -m 512M --clock paced --virtio-console "$SOCK")
{ printf '#'; printf ' %q' "${CMD[@]}"; echo; } >"$LOG"
echo "== strata: virtio-console (log $LOG)"
timeout --kill-after=10 "$BOOT_TIMEOUT" "${CMD[@]}" </dev/null >>"$LOG" 2>&1 &
VM=$!
set +e
got=$(timeout "$BOOT_TIMEOUT" python3 - "$SOCK" <<'PYEOF'
import socket, sys, time, os
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
line = f.readline().decode().strip()
print(line)
s.sendall(b"host-says-hi\n")
f.read()
PYEOF
)
wait "$VM"
RC=$?
set -e
out=$(tr -d '\r' <"$LOG")
[ "$RC" -eq 0 ] && grep -q 'reboot: Power down' <<<"$out" && pass "clean power-off" || fail "exit status $RC"
[ "$(head -n 1 <<<"$got")" = "guest-says-hello" ] && pass "host read the guest's line from /dev/hvc0" || fail "host got '$got'"
grep -qx 'GUEST-GOT host-says-hi' <<<"$out" && pass "guest read the host's line from /dev/hvc0" \
    || fail "guest read: $(grep -o 'GUEST-GOT.*' <<<"$out" || echo nothing)"
finish

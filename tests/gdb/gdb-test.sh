#!/usr/bin/env bash
# The gdb stub (issue 16, docs/gdb.md) against the real Debian guest kernel,
# with Debian's gdb-multiarch in batch mode.
#
# Symbols: Debian's linux-image package ships a placeholder System.map
# ("The real System.map is in the linux-image-<version>-dbg package", a
# download of several hundred MB), so the addresses come from the guest
# itself: a first boot (no debugger) prints the lines of /proc/kallsyms the
# test needs (as root, kptr_restrict 0). The kernel is built without
# CONFIG_RANDOMIZE_BASE and CONFIG_RELOCATABLE (its /boot/config), so every
# boot has the same addresses and no `nokaslr` is needed; the test checks
# that two probe boots agree.
#
# Then, on 2 harts over TCP: both harts are gdb threads and each reads its
# own mhartid; a hardware breakpoint on start_kernel stops hart 1 there
# (pc = the symbol, S-mode, satp on); linux_banner read through the kernel's
# page tables equals the banner the kernel prints on the console; stepi moves
# pc by the instruction's length; a software breakpoint on kernel_init (a
# kernel thread, after the MMU and the scheduler are up) stops there; with the
# breakpoints deleted, continue runs to power-off ("exited normally") and
# strata exits 0. Over a Unix socket: detach lets the guest run to its end;
# kill ends strata; Ctrl-C (0x03) from a raw client stops a running guest
# with SIGINT. And the operator errors: a bad --gdb address, an existing
# socket path.
#
# Usage: tests/gdb/gdb-test.sh        Env: STRATA_BIN, GDB (gdb-multiarch),
#        GDB_TIMEOUT (300 s per boot)
# Logs:  build/test/gdb-*.log
# Last line: "N passed, M failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GDB=${GDB:-gdb-multiarch}
TMO=${GDB_TIMEOUT:-300}
GUEST="$ROOT/build/guest"
LOG="$ROOT/build/test"
mkdir -p "$LOG"

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"
check() { # check DESC ACTUAL EXPECTED
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', expected '$3'"; fi
}

require_guest "$GUEST" fw_dynamic.bin Image initramfs.cpio
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; }
command -v "$GDB" >/dev/null || { fail "$GDB not found (run: scripts/setup-host.sh)"; finish; }
command -v python3 >/dev/null || { fail "python3 not found"; finish; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

b64() { printf '%s' "$1" | base64 -w0; }
boot_args() { # boot_args CMD -> the machine's arguments
    printf '%s\n' --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio" \
        -m 512M --append "console=ttyS0 panic=-1 strata.cmd64=$(b64 "$1")"
}
# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until strata says it waits for gdb (its log names the address).
wait_listening() { # wait_listening LOG PID
    for _ in $(seq 1 200); do
        grep -q "waiting for gdb" "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# ---- symbols from the guest --------------------------------------------------
SYMS="start_kernel kernel_init linux_banner jiffies"
probe() { # probe LOG
    mapfile -t args < <(boot_args "grep -E ' ($(echo $SYMS | tr ' ' '|'))\$' /proc/kallsyms")
    timeout --kill-after=5 "$TMO" "$STRATA_BIN" machine "${args[@]}" </dev/null >"$1" 2>&1 || true
    tr -d '\r' <"$1" | awk 'NF == 3 && length($1) == 16 && $1 ~ /^[0-9a-f]+$/ { print $3, $1 }' | sort
}
p1=$(probe "$LOG/gdb-symbols-1.log")
p2=$(probe "$LOG/gdb-symbols-2.log")
declare -A SYM
while read -r name addr; do [ -n "$name" ] && SYM[$name]=$addr; done <<<"$p1"
for s in $SYMS; do
    if [ -z "${SYM[$s]:-}" ] || [ "${SYM[$s]}" = 0000000000000000 ]; then
        fail "symbol $s not found in the guest's /proc/kallsyms (log $LOG/gdb-symbols-1.log)"
        finish
    fi
done
if [ "$p1" = "$p2" ]; then
    pass "two boots give the same kernel addresses (no KASLR): start_kernel=${SYM[start_kernel]}"
else
    fail "kernel addresses differ between boots: '$p1' vs '$p2'"
fi

# ---- 2 harts over TCP: threads, breakpoints, memory, step, power-off ----------
PORT=$(free_port)
SLOG="$LOG/gdb-strata-tcp.log"
mapfile -t args < <(boot_args "echo gdb-guest-done")
"$STRATA_BIN" machine "${args[@]}" --smp 2 --gdb "tcp:127.0.0.1:$PORT" </dev/null >"$SLOG" 2>&1 &
SPID=$!
PIDS+=("$SPID")
if ! wait_listening "$SLOG" "$SPID"; then
    fail "strata --gdb tcp did not start listening ($(tail -n 2 "$SLOG"))"
    finish
fi
# gdb waits here until the first stop; the harts have not run yet.
cat >"$TMP/a.gdb" <<EOF
set pagination off
set confirm off
set architecture riscv:rv64
target remote 127.0.0.1:$PORT
printf "THREADS=%d\n", \$_inferior_thread_count
thread 1
printf "T1PC=%lx PRIV=%d HARTID=%d\n", \$pc, \$priv, \$mhartid
thread 2
printf "T2HARTID=%d\n", \$mhartid
hbreak *0x${SYM[start_kernel]}
continue
printf "SKPC=%lx PRIV=%d SATPMODE=%d\n", \$pc, \$priv, (unsigned long) \$satp >> 60
printf "BANNER=%s", (char *) 0x${SYM[linux_banner]}
printf "INSN=%x\n", *(unsigned short *) \$pc
stepi
printf "STEPPC=%lx\n", \$pc
delete
rwatch *(char *) 0x${SYM[linux_banner]}
continue
printf "RWPC=%lx\n", \$pc
delete
break *0x${SYM[kernel_init]}
continue
printf "KIPC=%lx PRIV=%d\n", \$pc, \$priv
delete
watch *(unsigned long *) 0x${SYM[jiffies]}
continue
printf "JWPC=%lx\n", \$pc
delete
continue
EOF
timeout --kill-after=5 "$TMO" "$GDB" -batch -x "$TMP/a.gdb" >"$LOG/gdb-session-tcp.log" 2>&1 || true
set +e
timeout 60 tail --pid="$SPID" -f /dev/null || kill "$SPID"
wait "$SPID"
RC=$?
set -e
G=$(tr -d '\r' <"$LOG/gdb-session-tcp.log")
val() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$G" | head -n 1; }
check "2 harts are 2 gdb threads" "$(val THREADS)" 2
check "before the first instruction: hart 0 at the kernel's entry in M-mode" "$(val T1PC) $(sed -n 's/.*T1PC=[^ ]* PRIV=\([0-9]*\).*/\1/p' <<<"$G")" "80000000 3"
check "thread 1 is hart 0" "$(val HARTID)" 0
check "thread 2 is hart 1 (its own mhartid)" "$(val T2HARTID)" 1
check "hbreak on start_kernel: pc = the kallsyms address" "$(val SKPC)" "${SYM[start_kernel]}"
sk_line=$(grep -m1 'SKPC=' <<<"$G" || true)
sk_priv=$(sed -n 's/.*PRIV=\([0-9]*\).*/\1/p' <<<"$sk_line")
sk_satp=$(sed -n 's/.*SATPMODE=\([0-9]*\).*/\1/p' <<<"$sk_line")
check "at start_kernel the hart is in S-mode" "$sk_priv" 1
if [ "$sk_satp" = 8 ] || [ "$sk_satp" = 9 ] || [ "$sk_satp" = 10 ]; then
    pass "at start_kernel satp is on (mode $sk_satp): the banner below was read through the kernel's tables"
else
    fail "at start_kernel satp mode is '$sk_satp'"
fi
banner=$(sed -n 's/^BANNER=//p' <<<"$G" | head -n 1)
console_banner=$(tr -d '\r' <"$SLOG" | sed -n 's/^\[ *[0-9.]*\] \(Linux version .*\)$/\1/p' | head -n 1)
if [ -n "$banner" ] && [ "$banner" = "$console_banner" ]; then
    pass "linux_banner read by gdb = the banner the kernel printed ($(cut -c1-40 <<<"$banner")...)"
else
    fail "linux_banner: gdb read '$banner', the console says '$console_banner'"
fi
insn=$(val INSN)
if [ -n "$insn" ]; then
    len=$(( (0x$insn & 3) == 3 ? 4 : 2 ))
    want=$(printf '%x' $((0x${SYM[start_kernel]} + len)))
    check "stepi moves pc by the instruction's length ($len)" "$(val STEPPC)" "$want"
else
    fail "no instruction read at start_kernel"
fi
# Watchpoints (Z3 read, Z2 write): gdb must use the stub's (a hardware
# watchpoint), stop after the access, and see the value it expects.
if grep -q "^Thread 1 hit Hardware read watchpoint [0-9]*: \*(char \*) 0x${SYM[linux_banner]}" <<<"$G" \
    && grep -A3 "hit Hardware read watchpoint" <<<"$G" | grep -q "^Value = 76 'L'"; then
    pass "rwatch on linux_banner: a hardware read watchpoint stops in the kernel (pc $(val RWPC)) and sees 'L'"
else
    fail "rwatch on linux_banner: no hardware read watchpoint stop with Value = 'L' (log $LOG/gdb-session-tcp.log)"
fi
old=$(sed -n 's/^Old value = \([0-9]*\)$/\1/p' <<<"$G" | head -n 1)
new=$(sed -n 's/^New value = \([0-9]*\)$/\1/p' <<<"$G" | head -n 1)
if grep -q "hit Hardware watchpoint [0-9]*: \*(unsigned long \*) 0x${SYM[jiffies]}" <<<"$G" && [ -n "$old" ] && [ -n "$new" ] \
    && [ "$(python3 -c "print($new > $old)")" = True ]; then
    pass "watch on jiffies: a hardware watchpoint stops at the tick's store (pc $(val JWPC)), old $old, new $new"
else
    fail "watch on jiffies: want a hardware watchpoint stop with New > Old (a tick may add more than one), got old '$old' new '$new' (log $LOG/gdb-session-tcp.log)"
fi
ki_line=$(grep -m1 'KIPC=' <<<"$G" || true)
check "break (Z0) on kernel_init: pc = the kallsyms address" "$(sed -n 's/.*KIPC=\([0-9a-f]*\).*/\1/p' <<<"$ki_line")" "${SYM[kernel_init]}"
if grep -q "exited normally" <<<"$G"; then pass "continue runs to power-off: gdb sees the machine exit normally"
else fail "gdb did not see the machine exit (log $LOG/gdb-session-tcp.log)"; fi
check "strata exits 0 after the power-off" "$RC" 0
if tr -d '\r' <"$SLOG" | contains '^gdb-guest-done$'; then pass "the guest ran its command under gdb"
else fail "the guest's command output is missing (log $SLOG)"; fi

# ---- Unix socket: detach, then the guest runs on ------------------------------
unix_session() { # unix_session NAME GDB-COMMANDS... -> RC, sets SLOG
    local name=$1; shift
    local sock="$TMP/$name.sock"
    SLOG="$LOG/gdb-strata-$name.log"
    mapfile -t args < <(boot_args "echo gdb-guest-done")
    "$STRATA_BIN" machine "${args[@]}" --gdb "$sock" </dev/null >"$SLOG" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    if ! wait_listening "$SLOG" "$SPID"; then
        fail "$name: strata --gdb PATH did not start listening ($(tail -n 2 "$SLOG"))"
        RC=255
        return
    fi
    { printf 'set confirm off\nset architecture riscv:rv64\ntarget remote %s\n' "$sock"; printf '%s\n' "$@"; } >"$TMP/$name.gdb"
    timeout --kill-after=5 "$TMO" "$GDB" -batch -x "$TMP/$name.gdb" >"$LOG/gdb-session-$name.log" 2>&1 || true
    set +e
    timeout "$TMO" tail --pid="$SPID" -f /dev/null || kill "$SPID"
    wait "$SPID"
    RC=$?
    set -e
    [ ! -e "$sock" ] && pass "$name: the socket file is gone after the run" || fail "$name: $sock left behind"
}
unix_session detach "printf \"PC=%lx\\n\", \$pc" detach
check "detach over a Unix socket: strata runs the guest to power-off (exit 0)" "$RC" 0
if tr -d '\r' <"$SLOG" | contains '^gdb-guest-done$'; then pass "detach: the guest ran on to its command"
else fail "detach: the guest did not run on (log $SLOG)"; fi

unix_session kill kill
check "kill: strata ends (exit 0) without the guest having run" "$RC" 0
if tr -d '\r' <"$SLOG" | contains 'Linux version'; then fail "kill: the kernel ran"
else pass "kill: the kernel never ran"; fi

# ---- Ctrl-C from a raw client -------------------------------------------------
PORT=$(free_port)
SLOG="$LOG/gdb-strata-ctrlc.log"
mapfile -t args < <(boot_args "while true; do :; done")
"$STRATA_BIN" machine "${args[@]}" --gdb "tcp:127.0.0.1:$PORT" </dev/null >"$SLOG" 2>&1 &
SPID=$!
PIDS+=("$SPID")
if wait_listening "$SLOG" "$SPID"; then
    reply=$(timeout 60 python3 - "$PORT" <<'EOF' || true
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(30)
def send(p):
    s.sendall(b"$%s#%02x" % (p, sum(p) % 256))
def packet():
    buf = b""
    while not (b"$" in buf and b"#" in buf[buf.index(b"$"):] and len(buf) >= buf.rindex(b"#") + 3):
        buf += s.recv(4096)
    s.sendall(b"+")
    return buf[buf.index(b"$") + 1:buf.rindex(b"#")].decode()
send(b"?"); packet()
send(b"c")
time.sleep(2)            # the guest boots meanwhile
s.sendall(b"\x03")
stop = packet()
send(b"qC"); cur = packet()
send(b"k")
print(stop)
EOF
)
    # T02: SIGINT (gdb's signal numbering), on a thread.
    case "$reply" in
        T02*) pass "Ctrl-C (0x03) stops a running guest with SIGINT ($reply)" ;;
        *) fail "Ctrl-C: stop reply '$reply'" ;;
    esac
    set +e
    timeout 60 tail --pid="$SPID" -f /dev/null || kill "$SPID"
    wait "$SPID"
    RC=$?
    set -e
    check "after Ctrl-C and kill strata ends" "$RC" 0
else
    fail "ctrl-c: strata did not listen"
fi

# ---- operator errors ----------------------------------------------------------
set +e
out=$(timeout 30 "$STRATA_BIN" machine --bios none --kernel "$GUEST/Image" --gdb bogus 2>&1 </dev/null)
rc=$?
set -e
if [ "$rc" = 1 ] && grep -q -- "--gdb bogus: expected tcp:ADDRESS:PORT" <<<"$out"; then
    pass "a bad --gdb address: one error line, exit 1"
else
    fail "a bad --gdb address: exit $rc, '$out'"
fi
touch "$TMP/taken"
set +e
mapfile -t args < <(boot_args "true")
out=$(timeout 30 "$STRATA_BIN" machine "${args[@]}" --gdb "$TMP/taken" 2>&1 </dev/null)
rc=$?
set -e
if [ "$rc" = 1 ] && grep -q "the path exists" <<<"$out" && [ -f "$TMP/taken" ]; then
    pass "an existing --gdb path is refused and left alone"
else
    fail "an existing --gdb path: exit $rc, '$out'"
fi

finish

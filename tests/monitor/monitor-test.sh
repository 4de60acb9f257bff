#!/usr/bin/env bash
# Monitor test (docs/monitor.md): Debian's kernel and the Strata initramfs
# boot on `strata machine --api-sock --system-map`, and the guest kernel is
# read from outside while it runs.
#
#  1. `strata inspect` lists the same processes as the guest's own
#     `ps -o pid,comm` (all but the ps process itself; names compared as
#     prefixes: the guest's ps appends a kworker's workqueue to its name).
#  2. The integrity monitor checking every 10 ms through a boot and a busy
#     workload (many short processes) raises no alarm; the same run with
#     retry=off is reported beside it (its alarms are the false alarms retry
#     removes: counted, not asserted, since they depend on timing).
#  3. A simulated attack raises the right alarms. No kernel module is built
#     (Debian's headers are not fetched here): the test does what a rootkit
#     module would, by test-only writes to guest memory through the control
#     API (PUT /machine/memory): it replaces system call 0 in
#     sys_call_table, and unlinks a `sleep` task from the task list (its
#     neighbours' list pointers, found through GET /machine/vmemory and the
#     BTF layout of GET /machine/layout). Expected: a `syscalls` violation
#     naming system call 0, and a `tasks` violation naming the hidden pid,
#     which `strata inspect` no longer lists.
#  4. Device monitors and fault injection on a virtio-blk disk (a 4 MiB
#     image of zeros): two blk-trace monitors on the same disk both see
#     every request (their counts agree, and agree with the fault
#     injector's, which sees every request too); --fault blk,sector=2048
#     makes the guest's read of sector 2048 fail and nothing else (every
#     I/O error the guest kernel logs names sector 2048, as many as were
#     injected; reads elsewhere succeed). `strata inspect modules` lists the
#     modules the guest's /proc/modules lists.
#
# Usage: tests/monitor/monitor-test.sh
# Env:   STRATA_BIN (default target/release/strata), GUEST_DIR (build/guest),
#        SYSTEM_MAP (default $GUEST_DIR/System.map, from
#        scripts/fetch-symbols.sh), MONITOR_TIMEOUT (300), LOGDIR
#        (default build/test), LOAD_ROUNDS (busy workload size, 200)
# Last line of output: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GUEST=${GUEST_DIR:-$ROOT/build/guest}
MAP=${SYSTEM_MAP:-$GUEST/System.map}
TIMEOUT=${MONITOR_TIMEOUT:-300}
LOAD_ROUNDS=${LOAD_ROUNDS:-200}
LOGDIR=${LOGDIR:-$ROOT/build/test}
mkdir -p "$LOGDIR"
WORK=$(mktemp -d /tmp/strata-monitor-test.XXXXXX)
SOCK="$WORK/api.sock"
MPID=""
cleanup() {
    [ -n "$MPID" ] && kill "$MPID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

require_guest "$GUEST" fw_dynamic.bin Image initramfs.cpio
[ -s "$MAP" ] || { fail "missing $MAP (run: scripts/fetch-symbols.sh)"; finish; }
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; }
for t in curl python3; do
    command -v "$t" >/dev/null 2>&1 || { fail "$t not found (run: scripts/setup-host.sh)"; finish; }
done

api() { curl -s --max-time 30 --unix-socket "$SOCK" -X "$1" ${3:+--data "$3"} "http://localhost$2"; }
# json EXPR: evaluates a Python expression over the JSON on stdin (as `j`).
json() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
wait_log() {   # wait_log LOG PATTERN SECS
    for _ in $(seq $(($3 * 10))); do grep -q "$2" "$1" && return 0; sleep 0.1; done
    return 1
}
# boot NAME APPEND [FLAGS...]: starts strata machine in the background.
boot() {
    local name=$1 append=$2; shift 2
    LOG="$LOGDIR/monitor-$name.log"
    local cmd=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
        --initrd "$GUEST/initramfs.cpio" --append "console=ttyS0 panic=-1 $append" -m 256M
        --api-sock "$SOCK" --system-map "$MAP" "$@")
    { printf '#'; printf ' %q' "${cmd[@]}"; echo; } >"$LOG"
    echo "== $name (log $LOG)"
    timeout --kill-after=10 "$TIMEOUT" "${cmd[@]}" </dev/null >>"$LOG" 2>&1 &
    MPID=$!
}
stop() {
    api PUT /machine/stop >/dev/null || true
    wait "$MPID" 2>/dev/null || true
    MPID=""
}

# ---- 1. strata inspect against the guest's ps --------------------------------
boot inspect 'strata.cmd="sleep 600 & sleep 601 & sleep 100000 & sleep 5; ps -o pid,comm; echo PS-END; wait"'
if wait_log "$LOG" "^PS-END" 200; then
    "$STRATA_BIN" inspect --api-sock "$SOCK" processes >"$WORK/inspect.txt" 2>"$WORK/inspect.err" || true
    "$STRATA_BIN" inspect --api-sock "$SOCK" syscalls >"$LOGDIR/monitor-syscalls.txt" 2>&1 || true
    sed -n '/^ *PID *COMMAND/,/^PS-END/p' "$LOG" | tr -d '\r' | sed '1d;$d' >"$WORK/ps.txt"
    cp "$WORK/inspect.txt" "$LOGDIR/monitor-inspect.txt"
    if python3 - "$WORK/ps.txt" "$WORK/inspect.txt" <<'PY'
import sys
ps = {}
for l in open(sys.argv[1]):
    f = l.split(None, 1)
    if len(f) == 2 and f[0].isdigit():
        ps[int(f[0])] = f[1].strip()
ins = {}
for l in list(open(sys.argv[2]))[1:]:
    f = l.split()
    ins[int(f[0])] = f[2]
me = [p for p, c in ps.items() if c == "ps"]
want = set(ps) - set(me)
print(f"ps: {len(ps)} processes (ps itself: {me}); strata inspect: {len(ins)}")
ok = len(ps) > 10 and len(me) == 1 and set(ins) == want
for p in sorted(want ^ set(ins)):
    print(f"  pid {p}: ps {ps.get(p)!r}, inspect {ins.get(p)!r}")
for p in sorted(want & set(ins)):
    if not ps[p].startswith(ins[p]):
        print(f"  pid {p}: ps calls it {ps[p]!r}, inspect {ins[p]!r}")
        ok = False
sys.exit(0 if ok else 1)
PY
    then pass "strata inspect lists exactly the processes the guest's ps lists (but ps)"; else fail "strata inspect differs from ps (see above)"; fi
    check "the syscall table lists read as __riscv_sys_read" grep -qE "^ +63 +0x[0-9a-f]+ +__riscv_sys_read$" "$LOGDIR/monitor-syscalls.txt"
else
    fail "the guest did not print its ps listing (see $LOG)"
fi
stop

# ---- 2. no false alarm through a boot and a busy workload ----------------------
LOAD="i=0; while [ \$i -lt $LOAD_ROUNDS ]; do /bin/busybox true; sh -c 'cat /proc/self/stat >/dev/null'; i=\$((i+1)); done; echo LOAD-DONE; sleep 100000 & wait"
declare -A ALARMS ROUNDS RETRIES GAVEUP
for retry in on off; do
    boot "load-retry-$retry" "strata.cmd=\"$LOAD\"" --monitor "integrity,interval=10ms,retry=$retry"
    if wait_log "$LOG" "^LOAD-DONE" "$TIMEOUT"; then
        sleep 0.5
        api GET /machine/monitor >"$WORK/mon-$retry.json"
        cp "$WORK/mon-$retry.json" "$LOGDIR/monitor-load-retry-$retry.json"
        ALARMS[$retry]=$(json 'len(j["violations"])' <"$WORK/mon-$retry.json")
        ROUNDS[$retry]=$(json 'j["stats"]["rounds"]' <"$WORK/mon-$retry.json")
        RETRIES[$retry]=$(json 'sum(j["stats"]["retries"].values())' <"$WORK/mon-$retry.json")
        GAVEUP[$retry]=$(json 'sum(j["stats"]["gave_up"].values())' <"$WORK/mon-$retry.json")
        echo "retry=$retry: ${ROUNDS[$retry]} rounds of checks, ${RETRIES[$retry]} retries, ${GAVEUP[$retry]} given up, ${ALARMS[$retry]} alarms"
        check "retry=$retry: the monitor ran checks through the workload (${ROUNDS[$retry]} rounds)" \
            test "${ROUNDS[$retry]}" -ge 10
    else
        fail "retry=$retry: the workload did not finish (see $LOG)"
        ALARMS[$retry]=?
    fi
    stop
done
check "with optimistic retry: no false alarm (retry off: ${ALARMS[off]} alarms, shown in $LOGDIR/monitor-load-retry-off.json)" \
    test "${ALARMS[on]}" = 0

# ---- 3. a simulated attack ------------------------------------------------------
boot attack 'strata.cmd="sleep 600 & sleep 100000 & echo GUEST-UP; wait"' --monitor integrity,interval=20ms
armed() { api GET /machine/monitor | json 'j["stats"]["armed"] and j["stats"]["rounds"] >= 3' 2>/dev/null | contains True; }
if wait_log "$LOG" "^GUEST-UP" 200 && { for _ in $(seq 300); do armed && break; sleep 0.1; done; armed; }; then
    sym() { awk -v s="$1" '$3 == s { print $1; exit }' "$MAP"; }
    LOAD_PA=$(api GET /machine | json 'j["config"]["kernel_range"][0]')
    # Test-only write 1: system call 0 now points at sys_ni_syscall.
    SLOT=$(python3 -c "print(hex(int('$LOAD_PA',16) + int('$(sym sys_call_table)',16) - int('$(sym _start)',16)))")
    NI=$(python3 -c "print(int('$(sym sys_ni_syscall)',16).to_bytes(8,'little').hex())")
    api PUT /machine/memory "{\"addr\": \"$SLOT\", \"data\": \"$NI\"}"
    # Test-only write 2: the first `sleep` unlinked from the task list.
    api GET /machine/processes >"$WORK/procs.json"
    read -r VPID TASK < <(json '[(p["pid"], p["task"]) for p in j if p["comm"] == "sleep"][0]' <"$WORK/procs.json" | tr -d "()',")
    OFF=$(api GET /machine/layout | json 'j["task_tasks"]')
    NODE=$(python3 -c "print(hex(int('$TASK',16) + $OFF))")
    read -r NEXT PREV < <(api GET "/machine/vmemory?addr=$NODE&len=16" \
        | json '" ".join(hex(int.from_bytes(bytes.fromhex(j["data"])[i:i+8], "little")) for i in (0, 8))')
    PREV_NEXT_PA=$(api GET "/machine/vmemory?addr=$PREV&len=8" | json 'j["pa"]')
    NEXT_PREV_PA=$(api GET "/machine/vmemory?addr=$(python3 -c "print(hex($NEXT + 8))")&len=8" | json 'j["pa"]')
    le() { python3 -c "print(($1).to_bytes(8,'little').hex())"; }
    api PUT /machine/memory "{\"addr\": \"$PREV_NEXT_PA\", \"data\": \"$(le "$NEXT")\"}"
    api PUT /machine/memory "{\"addr\": \"$NEXT_PREV_PA\", \"data\": \"$(le "$PREV")\"}"
    echo "attack: syscall 0 at $SLOT; pid $VPID (task $TASK) unlinked"
    seen() { api GET /machine/monitor | python3 -c "import json,sys; j=json.load(sys.stdin); sys.exit(0 if any(v['check']=='$1' and '$2' in v['what'] for v in j['violations']) else 1)"; }
    for _ in $(seq 100); do seen syscalls "system call 0:" && seen tasks "pid $VPID " && break; sleep 0.1; done
    api GET /machine/monitor >"$LOGDIR/monitor-attack.json"
    check "the syscall-table write is raised (syscalls: system call 0)" seen syscalls "system call 0:"
    check "the unlinked task is raised as hidden (tasks: pid $VPID)" seen tasks "pid $VPID "
    check "the alarm is logged on stderr" grep -q "integrity violation (syscalls)" "$LOG"
    api GET /machine/processes >"$WORK/procs2.json"
    check "strata inspect no longer lists the hidden pid $VPID" \
        python3 -c "import json,sys; sys.exit(any(p['pid']==$VPID for p in json.load(open('$WORK/procs2.json'))))"
    check "no false alarm before the attack (only syscalls, rodata, tasks raised)" \
        python3 -c "import json,sys; sys.exit(not all(v['check'] in ('syscalls','rodata','tasks') for v in json.load(open('$LOGDIR/monitor-attack.json'))['violations']))"
else
    fail "the guest did not come up, or the monitor never armed (see $LOG)"
fi
stop

# ---- 4. device monitors and fault injection ---------------------------------------
truncate -s 4M "$WORK/disk.img"
IOCMD='cut -d" " -f1 /proc/modules | sort | tr "\n" " " | sed "s/^/MODULES: /"; echo
dd if=/dev/vda of=/dev/null bs=512 skip=2048 count=1; echo DD-CHOSEN=$?
dd if=/dev/vda of=/dev/null bs=512 count=8; echo DD-START=$?
dd if=/dev/vda of=/dev/null bs=512 skip=4000 count=8; echo DD-END=$?
echo IO-DONE; sleep 100000 & wait'
boot io "strata.modules=virtio_mmio,virtio_blk strata.cmd64=$(printf %s "$IOCMD" | base64 -w0)" \
    --drive "file=$WORK/disk.img" --monitor blk-trace --monitor blk-trace,drive=0 --fault blk,sector=2048
if wait_log "$LOG" "^IO-DONE" 200; then
    api GET /machine/monitor >"$LOGDIR/monitor-io.json"
    "$STRATA_BIN" inspect --api-sock "$SOCK" modules >"$WORK/modules.txt" 2>&1 || true
    tr -d '\r' <"$LOG" >"$WORK/io.log"
    check "the guest's read of the chosen sector 2048 fails" grep -qE '^DD-CHOSEN=[1-9]' "$WORK/io.log"
    check "its reads of other sectors succeed" bash -c "grep -q '^DD-START=0' '$WORK/io.log' && grep -q '^DD-END=0' '$WORK/io.log'"
    if python3 - "$LOGDIR/monitor-io.json" "$WORK/io.log" <<'PY'
import json, re, sys
io = json.load(open(sys.argv[1]))["io"]
traces = [m["requests"] for m in io if m["monitor"] == "blk-trace"]
fault = [m for m in io if m["monitor"] == "fault"][0]
errors = re.findall(r"\] I/O error, dev vda, sector (\d+)", open(sys.argv[2]).read())
print(f"blk-trace monitors saw {traces} requests; the injector saw {fault['requests']} and failed {fault['injected']}; the guest logged I/O errors at sectors {errors}")
ok = len(traces) == 2 and traces[0] == traces[1] == fault["requests"] > 0
ok &= fault["injected"] > 0 and len(errors) == fault["injected"] and set(errors) == {"2048"}
sys.exit(0 if ok else 1)
PY
    then pass "two monitors on one disk both saw every request; the guest saw exactly the injected errors"; else fail "device monitors or fault injection (above)"; fi
    GUEST_MODS=$(sed -n 's/^MODULES: //p' "$WORK/io.log" | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' ')
    OUR_MODS=$(awk 'NR > 1 { print $1 }' "$WORK/modules.txt" | sort | tr '\n' ' ')
    echo "modules: guest /proc/modules: $GUEST_MODS; strata inspect: $OUR_MODS"
    check "strata inspect modules lists the guest's modules" test -n "$GUEST_MODS" -a "$GUEST_MODS" = "$OUR_MODS"
else
    fail "the disk workload did not finish (see $LOG)"
fi
stop

# ---- errors ----------------------------------------------------------------------
st=0
out=$("$STRATA_BIN" machine --kernel "$GUEST/Image" --monitor integrity 2>&1) || st=$?
check "--monitor without --system-map: one clear error line, status 1" \
    test "$st" = 1 -a "$out" = "strata: --monitor needs --system-map FILE (the guest kernel's symbols; docs/monitor.md)"
st=0
out=$("$STRATA_BIN" run --kernel "$GUEST/Image" -m 64M --protected --monitor integrity 2>&1) || st=$?
check "a protected VM refuses monitors: one clear error line, status 1" \
    test "$st" = 1 -a "$out" = "strata: --monitor: VM vm0 is protected: no monitor may read its memory or watch its devices"
finish

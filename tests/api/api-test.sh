#!/usr/bin/env bash
# Control API test (docs/api.md): Debian's kernel and the Strata initramfs
# (build/guest) boot on `strata machine --api-sock`, and curl talks to the
# socket while the guest runs: the socket's mode, a second Strata refused
# on it, GET /machine, /metrics parsed as Prometheus text with counters
# that only grow (tests/api/prom-check.py), pause (instructions stand
# still between two scrapes) and resume (they grow), the kernel's first
# bytes read back at the address GET /machine reports (compared with the
# Image file), the error statuses, stop (exit status 0, the socket file
# gone, --stats-json written). Then the same kernel in a protected VM under
# `strata run --api-sock`: GET /vms, per-VM counters that grow, its memory
# refused with 403; a second VM created with POST /vms reaches userspace
# and is deleted; stop.
#
# Usage: tests/api/api-test.sh [--timeout SECS]
# Env:   STRATA_BIN (default target/release/strata), API_TIMEOUT (120)
# Logs:  build/test/api-*.log
# Last line of output: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
TIMEOUT=${API_TIMEOUT:-120}
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) TIMEOUT=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "api-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

GUEST="$ROOT/build/guest"
LOGDIR="$ROOT/build/test"
mkdir -p "$LOGDIR"
WORK=$(mktemp -d /tmp/strata-api-test.XXXXXX)
SOCK="$WORK/api.sock"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

require_guest "$GUEST" fw_dynamic.bin Image initramfs.cpio
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; }
for t in curl jq python3; do
    command -v "$t" >/dev/null 2>&1 || { fail "$t not found (run: scripts/setup-host.sh)"; finish; }
done

# status METHOD PATH [BODY]: prints the HTTP status; the body goes to $WORK/body.
status() {
    curl -s --max-time 30 --unix-socket "$SOCK" -X "$1" ${3:+--data "$3"} -o "$WORK/body" -w '%{http_code}' \
        "http://localhost$2"
}
# body METHOD PATH [BODY]: prints the body.
body() { status "$@" >/dev/null; cat "$WORK/body"; }
# The guest's instructions retired, summed over harts, from one scrape.
retired() { awk '/^strata_instructions_retired_total/ { s += $2 } END { printf "%.0f\n", s }' "$1"; }
wait_for() {   # wait_for SECS CMD...: until CMD succeeds
    local secs=$1; shift
    for _ in $(seq $((secs * 10))); do "$@" && return 0; sleep 0.1; done
    return 1
}

# ---- strata machine ---------------------------------------------------------
LOG="$LOGDIR/api-machine.log"
STATS="$WORK/stats.json"
# The guest says it is up, then spins: instructions grow as long as it runs.
APPEND='console=ttyS0 panic=-1 strata.cmd="echo API-GUEST-UP; while :; do :; done"'
cmd=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
     --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 256M
     --api-sock "$SOCK" --stats-json "$STATS")
{ printf '#'; printf ' %q' "${cmd[@]}"; echo; } >"$LOG"
echo "== strata machine --api-sock (log $LOG)"
timeout --kill-after=10 "$TIMEOUT" "${cmd[@]}" </dev/null >>"$LOG" 2>&1 &
MPID=$!
PIDS+=("$MPID")

if ! wait_for 30 test -S "$SOCK"; then
    fail "no socket at $SOCK (log: $(tail -n 3 "$LOG" | tr '\n' '|'))"
    finish
fi
check "the socket is owner-only (0600)" test "$(stat -c %a "$SOCK")" = 600

# A second Strata on the same socket: refused with one line, status 1; the
# first one still answers.
set +e
second=$("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" -m 64M \
    --api-sock "$SOCK" </dev/null 2>&1)
rc=$?
set -e
if [ "$rc" -eq 1 ] && grep -q "another process is serving on this socket" <<<"$second"; then
    pass "a second Strata on the socket is refused (status 1): $second"
else
    fail "a second Strata on the socket: status $rc, said: $second"
fi

m=$(body GET /machine)
check "GET /machine: running, 1 hart, 256 MiB, host clock" \
    test "$(jq -r '[.state, .harts, .ram_bytes, .clock] | join(" ")' <<<"$m")" = "running 1 268435456 host"

if wait_for "$TIMEOUT" grep -q '^API-GUEST-UP' "$LOG"; then
    pass "the guest booted to its command"
else
    fail "the guest never said API-GUEST-UP (log: $(tail -n 3 "$LOG" | tr '\n' '|'))"
    finish
fi

# Three scrapes while it runs: each parses, counters only grow.
for i in 1 2 3; do body GET /metrics >"$WORK/m$i.txt"; sleep 0.3; done
if out=$(python3 "$ROOT/tests/api/prom-check.py" "$WORK"/m{1,2,3}.txt); then
    pass "/metrics parses as Prometheus text, counters only grow over 3 scrapes ($out)"
else
    fail "/metrics: $out"
fi
check "instructions retired grow while the guest runs" test "$(retired "$WORK/m3.txt")" -gt "$(retired "$WORK/m1.txt")"
check "/metrics has TLB, trap and host RSS series" \
    grep -q -e '^strata_tlb_misses_total{hart="0",access="load"}' "$WORK/m3.txt"
check "/metrics has the host's RSS" grep -q '^strata_host_rss_bytes [1-9]' "$WORK/m3.txt"

# Pause: the instructions retired stand still; resume: they grow.
check "PUT /machine/pause: 204" test "$(status PUT /machine/pause)" = 204
check "GET /machine says paused" test "$(body GET /machine | jq -r .state)" = paused
check "PUT /machine/pause again: 409" test "$(status PUT /machine/pause)" = 409
body GET /metrics >"$WORK/p1.txt"; sleep 1; body GET /metrics >"$WORK/p2.txt"
check "paused: instructions retired stand still over 1 s ($(retired "$WORK/p1.txt"))" \
    test "$(retired "$WORK/p1.txt")" -eq "$(retired "$WORK/p2.txt")"
check "PUT /machine/resume: 204" test "$(status PUT /machine/resume)" = 204
sleep 0.5
body GET /metrics >"$WORK/r1.txt"
check "resumed: instructions retired grow" test "$(retired "$WORK/r1.txt")" -gt "$(retired "$WORK/p2.txt")"
check "counters only grow across pause and resume" \
    python3 "$ROOT/tests/api/prom-check.py" "$WORK"/m3.txt "$WORK"/p1.txt "$WORK"/p2.txt "$WORK"/r1.txt

# Memory: the kernel's first 64 bytes, where GET /machine says it landed,
# are the Image file's (the header; Linux does not rewrite it).
kstart=$(body GET /machine | jq -r '.config.kernel_range[0]')
got=$(body GET "/machine/memory?addr=$kstart&len=64" | jq -r .data)
want=$(head -c 64 "$GUEST/Image" | od -An -v -tx1 | tr -d ' \n')
check "GET /machine/memory at the kernel ($kstart) reads the Image's header" test "$got" = "$want"

# Errors.
check "resume while running: 409" test "$(status PUT /machine/resume)" = 409
check "GET /vms on strata machine: 404" test "$(status GET /vms)" = 404
check "unknown field: 400" test "$(status PUT /machine/pause '{"force":true}')" = 400
check "malformed JSON: 400" test "$(status PUT /machine/memory '{"addr":')" = 400
check "memory outside RAM: 400" test "$(status GET '/machine/memory?addr=0x1000&len=4')" = 400
check "POST /machine: 405" test "$(status POST /machine)" = 405
check "an error body is JSON with a message" \
    test "$(body GET /nowhere | jq -r 'has("error")')" = true

# Stop: strata exits 0, says why, removes the socket, writes --stats-json.
check "PUT /machine/stop: 204" test "$(status PUT /machine/stop)" = 204
set +e
wait "$MPID"
rc=$?
set -e
check "strata machine exits with status 0 after stop (got $rc)" test "$rc" -eq 0
check "it says it was stopped through the API" grep -q 'strata: stopped through the control API' "$LOG"
check "the socket file is gone" test ! -e "$SOCK"
check "--stats-json: JSON with the instructions retired" \
    test "$(jq '.instructions > 0 and (.harts | length) == 1' "$STATS")" = true

# ---- strata run: a protected VM ---------------------------------------------
LOG="$LOGDIR/api-run.log"
cmd=("$STRATA_BIN" run --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio" --append "$APPEND"
     -m 256M --name sealed --protected --spare-memory 256M --api-sock "$SOCK")
{ printf '#'; printf ' %q' "${cmd[@]}"; echo; } >"$LOG"
echo "== strata run --protected --api-sock (log $LOG)"
timeout --kill-after=10 "$TIMEOUT" "${cmd[@]}" </dev/null >>"$LOG" 2>&1 &
RPID=$!
PIDS+=("$RPID")
if ! wait_for 30 test -S "$SOCK"; then
    fail "strata run: no socket (log: $(tail -n 3 "$LOG" | tr '\n' '|'))"
    finish
fi
vms=$(body GET /vms)
check "GET /vms lists the protected VM" test "$(jq -r '[.[] | "\(.name) \(.protected)"] | join(",")' <<<"$vms")" = "sealed true"
check "GET /vms/nobody: 404" test "$(status GET /vms/nobody)" = 404
code=$(status GET "/vms/sealed/memory?addr=0x80000000&len=16")
check "a protected VM's memory: 403 with the reason ($(jq -r .error "$WORK/body"))" \
    test "$code $(jq -r .error "$WORK/body" | grep -c protected)" = "403 1"
check "machine memory under strata run: 403" test "$(status GET '/machine/memory?addr=0x80000000&len=16')" = 403
s1=$(body GET /vms/sealed | jq '.vcpus[0].exits')
wait_for 30 bash -c "[ \"\$(curl -s --unix-socket '$SOCK' http://localhost/vms/sealed | jq '.vcpus[0].exits')\" -gt $s1 ]" \
    && pass "the VM's exit counter grows ($s1 and on)" || fail "the VM's exit counter stays at $s1"
body GET /metrics >"$WORK/v.txt"
check "/metrics has per-VM exits by reason" grep -q '^strata_vcpu_exits_by_reason_total{vm="sealed",vcpu="0",reason="sbi"}' "$WORK/v.txt"
# A second VM, created on the running hypervisor and shadow-paged: it
# reaches userspace (its /init runs the command), is deleted, and says so
# in /vms.
WEB_APPEND='console=ttyS0 panic=-1 strata.cmd="echo WEB-UP-$((6 * 7)); while :; do sleep 1; done"'
req=$(jq -cn --arg k "$GUEST/Image" --arg i "$GUEST/initramfs.cpio" --arg c "$WEB_APPEND" \
    '{name: "web", kernel: $k, initrd: $i, cmdline: $c, memory: "192M", paging: "shadow"}')
check "POST /vms with paging tpt: 400" test "$(status POST /vms "$(jq -c '.paging = "tpt"' <<<"$req")")" = 400
check "POST /vms: 201" test "$(status POST /vms "$req")" = 201
check "the new VM is listed running" test "$(jq -r .state "$WORK/body")" = running
check "the new VM is listed shadow-paged" test "$(jq -r .paging "$WORK/body")" = shadow
check "the protected VM is listed nested-paged" test "$(body GET /vms/sealed | jq -r .paging)" = nested
check "POST /vms with the same name: 409" test "$(status POST /vms "$req")" = 409
if wait_for 60 grep -q '^\[web\] WEB-UP-42' "$LOG"; then
    pass "the VM created through the API reached userspace ([web] WEB-UP-42 on the console)"
else
    fail "the VM created through the API never printed WEB-UP-42 (log: $(tail -n 3 "$LOG" | tr '\n' '|'))"
fi
check "DELETE /vms/web: 204" test "$(status DELETE /vms/web)" = 204
check "the deleted VM has ended" test "$(body GET /vms/web | jq -r .state)" = "powered off"
check "the protected VM still runs" test "$(body GET /vms/sealed | jq -r .state)" = running
check "strata run: PUT /machine/stop: 204" test "$(status PUT /machine/stop)" = 204
set +e
wait "$RPID"
rc=$?
set -e
check "strata run exits with status 0 after stop (got $rc)" test "$rc" -eq 0
check "strata run: the socket file is gone" test ! -e "$SOCK"

finish

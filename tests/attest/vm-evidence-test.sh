#!/usr/bin/env bash
# Evidence for VMs (issue 17, docs/attestation.md "Evidence for VMs"):
#
#   1. two VMs under `strata run`, one protected, each running the evidence
#      guest (tests/attest/evidence.c) with its own verifier nonce on its
#      command line; the hypervisor writes its public key (--attest-pubkey);
#   2. the guest sees the documented errors (a short buffer: -3 and the size
#      needed; a nonce outside its RAM: -5) and prints its evidence;
#   3. `strata attest verify-vm` accepts the protected VM's evidence for the
#      same configuration, and rejects it with another nonce, another
#      command line, another memory size, one changed byte, the key of
#      another run, or another hypervisor executable; the ordinary VM's
#      evidence is rejected unless --allow-unprotected;
#   4. `strata attest vm-measure` prints the measurement the accepted
#      evidence carries, and two runs make two different keys.
#
# Env: STRATA_BIN, CC_RISCV (riscv64-unknown-elf-gcc), TEST_LOGDIR (build/test)
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/attest"
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
CC=${CC_RISCV:-riscv64-unknown-elf-gcc}
LOG=${TEST_LOGDIR:-$ROOT/build/test}/attest-vm
# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"
mkdir -p "$LOG"
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; }
command -v "$CC" >/dev/null || { fail "$CC not found (run: scripts/setup-host.sh)"; finish; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if ! "$CC" -march=rv64gc -mabi=lp64d -mcmodel=medany -nostdlib -nostartfiles -static -ffreestanding -O2 \
        -T "$ROOT/tests/conformance/env/link.ld" -o "$WORK/evidence.elf" \
        "$ROOT/tests/hyp/probe-start.S" "$HERE/evidence.c" 2>"$LOG/cc.log"; then
    cat "$LOG/cc.log"; fail "cannot build the evidence guest"; finish
fi
nonce() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
N1=$(nonce)
N2=$(nonce)
# config FILE SEALED-CMDLINE SEALED-MEMORY
config() {
    cat >"$1" <<TOML
harts = 2
[[vm]]
name = "sealed"
memory = "$3"
protected = true
kernel = "evidence.elf"
cmdline = "$2"
[[vm]]
name = "plain"
memory = "16M"
kernel = "evidence.elf"
cmdline = "nonce=$N2"
TOML
}
config "$WORK/vms.toml" "nonce=$N1" 16M

# run N: one strata run of vms.toml; its key in key-N.pub, its log run-N.log.
run() {
    rm -f "$WORK/key-$1.pub"
    timeout --kill-after=10 300 "$STRATA_BIN" run --config "$WORK/vms.toml" --attest-pubkey "$WORK/key-$1.pub" \
        </dev/null >"$LOG/run-$1.log" 2>&1
}
run 1
RC=$?
[ "$RC" = 0 ] && pass "1: both VMs ran to power-off (exit 0)" || fail "1: strata run exit $RC (log $LOG/run-1.log)"
KEY=$(cat "$WORK/key-1.pub" 2>/dev/null)
[[ "$KEY" =~ ^[0-9a-f]{64}$ ]] && pass "1: --attest-pubkey wrote a 32-byte public key in hex" \
    || fail "1: --attest-pubkey wrote '$KEY'"

line() { tr -d '\r' <"$LOG/run-1.log" | sed -n "s/^\[$1\] $2 //p" | head -n 1; }
for vm in sealed plain; do
    [ "$(line $vm EVIDENCE-SHORT)" = "-3 176" ] && pass "2: $vm: a short buffer gets INVALID_PARAM and the size needed (176)" \
        || fail "2: $vm: short buffer: '$(line $vm EVIDENCE-SHORT)'"
    [ "$(line $vm EVIDENCE-BADNONCE)" = "-5" ] && pass "2: $vm: a nonce outside its RAM gets INVALID_ADDRESS" \
        || fail "2: $vm: bad nonce: '$(line $vm EVIDENCE-BADNONCE)'"
    line $vm EVIDENCE >"$WORK/$vm.ev"
    [ "$(wc -c <"$WORK/$vm.ev")" = 353 ] && pass "2: $vm printed its evidence (176 bytes)" \
        || fail "2: $vm printed no evidence ($(line $vm EVIDENCE-ERR))"
done

# verify NAME WANT(ok|reject) EVIDENCE KEY NONCE [ARGS...]: verify-vm against vms.toml.
verify() {
    local name=$1 want=$2 ev=$3 key=$4 n=$5 out rc
    shift 5
    out=$("$STRATA_BIN" attest verify-vm --evidence "$ev" --key "$key" --nonce "$n" --config "$WORK/vms.toml" "$@" 2>&1)
    rc=$?
    if { [ "$want" = ok ] && [ $rc = 0 ] && grep -q "^evidence OK" <<<"$out"; } \
        || { [ "$want" = reject ] && [ $rc = 1 ] && grep -q "^strata: evidence REJECTED" <<<"$out"; }; then
        pass "3: $name: $(head -n 1 <<<"$out")"
    else
        fail "3: $name: want $want, got exit $rc: $out"
    fi
}
verify "the protected VM's evidence" ok "$WORK/sealed.ev" "$WORK/key-1.pub" "$N1" --vm sealed
verify "another nonce" reject "$WORK/sealed.ev" "$WORK/key-1.pub" "$N2" --vm sealed
verify "the ordinary VM without --allow-unprotected" reject "$WORK/plain.ev" "$WORK/key-1.pub" "$N2" --vm plain
verify "the ordinary VM with --allow-unprotected" ok "$WORK/plain.ev" "$WORK/key-1.pub" "$N2" --vm plain --allow-unprotected
verify "another hypervisor executable" reject "$WORK/sealed.ev" "$WORK/key-1.pub" "$N1" --vm sealed --hypervisor /bin/sh
# One changed byte (in the measurement): the signature no longer verifies.
python3 -c 'import sys; s = open(sys.argv[1]).read().strip(); c = "1" if s[40] == "0" else "0"; print(s[:40] + c + s[41:])' \
    "$WORK/sealed.ev" >"$WORK/flipped.ev"
[ "$(cat "$WORK/flipped.ev")" != "$(cat "$WORK/sealed.ev")" ] || fail "3: the flipped evidence equals the original"
verify "one byte changed" reject "$WORK/flipped.ev" "$WORK/key-1.pub" "$N1" --vm sealed
cp "$WORK/vms.toml" "$WORK/vms.good"
config "$WORK/vms.toml" "nonce=$N1 quiet" 16M
verify "another command line" reject "$WORK/sealed.ev" "$WORK/key-1.pub" "$N1" --vm sealed
config "$WORK/vms.toml" "nonce=$N1" 32M
verify "another memory size" reject "$WORK/sealed.ev" "$WORK/key-1.pub" "$N1" --vm sealed
cp "$WORK/vms.good" "$WORK/vms.toml"
run 2
[ "$(cat "$WORK/key-2.pub")" != "$KEY" ] && pass "4: a second run made another key" || fail "4: two runs, one key"
verify "the key of another run" reject "$WORK/sealed.ev" "$WORK/key-2.pub" "$N1" --vm sealed
M=$("$STRATA_BIN" attest vm-measure --config "$WORK/vms.toml" --vm sealed 2>&1)
[ "${M:0:64}" = "$(cut -c33-96 "$WORK/sealed.ev")" ] && pass "4: attest vm-measure prints the measurement in the evidence ($M)" \
    || fail "4: vm-measure '$M', evidence carries $(cut -c33-96 "$WORK/sealed.ev")"
out=$("$STRATA_BIN" attest vm-measure --config "$WORK/vms.toml" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "say which with --vm" <<<"$out" && pass "4: several VMs and no --vm: one error line, exit 1" \
    || fail "4: several VMs and no --vm: exit $rc: $out"
finish

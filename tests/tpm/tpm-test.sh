#!/usr/bin/env bash
# TPM and measured boot test (docs/attestation.md): the Debian guest boots
# with `--tpm swtpm`; in the guest, tests/tpm/tpm-tool.c (static, appended to
# the initramfs as /tpm-tool) reads the SHA-256 PCRs through the TIS
# registers and the TPM's device-tree node.
#
# Debian's 6.12 kernel has no tpm_tis driver (CONFIG_TCG_TIS is not set):
# most checks use tpm-tool, which drives the TIS FIFO itself through /dev/mem
# as tpm_tis_core does in polled mode; the linux checks use a tpm_tis.ko
# built from Debian's kernel source by scripts/build-tpm-module.sh.
#
# Checks:
#   measure    `strata measure` lists the firmware, kernel and initrd digests
#              equal to sha256sum of the files (computed here, independently)
#   boot       the guest finds tcg,tpm-tis-mmio with a 64 KiB event log; the
#              PCRs 0-9 it reads equal `strata measure`'s for the same flags
#   linux      with tpm_tis.ko loaded, Linux binds the TPM (/dev/tpm0); the
#              PCRs in /sys/class/tpm/tpm0/pcr-sha256/ equal strata measure's;
#              /sys/kernel/security/tpm0/binary_bios_measurements is byte for
#              byte `strata measure --event-log`, and replays (replay.py, an
#              independent parser) to the guest's PCRs
#   quote      tpm-tool quote NONCE (ECDSA P-256 primary key of the
#              endorsement hierarchy, TPM2_Quote of PCRs 0-9): `strata attest
#              verify` accepts it; with state=DIR a second boot's quote
#              verifies with the first boot's (enrolled) key; a wrong nonce, a
#              changed initrd, a flipped signature bit and a new TPM's key
#              (no state=) are each rejected
#   change     one byte of the initrd changes `strata measure`'s PCR 9 and
#              nothing else; one byte of the command line changes PCR 8 only;
#              a boot with that command line reads the new PCR 8 in the guest
#   kill       swtpm killed mid-run (while the guest reads PCRs in a loop):
#              the guest gets a TPM error (TPM_RC_FAILURE, 0x101), Strata says
#              so once on stderr, the guest powers off, strata exits 0, no hang
#   hang       swtpm stopped (SIGSTOP) mid-run with timeout=2: the guest gets
#              TPM_RC_FAILURE, Strata says it did not answer within 2 s, exits 0,
#              and the stopped swtpm is killed at exit
#   cleanup    after each run no swtpm of that run is left and its private
#              directory is gone; state=DIR keeps the TPM's state in DIR
#   missing    with no swtpm on PATH: exit status 1 and one clear line
#
# Usage: tests/tpm/tpm-test.sh [--timeout SECS]
# Env:   STRATA_BIN (target/release/strata), CC_RISCV (riscv64-linux-gnu-gcc),
#        BOOT_TIMEOUT (300 s a boot)
# Logs:  build/test/tpm/*.log
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/tpm"
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
CC=${CC_RISCV:-riscv64-linux-gnu-gcc}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
        --timeout=*) BOOT_TIMEOUT=${1#*=}; shift ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "tpm-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

GUEST="$ROOT/build/guest"
WORK="$ROOT/build/test/tpm"
rm -rf "$WORK"
mkdir -p "$WORK/root"

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"

require_guest "$GUEST" fw_dynamic.bin Image initramfs.cpio
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; }
for t in "$CC" cpio swtpm sha256sum; do
    command -v "$t" >/dev/null 2>&1 || { fail "$t not found (run: scripts/setup-host.sh)"; finish; }
done

# --- the guest tool, appended to the default initramfs ----------------------
if ! "$CC" -static -O2 -Wall -Werror -o "$WORK/root/tpm-tool" "$HERE/tpm-tool.c" 2>"$WORK/cc.log"; then
    fail "building tpm-tool: $(head -n 3 "$WORK/cc.log")"; finish
fi
(cd "$WORK/root" && echo tpm-tool | cpio --quiet -o -H newc -R 0:0 --reproducible >"$WORK/extra.cpio")
INITRD="$WORK/initramfs.cpio"
cat "$GUEST/initramfs.cpio" "$WORK/extra.cpio" >"$INITRD"

PCRS="0 1 2 3 4 5 6 7 8 9"
append_for() { # append_for CMD [EXTRA]: the kernel command line running CMD
    printf 'console=ttyS0 panic=-1%s strata.cmd64=%s' "${2:+ $2}" "$(printf '%s' "$1" | base64 -w0)"
}
IMAGES=(--bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image")

# measure FILE INITRD APPEND: `strata measure` for these images into FILE.
measure() {
    local out=$1 initrd=$2 append=$3; shift 3
    "$STRATA_BIN" measure "${IMAGES[@]}" --initrd "$initrd" --append "$append" -m 512M "$@" >"$out" 2>"$out.err"
}
pcr_of() { awk -v p="$2" '$1 == "pcr" && $2 == p && $3 == "sha256" { print $4 }' "$1" | tr -d '\r' | head -n 1; }

# --- measure: digests of the files as given ------------------------------
# Verifier nonces, fresh each run.
NONCE0=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
NONCE1=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
CMD1="/tpm-tool dt; /tpm-tool pcrs $PCRS; /tpm-tool quote $NONCE0"
APPEND1=$(append_for "$CMD1")
if measure "$WORK/m1.txt" "$INITRD" "$APPEND1"; then
    ok=1
    for pair in "firmware:$GUEST/fw_dynamic.bin" "kernel:$GUEST/Image" "initrd:$INITRD"; do
        name=${pair%%:*} file=${pair#*:}
        want=$(sha256sum "$file" | cut -d' ' -f1)
        got=$(awk -v n="\"$name\"" '$NF == n { print $7 }' "$WORK/m1.txt")
        [ "$got" = "$want" ] || { ok=0; fail "measure: $name digest '$got', sha256sum says $want"; }
    done
    if [ $ok = 1 ]; then pass "measure: firmware, kernel and initrd events carry sha256sum of the files"; fi
else
    fail "strata measure: $(cat "$WORK/m1.txt.err")"; finish
fi

# boot NAME APPEND [TPM-OPTIONS]: one guest run in the background; sets PID.
boot() {
    local name=$1 append=$2 tpm=${3:-swtpm}
    timeout --kill-after=10 "$BOOT_TIMEOUT" "$STRATA_BIN" machine "${IMAGES[@]}" --initrd "$INITRD" \
        --append "$append" -m 512M --tpm "$tpm" </dev/null >"$WORK/$name.log" 2>"$WORK/$name.err" &
    PID=$!
}
# swtpm_of PID: the swtpm that strata (a child of timeout PID) started.
swtpm_of() {
    local s w
    for _ in $(seq 1 300); do
        s=$(pgrep -P "$1" -x strata || true)
        w=$([ -n "$s" ] && pgrep -P "$s" -x swtpm || true)
        if [ -n "$w" ]; then echo "$w"; return; fi
        sleep 0.05
    done
}
# compare NAME MEASURE-FILE: guest PCRs against the expected ones.
compare() {
    local bad=0 p want got
    for p in $PCRS; do
        want=$(pcr_of "$2" "$p")
        got=$(pcr_of "$WORK/$1.log" "$p")
        if [ -z "$got" ] || [ "$got" != "$want" ]; then
            bad=1; fail "$1: guest PCR $p '${got:-none}', strata measure says $want"
        fi
    done
    if [ $bad = 0 ]; then pass "$1: guest PCRs $PCRS equal strata measure's"; fi
}
# no_leftovers NAME SWTPM-PID: that swtpm is gone, and its directory.
no_leftovers() {
    if [ -n "$2" ] && kill -0 "$2" 2>/dev/null; then
        fail "$1: swtpm $2 outlived strata"; kill -9 "$2" 2>/dev/null || true
    elif [ -z "$2" ]; then
        fail "$1: no swtpm child of strata was seen"
    else
        pass "$1: swtpm $2 is gone after the run"
    fi
}

# --- boot: the guest's PCRs equal strata measure's -----------------------
STATE="$WORK/state"
boot boot "$APPEND1" "swtpm,state=$STATE"
SW=$(swtpm_of "$PID")
rc=0; wait "$PID" || rc=$?
if [ $rc -eq 0 ] && grep -q "STRATA-CMD-EXIT 0" "$WORK/boot.log"; then
    pass "boot: guest ran tpm-tool and powered off (exit 0)"
else
    fail "boot: exit status $rc, $(grep -m1 -e STRATA-CMD-EXIT -e tpm-error -e tpm-timeout "$WORK/boot.log" || echo 'no result'); stderr: $(tail -n 2 "$WORK/boot.err")"
fi
if grep -q "compatible tcg,tpm-tis-mmio" "$WORK/boot.log" && grep -q "^sml-size 65536" "$WORK/boot.log"; then
    pass "boot: device tree has tcg,tpm-tis-mmio with a 64 KiB event log (linux,sml-size)"
else
    fail "boot: TPM node or sml-size missing: $(grep -e tpm-node -e sml- "$WORK/boot.log" | tr '\n' ' ')"
fi
if grep -q "reserved mem: .*tpm-event-log" "$WORK/boot.log"; then
    pass "boot: Linux reserved the event log region"
else
    fail "boot: no 'reserved mem: ... tpm-event-log' in the kernel log"
fi
compare boot "$WORK/m1.txt"
no_leftovers boot "$SW"
if [ -s "$STATE/tpm2-00.permall" ]; then
    pass "state: state=DIR holds the TPM's state after the run"
else
    fail "state: no $STATE/tpm2-00.permall"
fi

# --- linux: Linux's own tpm_tis binds the TPM -----------------------------
# Debian's kernel lacks tpm_tis.ko: scripts/build-tpm-module.sh builds it
# from Debian's kernel source (cached after the first run).
if MODDIR=$("$ROOT/scripts/build-tpm-module.sh" 2>"$WORK/module.err" | tail -n 1) && [ -s "$MODDIR/tpm_tis.ko" ]; then
    mkdir -p "$WORK/modroot/lib/tpm"
    cp "$MODDIR/tpm_tis_core.ko" "$MODDIR/tpm_tis.ko" "$WORK/modroot/lib/tpm/"
    (cd "$WORK/modroot" && find lib | cpio --quiet -o -H newc -R 0:0 --reproducible >"$WORK/modules.cpio")
    LINUX_INITRD="$WORK/initramfs-linux.cpio"
    cat "$INITRD" "$WORK/modules.cpio" >"$LINUX_INITRD"
    CMDL='insmod /lib/tpm/tpm_tis_core.ko && insmod /lib/tpm/tpm_tis.ko && ls /dev/tpm0 && '
    CMDL+='for p in '"$PCRS"'; do echo "pcr $p sha256 $(tr A-F a-f </sys/class/tpm/tpm0/pcr-sha256/$p)"; done; '
    CMDL+='mount -t securityfs securityfs /sys/kernel/security; echo LOG-BEGIN; '
    CMDL+='od -A n -t x1 -v /sys/kernel/security/tpm0/binary_bios_measurements; echo LOG-END'
    APPENDL=$(append_for "$CMDL")
    measure "$WORK/m-linux.txt" "$LINUX_INITRD" "$APPENDL" --event-log "$WORK/expected-log.bin" \
        || fail "measure (linux): $(cat "$WORK/m-linux.txt.err")"
    SAVED_INITRD=$INITRD; INITRD=$LINUX_INITRD
    boot linux "$APPENDL"
    INITRD=$SAVED_INITRD
    SW=$(swtpm_of "$PID")
    rc=0; wait "$PID" || rc=$?
    if grep -q "tpm_tis .*: 2.0 TPM" "$WORK/linux.log" && grep -q "^/dev/tpm0" "$WORK/linux.log"; then
        pass "linux: tpm_tis bound the TPM: $(grep -o 'tpm_tis .*: 2.0 TPM.*' "$WORK/linux.log" | tr -d '\r' | head -n 1), /dev/tpm0"
    else
        fail "linux: tpm_tis did not bind (exit $rc): $(grep -m2 -e tpm_tis -e insmod "$WORK/linux.log" | tr '\r\n' '  ')"
    fi
    compare linux "$WORK/m-linux.txt"
    sed -n '/^LOG-BEGIN/,/^LOG-END/p' "$WORK/linux.log" | tr -d '\r' | grep -v LOG- \
        | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read()))' >"$WORK/guest-log.bin"
    if [ -s "$WORK/guest-log.bin" ] && cmp -s "$WORK/guest-log.bin" "$WORK/expected-log.bin"; then
        pass "linux: binary_bios_measurements ($(stat -c %s "$WORK/guest-log.bin") bytes) equals strata measure --event-log"
    else
        fail "linux: binary_bios_measurements ($(stat -c %s "$WORK/guest-log.bin") bytes) differs from strata measure --event-log ($(stat -c %s "$WORK/expected-log.bin" 2>/dev/null) bytes)"
    fi
    if python3 "$HERE/replay.py" "$WORK/guest-log.bin" >"$WORK/replayed.txt" 2>&1; then
        bad=0
        for p in $PCRS; do
            [ "$(pcr_of "$WORK/replayed.txt" "$p")" = "$(pcr_of "$WORK/linux.log" "$p")" ] || bad=1
        done
        if [ $bad = 0 ]; then pass "linux: the guest's event log replays (tests/tpm/replay.py) to the guest's PCRs $PCRS"
        else fail "linux: replayed log $(tr '\n' ' ' <"$WORK/replayed.txt") vs guest PCRs"; fi
    else
        fail "linux: replay.py: $(cat "$WORK/replayed.txt")"
    fi
    no_leftovers linux "$SW"
else
    fail "linux: scripts/build-tpm-module.sh failed: $(tail -n 3 "$WORK/module.err")"
fi

# --- quote: a TPM quote verifies, and changes are rejected ----------------
cp "$INITRD" "$WORK/initrd-changed.cpio"
printf '\x01' | dd of="$WORK/initrd-changed.cpio" bs=1 seek=$(( $(stat -c %s "$INITRD") - 1 )) conv=notrunc status=none
# verify NAME QUOTE-LOG NONCE INITRD APPEND [--key FILE]: strata attest verify.
verify() {
    local name=$1 log=$2 nonce=$3 initrd=$4 append=$5; shift 5
    "$STRATA_BIN" attest verify --quote "$log" --nonce "$nonce" "${IMAGES[@]}" --initrd "$initrd" \
        --append "$append" -m 512M "$@" >"$WORK/verify-$name.out" 2>&1
}
# The first boot's attestation key, enrolled (state=DIR keeps the TPM, and
# the key is a primary key, derived from the TPM's endorsement seed).
grep -m1 '^quote-key ' "$WORK/boot.log" | tr -d '\r' >"$WORK/enrolled.key" || true
if verify first "$WORK/boot.log" "$NONCE0" "$INITRD" "$APPEND1"; then
    pass "quote: the first boot's quote verifies ($(cat "$WORK/verify-first.out"))"
else
    fail "quote: the first boot's quote: $(cat "$WORK/verify-first.out")"
fi
CMDQ="/tpm-tool quote $NONCE1"
APPENDQ=$(append_for "$CMDQ")
boot quote "$APPENDQ" "swtpm,state=$STATE"
rc=0; wait "$PID" || rc=$?
if verify good "$WORK/quote.log" "$NONCE1" "$INITRD" "$APPENDQ" --key "$WORK/enrolled.key"; then
    pass "quote: a second boot's quote verifies with the enrolled key, its nonce and strata measure's PCRs"
else
    fail "quote: second boot (exit $rc): $(cat "$WORK/verify-good.out")"
fi
# expect_reject NAME WHAT ARGS...: verify must fail with a REJECTED line naming WHAT.
expect_reject() {
    local name=$1 what=$2; shift 2
    if verify "$name" "$@"; then
        fail "quote: $name: accepted"
    elif grep -q "REJECTED: .*$what" "$WORK/verify-$name.out"; then
        pass "quote: $name: $(cat "$WORK/verify-$name.out")"
    else
        fail "quote: $name: $(cat "$WORK/verify-$name.out")"
    fi
}
expect_reject nonce "nonce" "$WORK/quote.log" "$NONCE0" "$INITRD" "$APPENDQ" --key "$WORK/enrolled.key"
expect_reject initrd "PCR digest" "$WORK/quote.log" "$NONCE1" "$WORK/initrd-changed.cpio" "$APPENDQ" --key "$WORK/enrolled.key"
python3 - "$WORK/quote.log" "$WORK/quote-tampered.log" <<'PY'
import sys
out = []
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("quote-sig "):
        tag, r, s = line.split()
        r = r[:10] + ("1" if r[10] != "1" else "2") + r[11:]
        line = f"{tag} {r} {s}\n"
    out.append(line)
open(sys.argv[2], "w").write("".join(out))
PY
expect_reject signature "signature" "$WORK/quote-tampered.log" "$NONCE1" "$INITRD" "$APPENDQ" --key "$WORK/enrolled.key"

# --- change: one byte of the initrd, one of the command line -------------
APPEND2=$(append_for "$CMD1" "quiet")   # also quotes NONCE0, on a new TPM
measure "$WORK/m-initrd.txt" "$WORK/initrd-changed.cpio" "$APPEND1" || fail "measure (changed initrd): $(cat "$WORK/m-initrd.txt.err")"
measure "$WORK/m2.txt" "$INITRD" "$APPEND2" || fail "measure (changed command line): $(cat "$WORK/m2.txt.err")"
# which_changed A B: the PCRs whose values differ.
which_changed() {
    local p out=""
    for p in $PCRS; do
        if [ "$(pcr_of "$1" "$p")" != "$(pcr_of "$2" "$p")" ]; then out="$out $p"; fi
    done
    echo "${out# }"
}
got=$(which_changed "$WORK/m1.txt" "$WORK/m-initrd.txt")
[ "$got" = "9" ] && pass "change: one initrd byte changes PCR 9 only" || fail "change: one initrd byte changed PCRs '$got' (want 9)"
# The command line is in /chosen too, so PCR 1 (device tree) changes with it.
got=$(which_changed "$WORK/m1.txt" "$WORK/m2.txt")
[ "$got" = "1 8" ] && pass "change: a longer command line changes PCRs 1 (device tree) and 8" \
    || fail "change: the command line changed PCRs '$got' (want 1 8)"
boot cmdline "$APPEND2"
SW=$(swtpm_of "$PID")
rc=0; wait "$PID" || rc=$?
[ $rc -eq 0 ] || fail "cmdline: exit status $rc: $(tail -n 2 "$WORK/cmdline.err")"
compare cmdline "$WORK/m2.txt"
if [ "$(pcr_of "$WORK/cmdline.log" 8)" != "$(pcr_of "$WORK/boot.log" 8)" ]; then
    pass "cmdline: the guest's PCR 8 differs from the first boot's"
else
    fail "cmdline: the guest's PCR 8 did not change with the command line"
fi
no_leftovers cmdline "$SW"
if verify other "$WORK/cmdline.log" "$NONCE0" "$INITRD" "$APPEND2"; then
    pass "quote: a new TPM's quote verifies on its own key"
else
    fail "quote: new TPM: $(cat "$WORK/verify-other.out")"
fi
expect_reject otherkey "not the trusted key" "$WORK/cmdline.log" "$NONCE0" "$INITRD" "$APPEND2" --key "$WORK/enrolled.key"

# --- kill: swtpm dies while the guest uses the TPM -----------------------
CMD3="/tpm-tool pcrs 0 && echo TPM-LOOP-START && /tpm-tool loop"
boot kill "$(append_for "$CMD3")"
SW=$(swtpm_of "$PID")
for _ in $(seq 1 $((BOOT_TIMEOUT * 10))); do
    grep -q TPM-LOOP-START "$WORK/kill.log" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if grep -q TPM-LOOP-START "$WORK/kill.log" && [ -n "$SW" ]; then
    sleep 0.5
    kill -9 "$SW"
    rc=0; wait "$PID" || rc=$?
    if grep -q "tpm-error rc 0x101" "$WORK/kill.log"; then
        pass "kill: the guest got TPM_RC_FAILURE (0x101) after swtpm died"
    else
        fail "kill: guest said '$(grep -m1 -e tpm-error -e tpm-timeout "$WORK/kill.log" || echo nothing)'"
    fi
    if [ "$(grep -c "strata: TPM: swtpm closed its socket" "$WORK/kill.err")" = 1 ]; then
        pass "kill: strata said once that swtpm closed its socket"
    else
        fail "kill: stderr: $(tr '\r\n' '  ' <"$WORK/kill.err" | tail -c 300)"
    fi
    if [ $rc -eq 0 ] && grep -q "STRATA-CMD-EXIT 0" "$WORK/kill.log"; then
        pass "kill: the guest went on and powered off; strata exited 0 (no hang)"
    else
        fail "kill: exit status $rc (124 = timeout: a hang)"
    fi
else
    fail "kill: the guest never started its loop (or no swtpm was seen): $(tail -n 3 "$WORK/kill.err")"
    kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
fi

# --- hang: swtpm stops answering (SIGSTOP), with timeout=2 ----------------
boot hang "$(append_for "$CMD3")" "swtpm,timeout=2"
SW=$(swtpm_of "$PID")
for _ in $(seq 1 $((BOOT_TIMEOUT * 10))); do
    grep -q TPM-LOOP-START "$WORK/hang.log" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if grep -q TPM-LOOP-START "$WORK/hang.log" && [ -n "$SW" ]; then
    kill -STOP "$SW"
    rc=0; wait "$PID" || rc=$?
    if grep -q "tpm-error rc 0x101" "$WORK/hang.log" && grep -q "STRATA-CMD-EXIT 0" "$WORK/hang.log" && [ $rc -eq 0 ]; then
        pass "hang: a silent swtpm gives the guest TPM_RC_FAILURE after timeout=2; the guest powered off, exit 0"
    else
        fail "hang: exit $rc, guest said '$(grep -m1 -e tpm-error -e tpm-timeout "$WORK/hang.log" || echo nothing)'"
    fi
    if grep -q "strata: TPM: swtpm did not answer within 2 s" "$WORK/hang.err"; then
        pass "hang: strata said swtpm did not answer within 2 s"
    else
        fail "hang: stderr: $(tr '\r\n' '  ' <"$WORK/hang.err" | tail -c 300)"
    fi
    no_leftovers hang "$SW"
else
    fail "hang: the guest never started its loop: $(tail -n 3 "$WORK/hang.err")"
    kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
fi

# --- cleanup: no private directory of this test's runs is left -----------
left=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'strata-tpm-*' -user "$(id -u)" -newer "$WORK/extra.cpio" 2>/dev/null | grep -v test-state || true)
[ -z "$left" ] && pass "cleanup: no private swtpm directory left behind" || fail "cleanup: left behind: $left"

# --- missing: no swtpm on PATH -------------------------------------------
rc=0
env PATH=/nonexistent "$STRATA_BIN" machine "${IMAGES[@]}" --initrd "$INITRD" --append x --tpm swtpm \
    </dev/null >"$WORK/missing.log" 2>"$WORK/missing.err" || rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$WORK/missing.err")" = 1 ] && grep -q "swtpm program is not installed" "$WORK/missing.err"; then
    pass "missing: exit 1 with one line: $(cat "$WORK/missing.err")"
else
    fail "missing: exit $rc, stderr: $(cat "$WORK/missing.err")"
fi

finish

#!/usr/bin/env bash
# Boot test: boots the Strata guest (build/guest/{fw_dynamic.bin,Image,initramfs.cpio})
# on a machine -- `qemu` (reference) or `strata` (ours) -- for each SMP count,
# runs a command in the guest and checks its output against values computed
# on the host, and that the kernel's CRNG was ready before /init ran (the
# board's /chosen/rng-seed; issue 12 item 12); then types a command into the
# guest's shell through stdin.
#
# Usage: tests/boot/boot-test.sh [--machine qemu|strata] [--smp "1 2"] [--timeout SECS] [--cpu MODEL]
# Env:   MACHINE (default strata), SMP_LIST (default "1 2"), BOOT_TIMEOUT (300),
#        STRATA_CPU (strata's --cpu; default none), EXPECT_ISA (extension names,
#        e.g. "zicbom zicboz", that the isa line of the guest's /proc/cpuinfo
#        must list), LOG_DIR (default build/test),
#        GUEST_DIR (default build/guest; build/guest-newer boots Debian's 7.x
#        kernel of the `newer` guest profile, scripts/fetch-guest.sh),
#        STRATA_BIN (default target/release/strata), QEMU_BIN (qemu-system-riscv64),
#        EXTRA_APPEND (appended to the kernel command line)
# Logs:  build/test/boot-<machine>-smp<N>[-<guest dir>].log
# Last line of output: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MACHINE=${MACHINE:-strata}
SMP_LIST=${SMP_LIST:-"1 2"}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
MEM=512M

while [ $# -gt 0 ]; do
    case "$1" in
        --machine) MACHINE=$2; shift 2 ;;
        --machine=*) MACHINE=${1#*=}; shift ;;
        --smp) SMP_LIST=$2; shift 2 ;;
        --smp=*) SMP_LIST=${1#*=}; shift ;;
        --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
        --timeout=*) BOOT_TIMEOUT=${1#*=}; shift ;;
        --cpu) STRATA_CPU=$2; shift 2 ;;
        --cpu=*) STRATA_CPU=${1#*=}; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "boot-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

GUEST=$(realpath -m "${GUEST_DIR:-$ROOT/build/guest}")
# Logs of another guest profile get its directory's name as a suffix.
SUFFIX=""
[ "$(basename "$GUEST")" = guest ] || SUFFIX="-$(basename "$GUEST")"
STRATA_CPU=${STRATA_CPU:-}
EXPECT_ISA=${EXPECT_ISA:-}
CPU_ARGS=()
if [ -n "$STRATA_CPU" ]; then
    CPU_ARGS=(--cpu "$STRATA_CPU")
    SUFFIX="$SUFFIX-cpu-$STRATA_CPU"
fi
LOGDIR=${LOG_DIR:-$ROOT/build/test}
mkdir -p "$LOGDIR"

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"

# --- preconditions (each a counted failure, so the summary line still prints)
for f in fw_dynamic.bin Image initramfs.cpio kernel-release; do
    if [ ! -s "$GUEST/$f" ]; then
        fail "missing $GUEST/$f (run: make setup)"
        finish
    fi
done
case "$MACHINE" in
    qemu)
        command -v "$QEMU_BIN" >/dev/null 2>&1 || { fail "$QEMU_BIN not found (run: scripts/setup-host.sh)"; finish; } ;;
    strata)
        [ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; } ;;
    *)
        echo "boot-test: unknown machine '$MACHINE' (qemu|strata)" >&2; exit 2 ;;
esac

REL=$(cat "$GUEST/kernel-release")
# md5 of /init exactly as packed in the initramfs.
INIT_MD5=$(cd "$LOGDIR" && cpio --quiet -i --to-stdout init <"$GUEST/initramfs.cpio" | md5sum | cut -d' ' -f1)
if [ -z "$INIT_MD5" ] || [ "$INIT_MD5" = "d41d8cd98f00b204e9800998ecf8427e" ]; then
    fail "no /init in $GUEST/initramfs.cpio"; finish
fi
if [ "$(md5sum <"$ROOT/guest/init" | cut -d' ' -f1)" != "$INIT_MD5" ]; then
    echo "boot-test: WARNING: guest/init differs from the packed /init; run scripts/mkinitramfs.sh" >&2
fi

GUEST_CMD="grep -c ^processor /proc/cpuinfo; md5sum /init; dmesg | grep -e 'crng init done' -e 'Run /init'; grep -m 1 ^isa /proc/cpuinfo"
APPEND="console=ttyS0 earlycon panic=-1 strata.cmd=\"$GUEST_CMD\"${EXTRA_APPEND:+ $EXTRA_APPEND}"

run_guest() {   # run_guest SMP LOG -> sets RC
    local smp=$1 log=$2
    local cmd
    case "$MACHINE" in
        qemu)
            cmd=("$QEMU_BIN" -M virt -smp "$smp" -m "$MEM"
                 -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
                 -initrd "$GUEST/initramfs.cpio" -append "$APPEND"
                 -display none -monitor none -serial stdio -no-reboot) ;;
        strata)
            cmd=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin"
                 --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio"
                 --append "$APPEND" -m "$MEM" --smp "$smp" ${CPU_ARGS[@]+"${CPU_ARGS[@]}"}) ;;
    esac
    { printf '#'; printf ' %q' "${cmd[@]}"; echo; } >"$log"
    set +e
    timeout --kill-after=10 "$BOOT_TIMEOUT" "${cmd[@]}" </dev/null >>"$log" 2>&1
    RC=$?
    set -e
}

for N in $SMP_LIST; do
    log="$LOGDIR/boot-$MACHINE-smp$N$SUFFIX.log"
    echo "== boot $MACHINE smp=$N (timeout ${BOOT_TIMEOUT}s, log $log)"
    t0=$(date +%s.%N)
    run_guest "$N" "$log"
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    echo "   boot to power-off: ${secs}s, exit status $RC"
    echo "$MACHINE smp=$N ${secs}s rc=$RC" >>"$LOGDIR/boot-times.txt"

    out=$(tr -d '\r' <"$log")
    tag="$MACHINE smp=$N"
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        fail "$tag: timed out after ${BOOT_TIMEOUT}s"
    elif [ "$RC" -ne 0 ]; then
        fail "$tag: exit status $RC (want 0 = clean power-off)"
    elif ! grep -q 'reboot: Power down' <<<"$out"; then
        fail "$tag: exit status 0 but the guest never powered off (no 'reboot: Power down')"
    else
        pass "$tag: clean power-off (exit 0) in ${secs}s"
    fi
    if grep -qE "STRATA-GUEST-READY $(printf '%s' "$REL" | sed 's/[.+]/\\&/g') cpus=$N\$" <<<"$out"; then
        pass "$tag: STRATA-GUEST-READY $REL cpus=$N"
    else
        got=$(grep -o 'STRATA-GUEST-READY.*' <<<"$out" | head -n 1 || true)
        fail "$tag: want 'STRATA-GUEST-READY $REL cpus=$N', got '${got:-nothing}'"
    fi
    # The command's output: the lines between READY and CMD-EXIT.
    body=$(awk '/STRATA-GUEST-READY/ { on = 1; next } /STRATA-CMD-EXIT/ { on = 0 } on' <<<"$out")
    if grep -qx "$N" <<<"$body"; then
        pass "$tag: guest counts $N processor(s) in /proc/cpuinfo"
    else
        fail "$tag: /proc/cpuinfo processor count: want '$N', output was: $(echo "$body" | head -n 3 | tr '\n' '|')"
    fi
    if grep -qx "$INIT_MD5  /init" <<<"$body"; then
        pass "$tag: md5sum /init = $INIT_MD5 (matches host)"
    else
        fail "$tag: md5sum /init: want $INIT_MD5, got '$(grep '/init$' <<<"$body" | head -n 1)'"
    fi
    # Kernel times (dmesg) of the CRNG's readiness and of starting /init;
    # the command line, also in dmesg, holds the grep words, not these.
    ktime() { grep -F -- "$1" <<<"$body" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p' | head -n 1 || true; }
    crng=$(ktime "random: crng init done")
    init=$(ktime "Run /init as init process")
    if [ -n "$crng" ] && [ -n "$init" ] && awk -v c="$crng" -v i="$init" 'BEGIN { exit !(c <= i) }'; then
        pass "$tag: [12] crng init done at ${crng}s, before /init at ${init}s"
    else
        fail "$tag: [12] crng init done at '${crng:-never}', /init at '${init:-?}' (want crng first)"
    fi
    # The extensions Linux found (the isa line of /proc/cpuinfo: the ones
    # it knows, from the device tree's riscv,isa-extensions).
    isa=$(grep -m 1 '^isa' <<<"$body" || true)
    for e in $EXPECT_ISA; do
        if grep -qE "_${e}(_|\$)" <<<"$isa"; then
            pass "$tag: /proc/cpuinfo lists $e"
        else
            fail "$tag: /proc/cpuinfo does not list $e: '${isa:-no isa line}'"
        fi
    done
    if grep -qE 'STRATA-CMD-EXIT 0$' <<<"$out"; then
        pass "$tag: STRATA-CMD-EXIT 0"
    else
        got=$(grep -o 'STRATA-CMD-EXIT.*' <<<"$out" | head -n 1 || true)
        fail "$tag: want 'STRATA-CMD-EXIT 0', got '${got:-nothing}' (last lines: $(tail -n 3 <<<"$out" | tr '\n' '|'))"
    fi
done

# --- the console from a pipe: no strata.cmd, so /init starts a shell; a
# script types a command into it through stdin once the shell is up, then
# `exit`, which powers the guest off. The output (computed by the guest)
# must come back on stdout.
console_log="$LOGDIR/boot-$MACHINE-console$SUFFIX.log"
fifo="$LOGDIR/console-$$.fifo"
rm -f "$fifo"
mkfifo "$fifo"
token="t$$x$RANDOM"
CAPPEND="console=ttyS0 panic=-1${EXTRA_APPEND:+ $EXTRA_APPEND}"
case "$MACHINE" in
    qemu)
        ccmd=("$QEMU_BIN" -M virt -smp 1 -m "$MEM" -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
              -initrd "$GUEST/initramfs.cpio" -append "$CAPPEND" -display none -monitor none -serial stdio -no-reboot) ;;
    strata)
        ccmd=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
              --initrd "$GUEST/initramfs.cpio" --append "$CAPPEND" -m "$MEM" --smp 1 ${CPU_ARGS[@]+"${CPU_ARGS[@]}"}) ;;
esac
echo "== console through a pipe on $MACHINE (log $console_log)"
{ printf '#'; printf ' %q' "${ccmd[@]}"; echo; } >"$console_log"
timeout --kill-after=10 "$BOOT_TIMEOUT" "${ccmd[@]}" <"$fifo" >>"$console_log" 2>&1 &
cpid=$!
exec 3>"$fifo"   # held open: the machine sees no end of input meanwhile
for _ in $(seq $((BOOT_TIMEOUT * 10))); do
    grep -q 'built-in shell' "$console_log" && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
done
sleep 1
printf 'echo CONSOLE-%s-$((6 * 7))\n' "$token" >&3
sleep 1
printf 'exit\n' >&3
set +e
wait "$cpid"
RC=$?
set -e
exec 3>&-
rm -f "$fifo"
cout=$(tr -d '\r' <"$console_log")
if grep -qx "CONSOLE-$token-42" <<<"$cout"; then
    pass "$MACHINE console: a command typed through a pipe ran in the guest shell"
else
    fail "$MACHINE console: no 'CONSOLE-$token-42' from the guest (last lines: $(tail -n 3 <<<"$cout" | tr '\n' '|'))"
fi
if [ "$RC" -eq 0 ] && grep -q 'reboot: Power down' <<<"$cout"; then
    pass "$MACHINE console: 'exit' through the pipe powered the guest off"
else
    fail "$MACHINE console: want a clean power-off after 'exit', got exit status $RC"
fi

finish

#!/usr/bin/env bash
# strata run: VMs under Strata's hypervisor.
#
#   1. the default guest (Debian kernel + initramfs) as one VM with 2 vCPUs:
#      it reaches userspace, sees 2 CPUs, runs a command whose output is
#      checked against values computed on the host, and powers off (exit 0);
#   2. two VMs side by side from a TOML file, the second protected, on two
#      harts: both reach userspace and power off cleanly, each console is
#      labelled;
#   3. two probe guests (tests/hyp/probe.c) that load and store at
#      guest-physical addresses outside their memory, including the machine
#      addresses where the other VM's memory lies: every such access must be
#      the architectural access fault, never data;
#   4. bad configurations get one clear error line and exit 1;
#   5. virtio under the hypervisor: two VMs, each with its own ext4 disk
#      (built on the host with mkfs.ext4 -d) and virtio-rng, read a file the
#      host put there and write one back (the host reads it with debugfs);
#      a protected VM asking for a disk is refused;
#   6. issue 12, items 3 and 12, in two VMs: user programs read the clock
#      (`time true`, `echo $RANDOM`: the vDSO's rdtime in VU-mode), the
#      kernel's CRNG is ready before /init runs (/chosen/rng-seed), and each
#      VM got its own /chosen/kaslr-seed.
#
#   7. issue 13: two VMs, each running a CPU-bound job, on 2 physical
#      harts with one host thread each: both jobs finish, --stats shows two
#      hart threads that each used at least half the CPU time of the other,
#      and each VM's vCPU ran at least half the slots of the other (never a
#      wall-clock assertion). Only in the threaded run (the default, no
#      --threads 1, no --paging shadow); the others say so.
#
# With --paging shadow, every VM runs shadow-paged (strata run --paging),
# its logs go to build/test/paging-shadow/, and the runs with --stats must
# show shadow faults (so the pass cannot silently run nested). Shadow
# paging runs on one thread (strata run refuses --threads 2 with it).
# With --threads N, every `strata run` gets --threads N (logs in
# build/test/threads-N/); without it, strata run's default applies (one
# host thread per physical hart), and the runs with --stats must show
# that many hart threads.
#
# Usage: tests/hyp/run-test.sh [--only N] [--paging nested|shadow] [--threads N]
# Env:   STRATA_BIN (target/release/strata), RUN_TIMEOUT (600),
#        CC_RISCV (riscv64-unknown-elf-gcc), TEST_LOGDIR (build/test)
# Logs:  build/test/hyp-*.log
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/hyp"
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
CC=${CC_RISCV:-riscv64-unknown-elf-gcc}
GUEST="$ROOT/build/guest"
LOGDIR=${TEST_LOGDIR:-$ROOT/build/test}
ONLY=""
PAGING=""
THREADS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY=$2; shift 2 ;;
        --paging) PAGING=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "run-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -z "$PAGING" ] || LOGDIR="$LOGDIR/paging-$PAGING"
[ -z "$THREADS" ] || LOGDIR="$LOGDIR/threads-$THREADS"
mkdir -p "$LOGDIR"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
# check LOG WHAT PATTERN: the log holds a line matching the extended regex
check() { if grep -Eq -- "$3" "$1"; then pass "$2"; else fail "$2 (no line matching '$3' in $1)"; fi; }
# threads LOG HARTS WHAT: --stats shows the hart threads this configuration
# must use: --threads N's (at most one per hart), 1 with shadow paging,
# else one per hart.
threads() {
    local want=$2 n
    [ -z "$THREADS" ] || want=$(( THREADS < $2 ? THREADS : $2 ))
    [ "$PAGING" != shadow ] || want=1
    n=$(grep -c '^thread [0-9]*: harts' "$1" || true)
    # One thread is the round-robin loop, which prints no thread lines.
    if [ "$want" -eq 1 ] && [ "$n" -eq 0 ]; then n=1; fi
    if [ "$n" -eq "$want" ]; then pass "$3: $want hart thread(s)"; else fail "$3: $n hart threads, want $want (see $1)"; fi
}
# ktime LOG PREFIX TEXT: the kernel timestamp (seconds) of the first line
# "PREFIX[  secs] ...TEXT" in LOG (PREFIX a basic regex), or nothing.
ktime() { grep -F -- "$3" "$1" | sed -n "s/^$2\[ *\([0-9.]*\)\].*/\1/p" | head -n 1 || true; }

[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; }
require_guest "$GUEST" Image initramfs.cpio kernel-release
command -v "$CC" >/dev/null 2>&1 || { fail "$CC not found (run: scripts/setup-host.sh)"; finish; }
REL=$(cat "$GUEST/kernel-release")
# The release as an extended regex: Debian's have '.' and '+' in them
# ("6.12.117+deb13-riscv64").
REL_RE=$(printf '%s' "$REL" | sed 's/[.+]/\\&/g')
INIT_MD5=$(cd "$WORK" && cpio --quiet -i --to-stdout init <"$GUEST/initramfs.cpio" | md5sum | cut -d' ' -f1)

run() {   # run LOG ARGS...: runs strata with a timeout, sets RC
    local log=$1; shift
    if [ -n "$PAGING" ] && [ "${1:-}" = run ]; then
        shift
        set -- run --paging "$PAGING" "$@"
    fi
    if [ -n "$THREADS" ] && [ "${1:-}" = run ]; then
        shift
        set -- run --threads "$THREADS" "$@"
    fi
    { printf '#'; printf ' %q' "$STRATA_BIN" "$@"; echo; } >"$log"
    set +e
    timeout --kill-after=10 "$RUN_TIMEOUT" "$STRATA_BIN" "$@" </dev/null >>"$log" 2>&1
    RC=$?
    set -e
    # The guest's tty ends lines with CR LF.
    sed -i 's/\r$//' "$log"
}

# --- 1: one VM, 2 vCPUs ------------------------------------------------------
if want 1; then
    LOG="$LOGDIR/hyp-one-vm.log"
    CMD='grep -c ^processor /proc/cpuinfo; md5sum /init'
    echo "== 1: the default guest as one VM with 2 vCPUs ($LOG)"
    run "$LOG" run --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio" -m 512M --smp 2 \
        --append "console=ttyS0 panic=-1 strata.cmd=\"$CMD\"" --stats
    [ "$RC" -eq 0 ] && pass "one VM: clean power-off (exit 0)" || fail "one VM: exit status $RC (see $LOG)"
    check "$LOG" "one VM: userspace with 2 CPUs" "^STRATA-GUEST-READY $REL_RE cpus=2$"
    check "$LOG" "one VM: /proc/cpuinfo lists 2 processors" "^2$"
    check "$LOG" "one VM: md5sum /init matches the host" "^$INIT_MD5  /init$"
    check "$LOG" "one VM: the command succeeded" "^STRATA-CMD-EXIT 0$"
    check "$LOG" "one VM: the hypervisor saw it power off" "^vm vm0 \(vmid 1\): powered off"
    threads "$LOG" 2 "one VM"
    [ "$PAGING" != shadow ] || check "$LOG" "one VM: shadow-paged" "^vm vm0 paging shadow: shadow faults [1-9]"
fi

# --- 2: two VMs, one protected ------------------------------------------------
if want 2; then
    LOG="$LOGDIR/hyp-two-vms.log"
    # The example the README points to, so that it cannot rot.
    TWO="$ROOT/examples/two-vms.toml"
    echo "== 2: two VMs side by side, one protected ($LOG)"
    run "$LOG" run --config "$TWO" --stats
    [ "$RC" -eq 0 ] && pass "two VMs: both powered off (exit 0)" || fail "two VMs: exit status $RC (see $LOG)"
    for vm in open secret; do
        check "$LOG" "two VMs: $vm reached userspace" "^\[$vm\] STRATA-GUEST-READY $REL_RE cpus=1"
        check "$LOG" "two VMs: $vm ran its own command" "^\[$vm\] I-AM-$(echo $vm | tr a-z A-Z)"
        check "$LOG" "two VMs: $vm powered off" "^vm $vm \(vmid [0-9]+(, protected)?\): powered off"
    done
    check "$LOG" "two VMs: the second is protected" "^vm secret \(vmid 2, protected\)"
    threads "$LOG" 2 "two VMs"
    if [ "$PAGING" = shadow ]; then
        for vm in open secret; do
            check "$LOG" "two VMs: $vm shadow-paged" "^vm $vm paging shadow: shadow faults [1-9]"
        done
    fi
    if grep -q "^\[open\] I-AM-SECRET\|^\[secret\] I-AM-OPEN" "$LOG"; then
        fail "two VMs: a console shows the other VM's output"
    else
        pass "two VMs: each console shows only its own VM"
    fi
fi

# --- 3: probes outside guest memory --------------------------------------------
if want 3; then
    LOG="$LOGDIR/hyp-probe.log"
    echo "== 3: guests probing guest-physical addresses outside their memory ($LOG)"
    if ! "$CC" -march=rv64gc -mabi=lp64d -mcmodel=medany -nostdlib -nostartfiles -static \
            -ffreestanding -O2 -T "$ROOT/tests/conformance/env/link.ld" \
            -o "$WORK/probe.elf" "$HERE/probe-start.S" "$HERE/probe.c" 2>"$WORK/cc.log"; then
        cat "$WORK/cc.log"; fail "cannot build the probe guest"; finish
    fi
    cat >"$WORK/probe.toml" <<EOF
harts = 2
[[vm]]
name = "p1"
memory = "16M"
kernel = "probe.elf"
[[vm]]
name = "p2"
memory = "16M"
protected = true
kernel = "probe.elf"
EOF
    run "$LOG" run --config "$WORK/probe.toml"
    [ "$RC" -eq 0 ] && pass "probes: both VMs powered off (exit 0)" || fail "probes: exit status $RC (see $LOG)"
    for vm in p1 p2; do
        check "$LOG" "probes: $vm reads its own memory" "^\[$vm\] PROBE own addr=0x[0-9a-f]+ cause=none value=0x1122334455667788$"
        n=$(grep -c "^\[$vm\] PROBE load .* cause=0x0000000000000005 value=0x00000000deadbeef$" "$LOG" || true)
        [ "$n" -eq 4 ] && pass "probes: $vm gets a load access fault, and no data, at all 4 outside addresses" \
                       || fail "probes: $vm: $n of 4 outside loads faulted without data"
        n=$(grep -c "^\[$vm\] PROBE store .* cause=0x0000000000000007 " "$LOG" || true)
        [ "$n" -eq 4 ] && pass "probes: $vm gets a store access fault at all 4 outside addresses" \
                       || fail "probes: $vm: $n of 4 outside stores faulted"
        check "$LOG" "probes: $vm finished" "^\[$vm\] PROBE DONE$"
    done
fi

# --- 4: bad input --------------------------------------------------------------
if want 4; then
    echo "== 4: bad configurations"
    # bad WHAT PATTERN ARGS...: exit 1 (host-side error) or, with
    # WANT_RC=2, a usage error, with a line matching PATTERN, no panic.
    bad() {
        local what=$1 pat=$2; shift 2
        local log="$WORK/bad.log" want=${WANT_RC:-1}
        run "$log" "$@"
        if [ "$RC" -eq "$want" ] && grep -Eq -- "$pat" "$log" && ! grep -q panicked "$log"; then
            pass "bad input: $what"
        else
            fail "bad input: $what (exit $RC, want $want and '$pat'): $(tail -n 2 "$log" | tr '\n' ' ')"
        fi
    }
    printf 'harts = 1\n[[vm]]\nname = "x"\nkernel = "nope"\nbogus = 1\n' >"$WORK/bad1.toml"
    bad "unknown TOML key" "unknown field .bogus." run --config "$WORK/bad1.toml"
    printf '[[vm]]\nname = "x"\nkernel = "%s"\n[[vm]]\nname = "x"\nkernel = "%s"\n' "$GUEST/Image" "$GUEST/Image" >"$WORK/bad2.toml"
    bad "duplicate VM names" "distinct" run --config "$WORK/bad2.toml"
    printf '[[vm]]\nname = "x"\nkernel = "%s"\nvcpus = 9\n' "$GUEST/Image" >"$WORK/bad3.toml"
    bad "too many vCPUs" "1 to 8" run --config "$WORK/bad3.toml"
    bad "missing kernel" "cannot read kernel" run --kernel "$WORK/none" -m 64M
    bad "--config with --kernel" "do not combine" run --config "$WORK/bad3.toml" --kernel "$GUEST/Image"
    bad "memory too small" "at least 16 MiB" run --kernel "$GUEST/Image" -m 1M
    bad "no kernel at all" "give --kernel" run
    WANT_RC=2 bad "unknown policy (usage error)" "unknown invalidation policy" run --kernel "$GUEST/Image" --invalidation sometimes
    WANT_RC=2 bad "unknown flag (usage error)" "unexpected argument" run --kernel "$GUEST/Image" --frobnicate
    printf 'not toml [' >"$WORK/bad4.toml"
    bad "malformed TOML" "bad4.toml" run --config "$WORK/bad4.toml"
    if [ -z "$PAGING" ]; then
        bad "--paging tpt: not implemented yet" "paging mode tpt: not implemented yet" run --kernel "$GUEST/Image" --paging tpt
        printf '[[vm]]\nname = "x"\nkernel = "%s"\npaging = "flat"\n' "$GUEST/Image" >"$WORK/bad6.toml"
        bad "unknown paging mode in the TOML file" "unknown paging mode 'flat'" run --config "$WORK/bad6.toml"
    fi
    if [ -z "$THREADS" ] && [ -z "$PAGING" ]; then
        bad "--threads 2 with shadow paging" "shadow-paged VM .* use --threads 1" \
            run --kernel "$GUEST/Image" --paging shadow --threads 2
        bad "--threads 2 with the virtual clock" "threads 2.*clock virtual|clock virtual.*threads" \
            run --kernel "$GUEST/Image" --clock virtual --threads 2
        bad "--threads 2 with --api-sock" "with --api-sock" \
            run --kernel "$GUEST/Image" --api-sock "$WORK/api.sock" --threads 2
    fi
fi

# --- 5: virtio devices of VMs -------------------------------------------------
if want 5; then
    LOG="$LOGDIR/hyp-virtio.log"
    echo "== 5: virtio-blk and virtio-rng in VMs under the hypervisor ($LOG)"
    MODS="virtio_mmio,virtio_blk,ext4,virtio_rng"
    for vm in a b; do
        mkdir -p "$WORK/disk-$vm"
        echo "host data for $vm $(date +%s%N)" >"$WORK/disk-$vm/hello.txt"
        truncate -s 32M "$WORK/$vm.img"
        mkfs.ext4 -q -F -d "$WORK/disk-$vm" "$WORK/$vm.img"
    done
    # The guest writes the md5 of its command line (which names the VM).
    GCMD='mount /dev/vda /mnt && sha256sum /mnt/hello.txt && md5sum /proc/cmdline | cut -c1-32 > /mnt/back.txt && sync && umount /mnt && head -c 64 /dev/hwrng | wc -c'
    for vm in a b; do
        cat >>"$WORK/virtio.toml" <<EOF
[[vm]]
name = "$vm"
memory = "256M"
kernel = "$GUEST/Image"
initrd = "$GUEST/initramfs.cpio"
cmdline = "console=ttyS0 panic=-1 strata.modules=$MODS strata.cmd=\"$GCMD\" vm=$vm"
drives = ["file=$WORK/$vm.img,serial=disk-$vm"]
rng = true
EOF
    done
    run "$LOG" run --config "$WORK/virtio.toml" --harts 2
    [ "$RC" -eq 0 ] && pass "virtio: both VMs powered off (exit 0)" || fail "virtio: exit status $RC (see $LOG)"
    for vm in a b; do
        want_sum=$(sha256sum <"$WORK/disk-$vm/hello.txt" | cut -d' ' -f1)
        check "$LOG" "virtio: VM $vm reads its own disk's file (sha256 matches the host)" "^\[$vm\] $want_sum  /mnt/hello.txt$"
        check "$LOG" "virtio: VM $vm reads 64 bytes from its virtio-rng" "^\[$vm\] 64$"
        cmdline="console=ttyS0 panic=-1 strata.modules=$MODS strata.cmd=\"$GCMD\" vm=$vm"
        want=$(printf '%s\n' "$cmdline" | md5sum | cut -c1-32)
        got=$(debugfs -R 'cat /back.txt' "$WORK/$vm.img" 2>/dev/null | tr -d '\n')
        if [ "$got" = "$want" ]; then
            pass "virtio: the host reads back what VM $vm wrote to its disk"
        else
            fail "virtio: VM $vm's disk holds '$got', want '$want'"
        fi
    done
    printf '[[vm]]\nname = "x"\nprotected = true\nkernel = "%s"\ndrives = ["file=%s"]\n' "$GUEST/Image" "$WORK/a.img" >"$WORK/bad5.toml"
    run "$WORK/bad5.log" run --config "$WORK/bad5.toml"
    if [ "$RC" -eq 1 ] && grep -q "protected VM cannot have virtio devices" "$WORK/bad5.log"; then
        pass "virtio: a protected VM with a disk is refused"
    else
        fail "virtio: a protected VM with a disk: exit $RC: $(tail -n 1 "$WORK/bad5.log")"
    fi
fi

# --- 6: the clock and entropy in VMs (issue 12, items 3 and 12) ----------------
if want 6; then
    LOG="$LOGDIR/hyp-time-entropy.log"
    echo "== 6: rdtime from user programs, the CRNG and the seeds in two VMs ($LOG)"
    # `time` and ash's $RANDOM read the clock through the vDSO (rdtime in
    # VU-mode); dmesg gives the kernel times of "crng init done" and of
    # starting /init; this kernel has no KASLR, so it leaves kaslr-seed in
    # the tree for us to read. No double quotes: the TOML string holds it.
    GCMD="dmesg | grep -e 'crng init done' -e 'Run /init'; echo KASLR=\$(od -An -tx1 /proc/device-tree/chosen/kaslr-seed | tr -d ' '); time true; echo RANDOM=\$RANDOM"
    for vm in a b; do
        cat >>"$WORK/time.toml" <<EOF
[[vm]]
name = "$vm"
memory = "256M"
kernel = "$GUEST/Image"
initrd = "$GUEST/initramfs.cpio"
cmdline = "console=ttyS0 panic=-1 quiet strata.cmd=\"$GCMD\""
EOF
    done
    run "$LOG" run --config "$WORK/time.toml" --harts 2
    [ "$RC" -eq 0 ] && pass "time: both VMs powered off (exit 0)" || fail "time: exit status $RC (see $LOG)"
    for vm in a b; do
        check "$LOG" "time: [3] VM $vm: 'time true' runs and reports (no SIGILL on rdtime)" "^\[$vm\] real"$'\t'
        check "$LOG" "time: [3] VM $vm: 'echo \$RANDOM' prints a number" "^\[$vm\] RANDOM=[0-9]+$"
        check "$LOG" "time: VM $vm: the command succeeded" "^\[$vm\] STRATA-CMD-EXIT 0$"
        if grep -q "^\[$vm\] Illegal instruction" "$LOG"; then fail "time: [3] VM $vm: a program died of SIGILL"; fi
        # (The kernel command line, also in dmesg, holds the grep words.)
        crng=$(ktime "$LOG" "\[$vm\] " "random: crng init done")
        init=$(ktime "$LOG" "\[$vm\] " "Run /init as init process")
        if [ -n "$crng" ] && [ -n "$init" ] && awk -v c="$crng" -v i="$init" 'BEGIN { exit !(c <= i) }'; then
            pass "time: [12] VM $vm: crng init done at ${crng}s, before /init at ${init}s"
        else
            fail "time: [12] VM $vm: crng init done at '${crng:-never}', /init at '${init:-?}' (want crng first)"
        fi
    done
    ka=$(sed -n 's/^\[a\] KASLR=\([0-9a-f]*\)$/\1/p' "$LOG")
    kb=$(sed -n 's/^\[b\] KASLR=\([0-9a-f]*\)$/\1/p' "$LOG")
    if [ ${#ka} -eq 16 ] && [ ${#kb} -eq 16 ] && [ "$ka" != "$kb" ] && [ "$ka" != 0000000000000000 ]; then
        pass "time: [12] each VM has its own 8-byte kaslr-seed ($ka, $kb)"
    else
        fail "time: [12] kaslr-seeds '$ka' and '$kb' (want two different 8-byte values)"
    fi
fi

# --- 7: two CPU-bound VMs in parallel (issue 13) -------------------------------
if want 7; then
    LOG="$LOGDIR/hyp-parallel.log"
    echo "== 7: two VMs with a CPU-bound job each on two hart threads ($LOG)"
    if [ -n "$THREADS" ] || [ "$PAGING" = shadow ]; then
        echo "   (for the threaded run only: this run has ${THREADS:+--threads $THREADS}${PAGING:+--paging $PAGING})"
    else
        SPIN='i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo SPIN-DONE $i'
        {
            echo 'harts = 2'
            for vm in a b; do
                printf '[[vm]]\nname = "%s"\nmemory = "256M"\nkernel = "%s"\ninitrd = "%s"\n' \
                    "$vm" "$GUEST/Image" "$GUEST/initramfs.cpio"
                printf 'cmdline = "console=ttyS0 panic=-1 strata.cmd=\\"%s\\""\n' "$SPIN"
            done
        } >"$WORK/parallel.toml"
        run "$LOG" run --config "$WORK/parallel.toml" --stats
        [ "$RC" -eq 0 ] && pass "parallel: both VMs powered off (exit 0)" || fail "parallel: exit status $RC (see $LOG)"
        for vm in a b; do
            check "$LOG" "parallel: $vm finished its job" "^\[$vm\] SPIN-DONE 200000$"
        done
        threads "$LOG" 2 "parallel"
        # "thread T: harts [H] cpu S s | ...": each hart thread's CPU time.
        mapfile -t CPU < <(sed -n 's/^thread [0-9]*: harts \[[0-9 ]*\] cpu \([0-9.]*\) s .*/\1/p' "$LOG")
        # "vm NAME (vmid N): ... | vcpu0 ran SLOTS ...": each VM's slots.
        mapfile -t RAN < <(sed -n 's/^vm [ab] (vmid [0-9]*): .* | vcpu0 ran \([0-9]*\) .*/\1/p' "$LOG")
        if [ "${#CPU[@]}" -eq 2 ] && awk -v a="${CPU[0]}" -v b="${CPU[1]}" 'BEGIN { exit !(a > 0 && b > 0 && a >= b / 2 && b >= a / 2) }'; then
            pass "parallel: both hart threads did the work (cpu ${CPU[0]} s and ${CPU[1]} s)"
        else
            fail "parallel: hart thread CPU times '${CPU[*]:-}': want two, each at least half the other"
        fi
        if [ "${#RAN[@]}" -eq 2 ] && awk -v a="${RAN[0]}" -v b="${RAN[1]}" 'BEGIN { exit !(a > 0 && b > 0 && a >= b / 2 && b >= a / 2) }'; then
            pass "parallel: both VMs progressed alike (${RAN[0]} and ${RAN[1]} slots)"
        else
            fail "parallel: VM slots '${RAN[*]:-}': want two, each at least half the other"
        fi
    fi
fi

finish

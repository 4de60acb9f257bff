#!/usr/bin/env bash
# Parallel harts (issue 13), Strata against QEMU in one run:
#   1. a 2-hart Debian guest running two CPU-bound jobs at once (each an
#      md5sum of MB MiB from dd): the jobs' wall time as the guest measures
#      it, on Strata with one host thread, with one thread per hart (the
#      default), and on QEMU (-smp 2, one thread per vCPU);
#   2. the Debian boot to power-off with 1, 2 and 4 harts, Strata and QEMU;
#   3. an idle 8-hart guest: host CPU used while the guest sleeps IDLE s
#      (a run that sleeps IDLE s minus one that does not, over IDLE);
#   4. strata run (the hypervisor), two VMs of one vCPU on 2 physical
#      harts, each VM running one CPU-bound job (md5sum of MB MiB): the
#      jobs' wall time inside the guests (the slower VM's) and the process's,
#      with --threads 1 against one thread per hart (the default). QEMU has
#      no counterpart (it is no hypervisor of its own VMs): Strata alone.
# Runs are paired (Strata and QEMU alternate) and repeated REPS times;
# medians are reported. Output: build/bench/smp.txt. A run that fails
# (exit status, or the guest's command) stops the script with its log.
#
# Env: REPS (default 5), MB (default 48), IDLE (default 10),
#      STRATA_BIN, QEMU_BIN, ONLY (1-4: that part alone), BENCH_OUT
#      (build/bench).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPS=${REPS:-5}
MB=${MB:-48}
IDLE=${IDLE:-10}
ONLY=${ONLY:-}
part() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
GUEST="$ROOT/build/guest"
OUT=${BENCH_OUT:-$ROOT/build/bench}
die() { echo "bench-smp: ERROR: $*" >&2; exit 1; }
[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
command -v "$QEMU_BIN" >/dev/null || die "$QEMU_BIN not found (run: make setup)"
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
mkdir -p "$OUT"
LOG="$OUT/smp-runs.log"
: >"$LOG"

# run NAME SMP CMD [strata args...]: boots the guest, runs CMD; prints
# "<host wall s> <host cpu s> <guest real s or ->" and checks the exit.
run() {
    local name=$1 smp=$2 cmd=$3; shift 3
    local b64 args out t0 t1 res
    b64=$(printf '%s' "$cmd" | base64 -w0)
    local append="console=ttyS0 panic=-1 quiet strata.cmd64=$b64"
    case "$name" in
        qemu) args=("$QEMU_BIN" -M virt -smp "$smp" -m 512M -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
                    -initrd "$GUEST/initramfs.cpio" -append "$append" -display none -monitor none -serial stdio -no-reboot) ;;
        *) args=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
                 --initrd "$GUEST/initramfs.cpio" -m 512M --smp "$smp" --append "$append" "$@") ;;
    esac
    out=$(mktemp)
    if ! /usr/bin/time -f '%e %U %S' -o "$out.time" timeout 600 "${args[@]}" </dev/null >"$out" 2>&1; then
        cp "$out" "$OUT/smp-failed-$name-$smp.log"
        die "$name smp=$smp failed: $(tail -n 3 "$out" | tr '\n' '|') (log: $OUT/smp-failed-$name-$smp.log)"
    fi
    grep -q 'STRATA-CMD-EXIT 0' "$out" || die "$name smp=$smp: the command failed: $(tail -n 5 "$out" | tr '\n' '|')"
    { echo "== $name smp=$smp $*"; cat "$out"; } >>"$LOG"
    res=$(tr -d '\r' <"$out" | sed -n 's/^real[[:space:]]*\([0-9]*\)m \([0-9.]*\)s$/\1 \2/p' | awk '{ printf "%.2f", $1 * 60 + $2 }')
    awk -v r="${res:--}" '{ printf "%.2f %.2f %s\n", $1, $2 + $3, r }' "$out.time"
    rm -f "$out" "$out.time"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

TABLE="$OUT/smp.txt"
{
    echo "# bench-smp: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), host $(nproc) CPUs, $(uname -r)"
    echo "# $("$QEMU_BIN" --version | head -n 1); medians of $REPS paired runs"
} | tee "$TABLE"

# ---- 1. two jobs at once on 2 harts ----------------------------------------
want=$(dd if=/dev/zero bs=1M count="$MB" 2>/dev/null | md5sum | cut -d' ' -f1)
if part 1; then
want=$(dd if=/dev/zero bs=1M count="$MB" 2>/dev/null | md5sum | cut -d' ' -f1)
JOBS="echo 'dd if=/dev/zero bs=1M count=$MB 2>/dev/null | md5sum' > /j.sh; busybox time sh -c 'sh /j.sh & sh /j.sh & wait'"
declare -A real wall
for rep in $(seq 1 "$REPS"); do
    for cfg in strata-1thread strata-2threads qemu; do
        case $cfg in
            strata-1thread) r=$(run strata 2 "$JOBS" --threads 1) ;;
            strata-2threads) r=$(run strata 2 "$JOBS") ;;
            qemu) r=$(run qemu 2 "$JOBS") ;;
        esac
        read -r w _ g <<<"$r"
        real[$cfg]+="$g "
        wall[$cfg]+="$w "
    done
done
grep -c "$want" "$LOG" >/dev/null || die "no job printed the right md5 ($want)"
{
    echo
    echo "## two CPU-bound jobs at once on a 2-hart guest (md5sum of $MB MiB each; the jobs' wall time inside the guest)"
    printf '%-16s %10s %12s\n' config "jobs s" "process s"
    for cfg in strata-1thread strata-2threads qemu; do
        printf '%-16s %10s %12s\n' "$cfg" "$(tr ' ' '\n' <<<"${real[$cfg]}" | grep . | median)" "$(tr ' ' '\n' <<<"${wall[$cfg]}" | grep . | median)"
    done
    one=$(tr ' ' '\n' <<<"${real[strata-1thread]}" | grep . | median)
    two=$(tr ' ' '\n' <<<"${real[strata-2threads]}" | grep . | median)
    q=$(tr ' ' '\n' <<<"${real[qemu]}" | grep . | median)
    awk -v a="$one" -v b="$two" -v q="$q" 'BEGIN { printf "speed-up, one thread per hart against one thread: %.2fx (bar: 1.7x); QEMU / Strata (threads): %.2f\n", a / b, q / b }'
} | tee -a "$TABLE"
fi

# ---- 2. boot with 1, 2, 4 harts --------------------------------------------
if part 2; then
{
    echo
    echo "## Debian boot to power-off (strata.cmd=true), host wall seconds"
    printf '%-6s %10s %10s %12s\n' harts strata qemu "qemu/strata"
} | tee -a "$TABLE"
for smp in 1 2 4; do
    s="" q=""
    for rep in $(seq 1 "$REPS"); do
        r=$(run strata "$smp" true); read -r w _ _ <<<"$r"; s+="$w "
        r=$(run qemu "$smp" true); read -r w _ _ <<<"$r"; q+="$w "
    done
    ms=$(tr ' ' '\n' <<<"$s" | grep . | median)
    mq=$(tr ' ' '\n' <<<"$q" | grep . | median)
    awk -v n="$smp" -v a="$ms" -v b="$mq" 'BEGIN { printf "%-6s %10.2f %10.2f %12.2f\n", n, a, b, b / a }' | tee -a "$TABLE"
done
fi

# ---- 3. an idle 8-hart guest -----------------------------------------------
if part 3; then
{
    echo
    echo "## idle 8-hart guest: host CPU while the guest sleeps $IDLE s (cores busy, of $(nproc))"
    printf '%-8s %12s\n' machine "CPU cores"
} | tee -a "$TABLE"
for m in strata qemu; do
    d=""
    for rep in $(seq 1 "$(( (REPS + 1) / 2 ))"); do
        r=$(run "$m" 8 true); read -r _ c0 _ <<<"$r"
        r=$(run "$m" 8 "sleep $IDLE"); read -r _ c1 _ <<<"$r"
        d+="$(awk -v a="$c0" -v b="$c1" -v t="$IDLE" 'BEGIN { printf "%.3f", (b - a) / t }') "
    done
    printf '%-8s %12s\n' "$m" "$(tr ' ' '\n' <<<"$d" | grep . | median)" | tee -a "$TABLE"
done
fi

# ---- 4. strata run: two VMs, one CPU-bound job each ------------------------
# hyp_run THREADS: prints "<host wall s> <host cpu s> <slower VM's job s>".
hyp_run() {
    local threads=$1 b64 conf out res
    b64=$(printf '%s' "busybox time sh -c 'dd if=/dev/zero bs=1M count=$MB 2>/dev/null | md5sum'" | base64 -w0)
    conf=$(mktemp --suffix=.toml)
    out=$(mktemp)
    {
        echo 'harts = 2'
        for vm in a b; do
            printf '[[vm]]\nname = "%s"\nmemory = "256M"\nkernel = "%s"\ninitrd = "%s"\n' "$vm" "$GUEST/Image" "$GUEST/initramfs.cpio"
            printf 'cmdline = "console=ttyS0 panic=-1 quiet strata.cmd64=%s"\n' "$b64"
        done
    } >"$conf"
    if ! /usr/bin/time -f '%e %U %S' -o "$out.time" timeout 600 "$STRATA_BIN" run --config "$conf" --threads "$threads" \
            </dev/null >"$out" 2>&1; then
        cp "$out" "$OUT/smp-failed-hyp-$threads.log"
        die "strata run --threads $threads failed: $(tail -n 3 "$out" | tr '\n' '|') (log: $OUT/smp-failed-hyp-$threads.log)"
    fi
    [ "$(grep -c "STRATA-CMD-EXIT 0" "$out")" -eq 2 ] || die "strata run --threads $threads: a job failed: $(tail -n 5 "$out" | tr '\n' '|')"
    [ "$(grep -c "$want" "$out")" -eq 2 ] || die "strata run --threads $threads: a job printed the wrong md5"
    { echo "== strata run --threads $threads"; cat "$out"; } >>"$LOG"
    res=$(tr -d '\r' <"$out" | sed -n 's/^\[[ab]\] real[[:space:]]*\([0-9]*\)m \([0-9.]*\)s$/\1 \2/p' |
        awk '{ t = $1 * 60 + $2; if (t > m) m = t } END { printf "%.2f", m }')
    awk -v r="${res:--}" '{ printf "%.2f %.2f %s\n", $1, $2 + $3, r }' "$out.time"
    rm -f "$out" "$out.time" "$conf"
}
if part 4; then
    declare -A hjob hwall
    for rep in $(seq 1 "$REPS"); do
        for t in 1 2; do
            read -r w _ g <<<"$(hyp_run "$t")"
            hjob[$t]+="$g "
            hwall[$t]+="$w "
        done
    done
    {
        echo
        echo "## strata run: two VMs on 2 harts, one CPU-bound job each (md5sum of $MB MiB; the slower VM's job time inside the guest, and the process's wall time)"
        printf '%-16s %10s %12s\n' config "jobs s" "process s"
        for t in 1 2; do
            printf '%-16s %10s %12s\n' "--threads $t" "$(tr ' ' '\n' <<<"${hjob[$t]}" | grep . | median)" \
                "$(tr ' ' '\n' <<<"${hwall[$t]}" | grep . | median)"
        done
        one=$(tr ' ' '\n' <<<"${hjob[1]}" | grep . | median)
        two=$(tr ' ' '\n' <<<"${hjob[2]}" | grep . | median)
        awk -v a="$one" -v b="$two" 'BEGIN { printf "speed-up of the jobs, one thread per hart against one thread: %.2fx\n", a / b }'
    } | tee -a "$TABLE"
fi
echo "bench-smp: table in $TABLE, guest output in $LOG"

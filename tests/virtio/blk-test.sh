#!/usr/bin/env bash
# virtio-blk end-to-end test: the guest's own Debian drivers (virtio_mmio,
# virtio_blk, ext4 modules) on an ext4 image built on the host.
#
#  1. clean run: mount /dev/vda, sha256sum a known file (must match the
#     host), check the disk serial (GET_ID) and a read-only second disk,
#     write a new file, sync, umount, power off; then on the host read the
#     new file back with debugfs and require `e2fsck -fn` to be clean.
#  2. SIGKILL run: write a file, sync, print a marker; the host kills the
#     emulator with SIGKILL as soon as the marker appears, replays the
#     journal on a copy (e2fsck -fy), requires `e2fsck -fn` clean and the
#     file's data intact.
#  3. throughput: dd with iflag=direct over a 64 MiB disk in the guest
#     (reported, not judged).
#
# Usage: tests/virtio/blk-test.sh [--machine strata|qemu] [--timeout SECS]
# Env:   MACHINE (default strata), BOOT_TIMEOUT (300), STRATA_BIN
#        (default target/release/strata), QEMU_BIN (qemu-system-riscv64)
# Logs:  build/test/virtio-blk-<machine>-*.log
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MACHINE=${MACHINE:-strata}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
MEM=512M

while [ $# -gt 0 ]; do
    case "$1" in
        --machine) MACHINE=$2; shift 2 ;;
        --machine=*) MACHINE=${1#*=}; shift ;;
        --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
        --timeout=*) BOOT_TIMEOUT=${1#*=}; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "blk-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

GUEST="$ROOT/build/guest"
LOGDIR="$ROOT/build/test"
mkdir -p "$LOGDIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-blk-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }

# --- preconditions: each a counted failure, never a silent skip.
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || { fail "missing $GUEST/$f (run: make setup)"; finish; }
done
for t in mkfs.ext4 debugfs e2fsck sha256sum awk base64; do
    command -v "$t" >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin
    command -v "$t" >/dev/null 2>&1 || { fail "host tool $t not found (e2fsprogs, coreutils)"; finish; }
done
case "$MACHINE" in
    qemu)   command -v "$QEMU_BIN" >/dev/null 2>&1 || { fail "$QEMU_BIN not found"; finish; } ;;
    strata) [ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (cargo build --release -p strata)"; finish; } ;;
    *) echo "blk-test: unknown machine '$MACHINE' (qemu|strata)" >&2; exit 2 ;;
esac

# --- host-side images
mkdir -p "$WORK/root/sub"
head -c 1048576 /dev/urandom >"$WORK/root/known.bin"
echo "hello from the host" >"$WORK/root/sub/hello.txt"
KNOWN_SHA=$(sha256sum <"$WORK/root/known.bin" | cut -d' ' -f1)
# What the guest writes: 20000 numbered lines (same awk program on both sides).
GEN='BEGIN { for (i = 0; i < 20000; i++) print "strata line " i }'
NEW_SHA=$(awk "$GEN" | sha256sum | cut -d' ' -f1)

mkimg() {   # mkimg PATH: 64 MiB ext4 with the known files
    rm -f "$1"
    truncate -s 64M "$1"
    mkfs.ext4 -q -F -d "$WORK/root" "$1" >/dev/null
}

boot_cmd() {   # boot_cmd LOG GUEST_CMD DRIVE... -> fills CMD array
    local log=$1 gcmd=$2; shift 2
    local append="console=ttyS0 panic=-1 strata.modules=virtio_mmio,virtio_blk,ext4 strata.cmd64=$(printf '%s' "$gcmd" | base64 -w0)"
    case "$MACHINE" in
        qemu)
            CMD=("$QEMU_BIN" -M virt -smp 1 -m "$MEM" -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
                 -initrd "$GUEST/initramfs.cpio" -append "$append"
                 -display none -monitor none -serial stdio -no-reboot)
            local i=0 d
            for d in "$@"; do   # d: PATH[,readonly=on][,serial=S]
                local file=${d%%,*} opts="" dev=""
                case "$d" in *readonly=on*) opts=",readonly=on" ;; esac
                case "$d" in *serial=*) dev=",serial=${d##*serial=}"; dev=${dev%%,readonly*} ;; esac
                CMD+=(-drive "file=$file,if=none,id=d$i,format=raw$opts" -device "virtio-blk-device,drive=d$i$dev")
                i=$((i + 1))
            done ;;
        strata)
            CMD=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image"
                 --initrd "$GUEST/initramfs.cpio" --append "$append" -m "$MEM" --smp 1)
            local d
            for d in "$@"; do CMD+=(--drive "file=$d"); done ;;
    esac
    { printf '#'; printf ' %q' "${CMD[@]}"; echo; } >"$log"
}

# Host wall-clock timestamps on every console line (for throughput).
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done; }

check_fs() {   # check_fs TAG IMG FILE WANT_SHA
    local tag=$1 img=$2 file=$3 want=$4 got out rc
    got=$(debugfs -R "cat $file" "$img" 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then
        pass "$tag: host debugfs reads $file back intact"
    else
        fail "$tag: host debugfs $file sha256 $got, want $want"
    fi
    set +e
    out=$(e2fsck -fn "$img" 2>&1); rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        pass "$tag: e2fsck -fn clean"
    else
        fail "$tag: e2fsck -fn exit $rc: $(tail -n 4 <<<"$out" | tr '\n' '|')"
    fi
}

# ---------------------------------------------------------------- 1. clean
IMG="$WORK/disk.img"
RO="$WORK/ro.img"
mkimg "$IMG"
mkimg "$RO"
RO_SHA_BEFORE=$(sha256sum <"$RO" | cut -d' ' -f1)
GCMD="set -e
cat /sys/block/vda/serial; echo
echo vdb-ro=\$(cat /sys/block/vdb/ro)
mount /dev/vda /mnt
sha256sum /mnt/known.bin
cat /mnt/sub/hello.txt
awk '$GEN' >/mnt/newfile
sync
umount /mnt
if dd if=/dev/zero of=/dev/vdb bs=512 count=1 oflag=direct 2>/dev/null; then echo vdb-write=succeeded; else echo vdb-write=refused; fi
echo DD-START
dd if=/dev/vdb of=/dev/null bs=1M iflag=direct 2>&1 | tail -n 1
echo DD-END"
log="$LOGDIR/virtio-blk-$MACHINE-clean.log"
echo "== $MACHINE: clean run (log $log)"
boot_cmd "$log" "$GCMD" "$IMG,serial=STRATA-DISK-0" "$RO,readonly=on,serial=STRATA-RO"
set +e
timeout --kill-after=10 "$BOOT_TIMEOUT" "${CMD[@]}" </dev/null 2>&1 | stamp >>"$log"
RC=${PIPESTATUS[0]}
set -e
out=$(cut -d' ' -f2- "$log" | tr -d '\r')
tag="$MACHINE clean"
if [ "$RC" -eq 0 ] && grep -q 'reboot: Power down' <<<"$out"; then
    pass "$tag: clean power-off"
else
    fail "$tag: exit status $RC, power-off seen: $(grep -c 'reboot: Power down' <<<"$out")"
fi
grep -q 'virtio_blk virtio[0-9]*: \[vda\]' <<<"$out" && pass "$tag: Debian's virtio_blk driver found vda" \
    || fail "$tag: no 'virtio_blk ... [vda]' in the kernel log"
grep -qx 'STRATA-DISK-0' <<<"$out" && pass "$tag: vda serial (GET_ID) is STRATA-DISK-0" \
    || fail "$tag: vda serial: $(grep -A1 STRATA-GUEST-READY <<<"$out" | tail -n 1)"
grep -qx 'vdb-ro=1' <<<"$out" && pass "$tag: vdb is read-only in the guest" || fail "$tag: vdb not read-only"
grep -qx 'vdb-write=refused' <<<"$out" && pass "$tag: a write to read-only vdb is refused" \
    || fail "$tag: write to vdb: $(grep -o 'vdb-write=.*' <<<"$out")"
[ "$(sha256sum <"$RO" | cut -d' ' -f1)" = "$RO_SHA_BEFORE" ] && pass "$tag: read-only image unchanged on the host" \
    || fail "$tag: read-only image was modified"
grep -qx "$KNOWN_SHA  /mnt/known.bin" <<<"$out" && pass "$tag: guest sha256 of known.bin matches the host" \
    || fail "$tag: guest sha256: '$(grep known.bin <<<"$out" | head -n 1)', want $KNOWN_SHA"
grep -qx 'hello from the host' <<<"$out" && pass "$tag: guest reads sub/hello.txt" || fail "$tag: sub/hello.txt not read"
grep -qE 'STRATA-CMD-EXIT 0$' <<<"$out" && pass "$tag: guest command exit 0" \
    || fail "$tag: guest command: $(grep -o 'STRATA-CMD-EXIT.*' <<<"$out" || echo none)"
check_fs "$tag" "$IMG" /newfile "$NEW_SHA"
t0=$(awk '/ DD-START/ { print $1; exit }' "$log")
t1=$(awk '/ DD-END/ { print $1; exit }' "$log")
ddline=$(awk '/ DD-START/ { getline; sub(/^[^ ]* /, ""); print; exit }' "$log")
if [ -n "$t0" ] && [ -n "$t1" ]; then
    echo "   throughput ($MACHINE): 64 MiB read with O_DIRECT in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s host wall = %.1f MB/s", b - a, 67.108864 / (b - a) }'); guest dd says: $ddline"
fi

# -------------------------------------------------------------- 2. SIGKILL
IMG2="$WORK/disk2.img"
mkimg "$IMG2"
GCMD2="set -e
mount /dev/vda /mnt
awk '$GEN' >/mnt/killfile
sync
echo SYNCED-MARKER
sleep 600"
log="$LOGDIR/virtio-blk-$MACHINE-sigkill.log"
echo "== $MACHINE: SIGKILL after sync (log $log)"
boot_cmd "$log" "$GCMD2" "$IMG2"
"${CMD[@]}" </dev/null >>"$log" 2>&1 &
PID=$!
tag="$MACHINE sigkill"
deadline=$((SECONDS + BOOT_TIMEOUT))
while ! grep -q '^SYNCED-MARKER' "$log" && kill -0 "$PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.05
done
if grep -q '^SYNCED-MARKER' "$log"; then
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    pass "$tag: guest synced; emulator killed with SIGKILL"
    cp --sparse=always "$IMG2" "$WORK/replayed.img"
    set +e
    rout=$(e2fsck -fy "$WORK/replayed.img" 2>&1); rrc=$?
    set -e
    if [ "$rrc" -le 1 ]; then
        pass "$tag: e2fsck -fy replayed the journal (exit $rrc)"
    else
        fail "$tag: e2fsck -fy exit $rrc: $(tail -n 4 <<<"$rout" | tr '\n' '|')"
    fi
    # ext4 keeps the superblock's free block/inode totals in memory and
    # recomputes them at mount, so after a crash e2fsck always corrects
    # those two lines; anything else is real damage.
    prompts=$(grep -cE '\? yes$' <<<"$rout" || true)
    allowed=$(grep -cE '^Free (blocks|inodes) count wrong \([0-9]+, counted=[0-9]+\)\.$' <<<"$rout" || true)
    if [ "$prompts" -gt "$allowed" ]; then
        fail "$tag: e2fsck repaired more than the journal and superblock totals: $(grep -B1 -E '\? yes$' <<<"$rout" | head -n 6 | tr '\n' '|')"
    else
        pass "$tag: only the journal and the superblock free totals needed fixing ($prompts fixes)"
    fi
    check_fs "$tag" "$WORK/replayed.img" /killfile "$NEW_SHA"
else
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    fail "$tag: no SYNCED-MARKER within ${BOOT_TIMEOUT}s (last lines: $(tail -n 3 "$log" | tr '\n' '|'))"
fi

finish

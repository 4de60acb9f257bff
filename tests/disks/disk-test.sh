#!/usr/bin/env bash
# Disk images and host paths shared by mistake, and a full host disk
# (issue 12, items 2, 6 and 9).
#
#   item 2, locking (QEMU's OFD byte locks, so Strata and QEMU exclude each
#   other; read-only users share):
#     2a two read-write drives on one image in one process: refused
#     2b two read-only drives on one image: allowed, the guest sees both
#     2c QEMU holds the image read-write: Strata refused (naming QEMU's
#        pid), read-only too
#     2d QEMU holds it read-only: a read-only Strata is allowed, a writer not
#     2e Strata holds it: QEMU refused (its own lock error), read-only too
#     2f a second Strata process refused, naming the first; free again once
#        the first is killed (SIGKILL: locks die with the process)
#     2g two VMs of one TOML file on one image: refused
#   item 6, clobbering:
#     6a a vsock uds= path another Strata listens on: refused, naming it, and
#        its socket still works; once that process is gone the stale socket
#        file is replaced
#     6b a file that is not a socket at the vsock path: refused, kept
#     6c --serial-log naming an attached drive: refused, the image unchanged
#     6d --serial-log naming an image QEMU holds: refused, unchanged
#     6e one serial_log for two VMs in a TOML file: refused
#   item 9, a full host disk (a 1 MiB tmpfs under build/test, an 8 MiB
#   sparse image on it):
#     9a werror=report (the default): the guest's writes fail with EIO, the
#        host logs the ENOSPC once and counts every failure at the end
#     9b werror=stop: the machine stops with status 9 and a clear message,
#        the guest's write never completes, what was written is in the image
#     9c the same under `strata run` (--stats shows the count)
#
# Needs root (tmpfs mount) and qemu-system-riscv64; anything missing is a
# failure, not a skip.
# Usage: tests/disks/disk-test.sh
# Env:   STRATA_BIN (target/release/strata), QEMU_BIN (qemu-system-riscv64),
#        RUN_TIMEOUT (120 s per boot)
# Logs:  build/test/disks/*.log
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
GUEST="$ROOT/build/guest"
LOGS="$ROOT/build/test/disks"
case "${1:-}" in
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    "") ;;
    *) echo "disk-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac
mkdir -p "$LOGS"
WORK=$(mktemp -d "$ROOT/build/test/disks-work.XXXXXX")
FULL="$WORK/full"   # the tmpfs mount point
BG=()

cleanup() {
    set +e   # nothing here may change the exit status
    for p in "${BG[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    mountpoint -q "$FULL" && umount "$FULL"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP   # so that EXIT's cleanup runs

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"
# expect_refused TAG LOG RC PATTERN: strata exited 1 with exactly one
# stderr line, and it matches the extended regex PATTERN.
expect_refused() {
    local lines
    lines=$(grep -c . "$2" || true)
    if [ "$3" = 1 ] && [ "$lines" = 1 ] && grep -Eq -- "$4" "$2"; then pass "$1"
    else fail "$1: status $3, $lines stderr lines, want 1 and one line matching '$4': $(head -c 400 "$2" | tr '\n' '|')"; fi
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

require_guest "$GUEST" fw_dynamic.bin Image initramfs.cpio
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (cargo build --release)"; finish; }
command -v "$QEMU_BIN" >/dev/null 2>&1 || { fail "$QEMU_BIN not found (scripts/setup-host.sh installs it)"; finish; }
[ "$(id -u)" -eq 0 ] || { fail "needs root to mount the tmpfs of item 9"; finish; }

APPEND_BASE="console=ttyS0 panic=-1 strata.modules=virtio_mmio,virtio_blk"
BOARD=(--bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio" -m 128M)
# strata_cmd LOG CMD ARGS...: boots the guest running CMD; stdout (the
# console) to LOG.out, stderr to LOG.err; sets RC.
strata_cmd() {
    local log=$1 cmd=$2
    shift 2
    RC=0
    timeout "$RUN_TIMEOUT" "$STRATA_BIN" machine "${BOARD[@]}" --clock virtual \
        --append "$APPEND_BASE strata.cmd64=$(printf '%s' "$cmd" | base64 -w0)" "$@" \
        </dev/null >"$LOGS/$log.out" 2>"$LOGS/$log.err" || RC=$?
}
# strata_fail LOG ARGS...: a strata machine that should fail at once (if it
# does not, its guest only powers off); sets RC.
strata_fail() {
    local log=$1
    shift
    RC=0
    timeout "$RUN_TIMEOUT" "$STRATA_BIN" machine "${BOARD[@]}" --clock virtual --append "$APPEND_BASE strata.cmd=true" \
        "$@" </dev/null >"$LOGS/$log.out" 2>"$LOGS/$log.err" || RC=$?
}
# hold_strata ARGS...: a strata machine that keeps running (guest time paced
# to real time, the guest sleeping); its pid in HOLDER.
hold_strata() {
    "$STRATA_BIN" machine "${BOARD[@]}" --clock paced --append "$APPEND_BASE strata.cmd=\"sleep 600\"" "$@" \
        </dev/null >"$LOGS/holder.out" 2>"$LOGS/holder.err" &
    HOLDER=$!
    BG+=("$HOLDER")
}
# hold_qemu IMG [,readonly=on]: QEMU with the image on a virtio-blk, paused
# (-S): it holds the image as a running VM does; its pid in HOLDER.
hold_qemu() {
    "$QEMU_BIN" -M virt -S -display none -monitor none -serial none \
        -drive "file=$1,format=raw,if=none,id=d0${2:-}" -device virtio-blk-device,drive=d0 \
        </dev/null >"$LOGS/qemu-holder.log" 2>&1 &
    HOLDER=$!
    BG+=("$HOLDER")
}
# wait_locked IMG BYTE: until some process holds a lock covering BYTE of IMG
# (/proc/locks). QEMU takes its locks in steps (the block layer's first, the
# device's write permission when the device attaches), so waiting for any
# lock races with the second step: wait for the byte under test (101: "has
# write permission", 201: "shares no write").
wait_locked() {
    local ino i
    ino=$(stat -c %i "$1")
    for i in $(seq 200); do
        awk -v ino=":$ino" -v b="$2" '$0 ~ ino" " {
            n = split($0, f, " "); s = f[n - 1]; e = f[n]
            if (s <= b && (e == "EOF" || b <= e)) found = 1 }
            END { exit !found }' /proc/locks && return 0
        kill -0 "$HOLDER" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop_holder() {
    kill -KILL "$HOLDER" 2>/dev/null || true
    wait "$HOLDER" 2>/dev/null || true
}

IMG="$WORK/disk.img"
head -c $((4 << 20)) /dev/urandom >"$IMG"
IMG_SHA=$(sha "$IMG")

echo "== item 2: image locking"
strata_fail 2a --drive "file=$IMG" --drive "file=$WORK/./disk.img"
expect_refused "2a: two read-write drives on one image in one process are refused" "$LOGS/2a.err" "$RC" \
    "disk.img.* is used twice: as --drive 0 and as --drive 1"

strata_cmd 2b 'cat /sys/block/vda/size /sys/block/vdb/size' --drive "file=$IMG,readonly=on" --drive "file=$IMG,readonly=on"
if [ "$RC" = 0 ] && [ "$(grep -c '^8192' "$LOGS/2b.out" || true)" = 2 ]; then pass "2b: two read-only drives share one image (the guest sees both)"
else fail "2b: status $RC, console: $(grep -E '^[0-9]+|STRATA-CMD' "$LOGS/2b.out" | tr '\n' '|') stderr: $(head -c 300 "$LOGS/2b.err")"; fi

hold_qemu "$IMG"
if wait_locked "$IMG" 101; then
    strata_fail 2c "--drive" "file=$IMG"
    expect_refused "2c: a read-write Strata is refused while QEMU writes the image" "$LOGS/2c.err" "$RC" \
        "disk image .*disk.img is in use: process $HOLDER \(qemu-system-riscv64\) has it open for writing"
    strata_fail 2c-ro "--drive" "file=$IMG,readonly=on"
    expect_refused "2c: a read-only Strata too" "$LOGS/2c-ro.err" "$RC" \
        "in use: process $HOLDER \(qemu-system-riscv64\) has it open for writing"
else fail "2c: QEMU never locked the image: $(tr '\n' '|' <"$LOGS/qemu-holder.log")"; fi
stop_holder

hold_qemu "$IMG" ,readonly=on
if wait_locked "$IMG" 201; then
    strata_cmd 2d 'cat /sys/block/vda/size' --drive "file=$IMG,readonly=on"
    if [ "$RC" = 0 ] && grep -q '^8192' "$LOGS/2d.out"; then pass "2d: a read-only Strata shares an image QEMU reads"
    else fail "2d: status $RC: $(head -c 300 "$LOGS/2d.err")"; fi
    strata_fail 2d-rw "--drive" "file=$IMG"
    expect_refused "2d: a read-write Strata is refused while QEMU reads it" "$LOGS/2d-rw.err" "$RC" \
        "in use: process $HOLDER \(qemu-system-riscv64\) has it open and allows no other writer"
else fail "2d: QEMU never locked the image: $(tr '\n' '|' <"$LOGS/qemu-holder.log")"; fi
stop_holder

hold_strata --drive "file=$IMG"
if wait_locked "$IMG" 101; then
    for ro in "" ",readonly=on"; do
        RC=0
        timeout 20 "$QEMU_BIN" -M virt -S -display none -monitor none -serial none \
            -drive "file=$IMG,format=raw,if=none,id=d0$ro" -device virtio-blk-device,drive=d0 \
            </dev/null >"$LOGS/2e$ro.log" 2>&1 || RC=$?
        if [ "$RC" = 1 ] && grep -q 'Failed to get .*"write" lock' "$LOGS/2e$ro.log"; then
            pass "2e: QEMU${ro:+ (read-only)} refuses the image a Strata writes: $(grep -m1 lock "$LOGS/2e$ro.log")"
        else fail "2e: QEMU${ro:+ (read-only)} status $RC (want 1 with a lock error): $(tr '\n' '|' <"$LOGS/2e$ro.log")"; fi
    done
    strata_fail 2f "--drive" "file=$IMG,readonly=on"
    expect_refused "2f: a second Strata process is refused, naming the first" "$LOGS/2f.err" "$RC" \
        "disk image .*disk.img is in use: process $HOLDER \(strata\) has it open for writing"
else fail "2e/2f: the holding Strata never locked the image: $(head -c 300 "$LOGS/holder.err")"; fi
stop_holder
strata_cmd 2f-after 'cat /sys/block/vda/size' --drive "file=$IMG"
if [ "$RC" = 0 ] && grep -q '^8192' "$LOGS/2f-after.out"; then pass "2f: the image is free once the holder was killed (SIGKILL)"
else fail "2f: after the holder died: status $RC: $(head -c 300 "$LOGS/2f-after.err")"; fi

cat >"$WORK/two-disk.toml" <<EOF
[[vm]]
name = "a"
memory = "64M"
kernel = "$GUEST/Image"
initrd = "$GUEST/initramfs.cpio"
cmdline = "console=ttyS0 panic=-1 strata.cmd=true"
drives = ["file=disk.img"]
[[vm]]
name = "b"
memory = "64M"
kernel = "$GUEST/Image"
initrd = "$GUEST/initramfs.cpio"
cmdline = "console=ttyS0 panic=-1 strata.cmd=true"
drives = ["file=$IMG,readonly=on"]
EOF
RC=0
timeout "$RUN_TIMEOUT" "$STRATA_BIN" run --config "$WORK/two-disk.toml" </dev/null >"$LOGS/2g.out" 2>"$LOGS/2g.err" || RC=$?
expect_refused "2g: two VMs of one TOML file on one image are refused" "$LOGS/2g.err" "$RC" \
    "disk.img is used twice: as VM a's drive 0 and as VM b's drive 0"

echo "== item 6: clobbering"
SOCK="$WORK/v.sock"
hold_strata --vsock "cid=3,uds=$SOCK"
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
strata_fail 6a --vsock "cid=4,uds=$SOCK"
expect_refused "6a: a vsock path another Strata listens on is refused, naming it" "$LOGS/6a.err" "$RC" \
    "vsock: .*v.sock is in use: process $HOLDER \(strata\) is listening on it"
if python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$SOCK" 2>"$WORK/err"; then
    pass "6a: the first Strata's socket still answers"
else fail "6a: the first Strata's socket is gone: $(cat "$WORK/err")"; fi
stop_holder
[ -S "$SOCK" ] || fail "6a: the killed Strata left no socket file, so the stale case is not tested"
strata_cmd 6a-stale 'true' --vsock "cid=3,uds=$SOCK"
if [ "$RC" = 0 ] && [ ! -s "$LOGS/6a-stale.err" ]; then pass "6a: a stale socket file (its process is gone) is replaced"
else fail "6a: stale socket: status $RC: $(head -c 300 "$LOGS/6a-stale.err")"; fi

echo precious >"$WORK/not-a-socket"
strata_fail 6b --vsock "cid=3,uds=$WORK/not-a-socket"
expect_refused "6b: a file that is not a socket at the vsock path is refused" "$LOGS/6b.err" "$RC" \
    "not-a-socket exists and is not a socket"
[ "$(cat "$WORK/not-a-socket")" = precious ] && pass "6b: and kept" || fail "6b: the file was changed"

strata_fail 6c --drive "file=$IMG" --serial-log "$IMG"
expect_refused "6c: --serial-log naming an attached drive is refused" "$LOGS/6c.err" "$RC" \
    "disk.img is used twice: as --serial-log and as --drive 0"
[ "$(sha "$IMG")" = "$IMG_SHA" ] && pass "6c: the image is unchanged" || fail "6c: the image changed"

hold_qemu "$IMG"
if wait_locked "$IMG" 101; then
    strata_fail 6d --serial-log "$IMG"
    expect_refused "6d: --serial-log naming an image QEMU holds is refused" "$LOGS/6d.err" "$RC" \
        "serial log .*disk.img is a disk image that process $HOLDER \(qemu-system-riscv64\) holds"
else fail "6d: QEMU never locked the image"; fi
stop_holder
[ "$(sha "$IMG")" = "$IMG_SHA" ] && pass "6d: the image is unchanged" || fail "6d: the image changed"

cat >"$WORK/two-logs.toml" <<EOF
[[vm]]
name = "a"
memory = "64M"
kernel = "$GUEST/Image"
initrd = "$GUEST/initramfs.cpio"
cmdline = "console=ttyS0 panic=-1 strata.cmd=true"
serial_log = "$WORK/vm.log"
[[vm]]
name = "b"
memory = "64M"
kernel = "$GUEST/Image"
initrd = "$GUEST/initramfs.cpio"
cmdline = "console=ttyS0 panic=-1 strata.cmd=true"
serial_log = "$WORK/vm.log"
EOF
RC=0
timeout "$RUN_TIMEOUT" "$STRATA_BIN" run --config "$WORK/two-logs.toml" </dev/null >"$LOGS/6e.out" 2>"$LOGS/6e.err" || RC=$?
expect_refused "6e: one serial_log for two VMs is refused" "$LOGS/6e.err" "$RC" \
    "vm.log is used twice: as VM a's serial log and as VM b's serial log"

echo "== item 9: a full host disk"
mkdir -p "$FULL"
if ! mount -t tmpfs -o size=1M strata-disk-test "$FULL" 2>"$WORK/err"; then
    fail "9: cannot mount a tmpfs: $(cat "$WORK/err")"
    finish
fi
# The guest writes 2 MiB (the first 1 MiB or so fits), then two more
# writes elsewhere: every one past the space fails.
WRITE='for s in 0 4 6; do dd if=/dev/zero of=/dev/vda bs=1M count=2 seek=$s oflag=direct 2>&1 | grep -m1 "error writing"; echo "dd-done $s"; done'
truncate -s 8M "$FULL/disk.img"
strata_cmd 9a "$WRITE" --drive "file=$FULL/disk.img"
logged=$(grep -c 'write of .* failed: No space left on device' "$LOGS/9a.err" || true)
if [ "$RC" = 0 ] && [ "$(grep -c "^dd: error writing '/dev/vda': Input/output error" "$LOGS/9a.out" || true)" = 3 ] && grep -q '^dd-done 6' "$LOGS/9a.out"; then
    pass "9a: werror=report: each of the guest's three writes past the space fails with an I/O error"
else fail "9a: status $RC, console: $(grep -E '^(dd|STRATA-CMD)' "$LOGS/9a.out" | tr '\n' '|')"; fi
if [ "$logged" = 1 ] && grep -q 'the guest gets an I/O error (werror=report)' "$LOGS/9a.err"; then
    pass "9a: the host logged the ENOSPC once: $(grep -m1 'No space' "$LOGS/9a.err")"
else fail "9a: $logged log lines for the ENOSPC (want 1): $(head -c 400 "$LOGS/9a.err" | tr '\n' '|')"; fi
n=$(sed -n 's/.*host errors: \([0-9]*\) writes failed: No space left on device.*/\1/p' "$LOGS/9a.err")
if [ -n "$n" ] && [ "$n" -ge 3 ]; then pass "9a: the end-of-run summary counts $n failed writes"
else fail "9a: no summary with >= 3 failed writes: $(tail -n 2 "$LOGS/9a.err" | tr '\n' '|')"; fi

rm -f "$FULL/disk.img"
truncate -s 8M "$FULL/disk.img"
strata_cmd 9b "$WRITE" --drive "file=$FULL/disk.img,werror=stop"
if [ "$RC" = 9 ] && grep -q 'werror=stop: the machine stops' "$LOGS/9b.err" && grep -q 'the machine stopped: .*the disks were flushed' "$LOGS/9b.err"; then
    pass "9b: werror=stop: exit status 9 with a clear message: $(grep -m1 'No space' "$LOGS/9b.err")"
else fail "9b: status $RC (want 9): $(head -c 400 "$LOGS/9b.err" | tr '\n' '|')"; fi
if grep -q 'STRATA-GUEST-READY' "$LOGS/9b.out" && ! grep -q '^dd' "$LOGS/9b.out"; then pass "9b: the guest's failed write never completed"
else fail "9b: the guest saw its write end (or never ran): $(grep -E '^(dd|STRATA)' "$LOGS/9b.out" | tr '\n' '|')"; fi
used=$(du -k "$FULL/disk.img" | cut -f1)
if [ "$used" -ge 512 ]; then pass "9b: what was written before the failure is in the image (${used} KiB)"
else fail "9b: only ${used} KiB in the image"; fi

rm -f "$FULL/disk.img"
truncate -s 8M "$FULL/disk.img"
RC=0
timeout "$RUN_TIMEOUT" "$STRATA_BIN" run --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio" -m 128M --clock virtual \
    --append "$APPEND_BASE strata.cmd64=$(printf '%s' "$WRITE" | base64 -w0)" --drive "file=$FULL/disk.img,werror=stop" --stats \
    </dev/null >"$LOGS/9c.out" 2>"$LOGS/9c.err" || RC=$?
if [ "$RC" = 9 ] && grep -q 'werror=stop: the machine stops' "$LOGS/9c.err" && grep -q 'the machine stopped' "$LOGS/9c.err" \
    && grep -q 'host errors: 1 write failed: No space left on device' "$LOGS/9c.err" && ! grep -q '^dd' "$LOGS/9c.out"; then
    pass "9c: strata run, werror=stop: status 9, the write unfinished, --stats counts it"
else fail "9c: strata run: status $RC (want 9): $(grep -E 'strata:|host errors' "$LOGS/9c.err" | head -n 4 | tr '\n' '|')"; fi
umount "$FULL" && pass "9: the tmpfs is unmounted" || fail "9: cannot unmount $FULL"

finish

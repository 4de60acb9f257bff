#!/usr/bin/env bash
# virtio end-to-end test: one boot of the Debian guest with all eight
# virtio-mmio slots in use, driven by the guest's own drivers (virtio_mmio,
# virtio_blk, virtio_net, virtio_console, virtio_rng, vsock modules), and
# commands run in the guest through a vsock agent (tests/virtio/guest-tool.c,
# host side tests/virtio/guest.py) rather than scraped from the console.
#
# Devices: vda ext4 (rw, serial), vdb ext4 read-only (tools), vdc raw 64 MiB
# of random data; virtio-rng, virtio-console on a Unix socket, vsock
# (Firecracker-style Unix sockets), and two virtio-net NICs in a private
# network namespace: one on a TAP that Strata creates (10.213.0.0/24, MAC
# given), one on a TAP made beforehand and named (10.214.0.0/24, default MAC).
#
# Checks, in order:
#   transport  every device negotiated VERSION_1, RING_INDIRECT_DESC and
#              RING_EVENT_IDX with Linux; (after the device checks) each
#              device's interrupts arrived through the PLIC
#   blk        disks and sizes; serial (GET_ID); sha256 of a file put there by
#              `mkfs.ext4 -d` matches the host; a new file written, synced,
#              unmounted and read back on the host with `debugfs -R cat`,
#              `e2fsck -fn` clean; read-only vdb refuses writes; O_DIRECT
#              write+read agrees with the host; BLKDISCARD punches a hole in
#              the host file, BLKZEROOUT zeroes the range
#   rng        the kernel uses virtio_rng; /dev/hwrng delivers
#   console    a line each way over /dev/hvc0
#   vsock      echo guest->host (<uds>_5000), echo host->guest (CONNECT 52),
#              and a 4 MiB bulk echo host->guest->host
#   net        MACs, ping on both NICs, 64 MiB TCP host->guest and 16 MiB
#              guest->host, md5 equal on both sides
#   sigkill    the guest writes a file to vda and syncs; the emulator is
#              killed with SIGKILL as soon as `sync` returned; the journal is
#              replayed on a copy, `e2fsck -fn` is clean and the file intact
#   host       the device models reported no driver error (NEEDS_RESET)
#
# Needs root (network namespace, TAP) and the tools scripts/setup-host.sh
# installs; anything missing is a failure, not a skip.
#
# --machine qemu runs the same checks on QEMU (the reference) with the same
# devices, except that QEMU here has no vsock bridge (vhost-vsock): the agent
# then talks over virtio-console (/dev/hvc0, a chardev socket), and the
# console and vsock checks are reported as SKIP lines, not counted.
#
# Usage: tests/virtio/virtio-test.sh [--machine strata|qemu] [--timeout SECS]
# Env:   STRATA_BIN (target/release/strata), QEMU_BIN (qemu-system-riscv64),
#        BOOT_TIMEOUT (300 s for the boot), STEP_TIMEOUT (120 s per guest
#        command), NET_MIB (64: MiB sent host->guest; guest->host sends 16)
# Logs:  build/test/virtio-<machine>.{serial,stderr}.log
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
QEMU_BIN=${QEMU_BIN:-qemu-system-riscv64}
MACHINE=${MACHINE:-strata}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
NET_MIB=${NET_MIB:-64}
CC=${CC_RISCV:-riscv64-linux-gnu-gcc}
while [ $# -gt 0 ]; do
    case "$1" in
        --machine) MACHINE=$2; shift 2 ;;
        --machine=*) MACHINE=${1#*=}; shift ;;
        --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
        -h|--help) sed -n '2,51p' "$0"; exit 0 ;;
        *) echo "virtio-test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$MACHINE" in
    strata|qemu) ;;
    *) echo "virtio-test: unknown machine '$MACHINE' (strata|qemu)" >&2; exit 2 ;;
esac
PATH=$PATH:/sbin:/usr/sbin

GUEST="$ROOT/build/guest"
LOGDIR="$ROOT/build/test"
mkdir -p "$LOGDIR"
SERIAL="$LOGDIR/virtio-$MACHINE.serial.log"
STDERR="$LOGDIR/virtio-$MACHINE.stderr.log"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-virtio-test.XXXXXX")
NS=strata-vt$$
TAP=svt$$
TAP2=svtu$$
HOST2_IP=10.214.0.1
GUEST2_IP=10.214.0.2
MAC2=52:54:00:12:34:57   # Strata's and QEMU's default for a second NIC
HOST_IP=10.213.0.1
GUEST_IP=10.213.0.2
MAC=52:54:00:ab:cd:ef
UDS="$WORK/vsock.sock"
CON="$WORK/console.sock"
if [ "$MACHINE" = strata ]; then AGENT="vsock:$UDS:1024"; READY='^VSOCK-AGENT-READY 1024'
else AGENT="tty:$CON"; READY='^TTY-AGENT-READY'; fi
GPY="$ROOT/tests/virtio/guest.py"
VM=""
BG=()

cleanup() {
    set +e   # nothing here may change the exit status
    [ -n "$VM" ] && kill -KILL "$VM" 2>/dev/null
    for p in "${BG[@]}"; do kill -- "-$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP   # so that EXIT's cleanup runs

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"
skip() { echo "SKIP: $* (not counted: $MACHINE)"; }
# expect TAG WANT GOT: exact comparison.
expect() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$3', want '$2'"; fi; }
# g CMD: run CMD in the guest, output on stdout, its status as ours. Once a
# command timed out or the agent was unreachable, the guest counts as dead
# and later commands fail at once (so a hung guest costs one timeout).
g() {
    if [ -e "$WORK/dead" ]; then echo "guest unresponsive since: $(cat "$WORK/dead")" >&2; return 125; fi
    local rc=0
    python3 "$GPY" run "$AGENT" --timeout "$STEP_TIMEOUT" -- "$1" || rc=$?
    if [ "$rc" -ge 124 ]; then echo "${1:0:60} (status $rc)" >"$WORK/dead"; fi
    return "$rc"
}
# section NAME: false (and one FAIL) once the guest stopped answering, so
# that steps with host-side helpers talking to the guest are not run.
section() {
    [ -e "$WORK/dead" ] || return 0
    fail "$1: not run, the guest stopped answering at: $(cat "$WORK/dead")"
    return 1
}
sha() { sha256sum | cut -d' ' -f1; }
# reap PID: a host-side helper (started with setsid, so PID is its process
# group) gets 15 s to finish after the guest side did; then its group is
# killed (a hung guest must not leave the test waiting on it).
reap() {
    local i
    for i in $(seq 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -- "-$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
# range_md5 FILE OFFSET_MIB LENGTH_MIB: md5sum output for a piece of FILE.
range_md5() { dd if="$1" bs=1M skip="$2" count="$3" status=none | md5sum; }

# --- preconditions: each a counted failure, never a silent skip.
require_guest "$GUEST" fw_dynamic.bin Image initramfs.cpio
if [ "$MACHINE" = strata ]; then
    [ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (cargo build --release)"; finish; }
else
    command -v "$QEMU_BIN" >/dev/null 2>&1 || { fail "$QEMU_BIN not found"; finish; }
fi
for t in "$CC" mkfs.ext4 debugfs e2fsck sha256sum md5sum python3 ip awk base64 cmp; do
    command -v "$t" >/dev/null 2>&1 || { fail "host tool $t not found (scripts/setup-host.sh installs it)"; finish; }
done
[ "$(id -u)" -eq 0 ] || { fail "needs root for the network namespace and TAP"; finish; }
ip netns add "$NS" 2>"$WORK/err" || { fail "cannot create network namespace: $(cat "$WORK/err")"; finish; }
ip -n "$NS" link set lo up
# The second NIC's TAP exists before the machine starts (named by the user).
ip -n "$NS" tuntap add dev "$TAP2" mode tap
ip -n "$NS" addr add "$HOST2_IP/24" dev "$TAP2"
ip -n "$NS" link set "$TAP2" up

# --- guest tools and disk images
mkdir -p "$WORK/root/sub" "$WORK/tools"
"$CC" -static -O2 -o "$WORK/tools/guest-tool" "$ROOT/tests/virtio/guest-tool.c" || { fail "cannot build guest-tool.c"; finish; }
head -c 1048576 /dev/urandom >"$WORK/root/known.bin"
echo "hello from the host" >"$WORK/root/sub/hello.txt"
KNOWN_SHA=$(sha <"$WORK/root/known.bin")
# What the guest writes: 20000 numbered lines (the same awk program on both sides).
GEN='BEGIN { for (i = 0; i < 20000; i++) print "strata line " i }'
NEW_SHA=$(awk "$GEN" | sha)
mkext4() { truncate -s "$2" "$1"; mkfs.ext4 -q -F -d "$3" "$1" >/dev/null; }
mkext4 "$WORK/vda.img" 64M "$WORK/root"
mkext4 "$WORK/vdb.img" 16M "$WORK/tools"
head -c $((64 << 20)) /dev/urandom >"$WORK/raw.img"
VDB_SHA=$(sha <"$WORK/vdb.img")
head -c $((NET_MIB << 20)) /dev/urandom >"$WORK/net.bin"
NET_MD5=$(md5sum <"$WORK/net.bin" | cut -d' ' -f1)

# --- boot
MODS=virtio_mmio,virtio_blk,ext4,virtio_net,virtio_rng,virtio_console,vmw_vsock_virtio_transport
if [ "$MACHINE" = strata ]; then
    GCMD='mkdir -p /t && mount -o ro /dev/vdb /t && exec /t/guest-tool agent 1024'
else
    GCMD='mkdir -p /t && mount -o ro /dev/vdb /t && exec /t/guest-tool agent-tty /dev/hvc0'
fi
APPEND="console=ttyS0 panic=-1 strata.modules=$MODS strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)"
if [ "$MACHINE" = strata ]; then
    CMD=("$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio"
         --append "$APPEND" -m 512M --smp 1 --clock paced
         --drive "file=$WORK/vda.img,serial=STRATA-DISK-0" --drive "file=$WORK/vdb.img,readonly=on,serial=STRATA-TOOLS"
         --drive "file=$WORK/raw.img"
         --device virtio-rng --virtio-console "$CON" --vsock "cid=3,uds=$UDS"
         --netdev "tap,ifname=$TAP,mac=$MAC" --netdev "tap,ifname=$TAP2")
else
    # Modern virtio-mmio (QEMU 7.2 defaults to the legacy interface).
    CMD=("$QEMU_BIN" -M virt -smp 1 -m 512M -bios "$GUEST/fw_dynamic.bin" -kernel "$GUEST/Image"
         -initrd "$GUEST/initramfs.cpio" -append "$APPEND" -display none -monitor none -serial stdio -no-reboot
         -global virtio-mmio.force-legacy=false)
    i=0
    for d in "vda.img,serial=STRATA-DISK-0" "vdb.img,readonly=on,serial=STRATA-TOOLS" raw.img; do
        f=${d%%,*}; ro=""; ser=""
        case "$d" in *readonly=on*) ro=",readonly=on" ;; esac
        case "$d" in *serial=*) ser=",serial=${d##*serial=}" ;; esac
        CMD+=(-drive "file=$WORK/$f,if=none,id=d$i,format=raw,discard=unmap$ro" -device "virtio-blk-device,drive=d$i$ser")
        i=$((i + 1))
    done
    CMD+=(-device virtio-rng-device
          -device virtio-serial-device -chardev "socket,id=con,path=$CON,server=on,wait=off" -device virtconsole,chardev=con
          -netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no" -device "virtio-net-device,netdev=n0,mac=$MAC"
          -netdev "tap,id=n1,ifname=$TAP2,script=no,downscript=no" -device "virtio-net-device,netdev=n1,mac=$MAC2")
fi
{ printf '#'; printf ' %q' ip netns exec "$NS" "${CMD[@]}"; echo; } | tee "$SERIAL" >"$STDERR"
echo "== $MACHINE: all virtio devices in one boot (logs $SERIAL, $STDERR)"
ip netns exec "$NS" "${CMD[@]}" </dev/null >>"$SERIAL" 2>>"$STDERR" &
VM=$!
deadline=$((SECONDS + BOOT_TIMEOUT))
while ! grep -q "$READY" "$SERIAL" && kill -0 "$VM" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.5
done
if ! grep -q "$READY" "$SERIAL"; then
    fail "the guest agent never came up within ${BOOT_TIMEOUT}s (last lines: $(tail -n 3 "$SERIAL" | tr '\n' '|') stderr: $(tail -n 3 "$STDERR" | tr '\n' '|'))"
    finish
fi
if [ "$MACHINE" = strata ]; then
    pass "booted in $SECONDS s; guest agent listening on vsock port 1024 (host->guest vsock works)"
    if grep -q "created TAP interface $TAP " "$STDERR" && ip -n "$NS" link show "$TAP" >/dev/null 2>&1; then
        pass "strata created TAP $TAP (in namespace $NS)"
    else
        fail "no TAP $TAP created by strata: $(grep -i tap "$STDERR" | head -n 2 | tr '\n' '|')"
    fi
    if grep -q "created TAP interface $TAP2 " "$STDERR"; then fail "strata re-created the existing TAP $TAP2"
    else pass "strata attached to the existing TAP $TAP2"; fi
else
    pass "booted in $SECONDS s; guest agent on /dev/hvc0"
fi
ip -n "$NS" addr add "$HOST_IP/24" dev "$TAP" 2>/dev/null || true
ip -n "$NS" link set "$TAP" up 2>/dev/null || true

# ------------------------------------------------------------ transport
out=$(g 'for d in /sys/bus/virtio/devices/*; do f=$(cat $d/features); echo "$(cat $d/device) ${f:28:1}${f:29:1}${f:32:1}"; done' || true)
if [ "$MACHINE" = strata ]; then devs="0x0001 0x0001 0x0002 0x0002 0x0002 0x0003 0x0004 0x0013"
else devs="0x0001 0x0001 0x0002 0x0002 0x0002 0x0003 0x0004"; fi
expect "transport: $(wc -w <<<"$devs") virtio devices, each with VERSION_1 + RING_INDIRECT_DESC + RING_EVENT_IDX negotiated" \
    "$devs | 111" \
    "$(awk '{print $1}' <<<"$out" | sort | tr '\n' ' ' | sed 's/ $//') | $(awk '{print $2}' <<<"$out" | sort -u | tr '\n' ' ' | sed 's/ $//')"

# ------------------------------------------------------------ blk
out=$(g 'for d in vda vdb vdc; do echo "$d $(cat /sys/block/$d/size) $(cat /sys/block/$d/ro) $(cat /sys/block/$d/serial)"; done' || true)
expect "blk: three disks with their sizes, read-only flags and serials (GET_ID)" \
    "vda 131072 0 STRATA-DISK-0|vdb 32768 1 STRATA-TOOLS|vdc 131072 0 |" "$(tr '\n' '|' <<<"$out")"
out=$(g 'mount /dev/vda /mnt && sha256sum /mnt/known.bin && cat /mnt/sub/hello.txt' || true)
expect "blk: guest sha256 of known.bin (made by mkfs.ext4 -d) matches the host" \
    "$KNOWN_SHA  /mnt/known.bin|hello from the host|" "$(tr '\n' '|' <<<"$out")"
out=$(g "awk '$GEN' >/mnt/newfile && sync && umount /mnt && echo written" || true)
expect "blk: guest wrote, synced and unmounted" "written" "$out"
got=$(debugfs -R "cat /newfile" "$WORK/vda.img" 2>/dev/null | sha)
expect "blk: host debugfs reads the guest's /newfile back intact" "$NEW_SHA" "$got"
if e2fsck -fn "$WORK/vda.img" >"$WORK/fsck.out" 2>&1; then pass "blk: e2fsck -fn clean after the guest's umount"
else fail "blk: e2fsck -fn: $(tail -n 4 "$WORK/fsck.out" | tr '\n' '|')"; fi
out=$(g 'if dd if=/dev/zero of=/dev/vdb bs=512 count=1 oflag=direct 2>/dev/null; then echo write-succeeded; else echo write-refused; fi' || true)
expect "blk: a write to read-only vdb is refused" "write-refused" "$out"
# O_DIRECT: 4 MiB of vdc's random data copied to offset 32 MiB, read back.
out=$(g 'dd if=/dev/vdc of=/dev/vdc bs=1M count=4 skip=0 seek=32 iflag=direct oflag=direct 2>/dev/null && dd if=/dev/vdc bs=1M count=4 skip=32 iflag=direct 2>/dev/null | md5sum' || true)
want=$(range_md5 "$WORK/raw.img" 0 4)
host=$(range_md5 "$WORK/raw.img" 32 4)
expect "blk: O_DIRECT write then read agrees with the source and with the host file" "$want|$want" "${out}|$host"
# DISCARD (hole punched in the host file) and WRITE_ZEROES (zeros).
out=$(g 'echo $(cat /sys/block/vdc/queue/discard_max_bytes) $(cat /sys/block/vdc/queue/write_zeroes_max_bytes)' || true)
if [[ "$out" =~ ^[1-9][0-9]*\ [1-9][0-9]*$ ]]; then pass "blk: the guest sees discard and write-zeroes support ($out)"
else fail "blk: discard/write-zeroes limits: '$out'"; fi
blocks_before=$(stat -c %b "$WORK/raw.img")
out=$(g '/t/guest-tool discard /dev/vdc 8388608 4194304 && /t/guest-tool zeroout /dev/vdc 16777216 1048576 && echo done' || true)
blocks_after=$(stat -c %b "$WORK/raw.img")
zeros=$(range_md5 /dev/zero 0 1)
z1=$(range_md5 "$WORK/raw.img" 16 1)
d1=$(range_md5 "$WORK/raw.img" 8 1)
expect "blk: BLKDISCARD and BLKZEROOUT succeed in the guest" "done" "$out"
expect "blk: the zeroed range reads as zeros on the host" "$zeros" "$z1"
freed=$(( (blocks_before - blocks_after) * 512 ))
if [ "$freed" -ge $((4 << 20)) ] && [ "$d1" = "$zeros" ]; then pass "blk: discard punched a $((freed >> 20)) MiB hole in the host file"
else fail "blk: discard freed $freed bytes on the host (want >= 4 MiB), range zero: $([ "$d1" = "$zeros" ] && echo yes || echo no)"; fi

# ------------------------------------------------------------ rng
out=$(g 'cat /sys/class/misc/hw_random/rng_current; head -c 65536 /dev/hwrng | wc -c; a=$(head -c 32 /dev/hwrng | md5sum); b=$(head -c 32 /dev/hwrng | md5sum); [ "$a" != "$b" ] && echo differ' || true)
expect "rng: the kernel uses virtio_rng; /dev/hwrng delivers 64 KiB; two reads differ" "virtio_rng.0|65536|differ|" "$(tr '\n' '|' <<<"$out" | sed 's/virtio_rng[^|]*/virtio_rng.0/')"

if [ "$MACHINE" = qemu ]; then
    skip "console: the agent itself runs over /dev/hvc0 here"
    skip "vsock: no vhost-vsock on this host"
elif section "console and vsock"; then
# ------------------------------------------------------------ console
setsid python3 "$GPY" console "$CON" host-says-hi >"$WORK/console.out" 2>&1 &
BG+=($!)
for _ in $(seq 100); do grep -q '^connected' "$WORK/console.out" && break; sleep 0.1; done
out=$(g 'exec 3<>/dev/hvc0; stty raw -echo <&3; echo guest-says-hello >&3; read -r line <&3; echo "got $line"' || true)
reap "${BG[-1]}"
expect "console: the host reads the guest's line from /dev/hvc0" "connected|guest-says-hello" "$(head -n 2 "$WORK/console.out" | tr '\n' '|' | sed 's/|$//')"
expect "console: the guest reads the host's line from /dev/hvc0" "got host-says-hi" "$out"

# ------------------------------------------------------------ vsock
setsid python3 "$GPY" serve-line "${UDS}_5000" >"$WORK/serve.out" 2>&1 &
BG+=($!)
for _ in $(seq 50); do [ -S "${UDS}_5000" ] && break; sleep 0.1; done
out=$(g '/t/guest-tool connect 2 5000 hello-from-guest' || true)
reap "${BG[-1]}"
expect "vsock guest->host: <uds>_5000 got the guest's line" "hello-from-guest" "$(cat "$WORK/serve.out")"
expect "vsock guest->host: the guest got the echo" "echo: hello-from-guest" "$out"
g '/t/guest-tool listen 52 >/tmp/listen.out 2>&1 & /t/guest-tool echo 53 >/tmp/echo.out 2>&1 &
for i in $(seq 100); do grep -q LISTENING /tmp/listen.out && grep -q LISTENING /tmp/echo.out && break; sleep 0.1; done
cat /tmp/listen.out /tmp/echo.out' >"$WORK/l.out" 2>&1 || true
out=$(python3 "$GPY" connect "$UDS" 52 ping-from-host 2>&1 || true)
if [[ "$(head -n 1 <<<"$out")" =~ ^OK\ [0-9]+$ ]]; then pass "vsock host->guest: CONNECT 52 answered '$(head -n 1 <<<"$out")'"
else fail "vsock host->guest: CONNECT 52 answered '$(head -n 1 <<<"$out")' (guest: $(tr '\n' '|' <"$WORK/l.out"))"; fi
expect "vsock host->guest: the guest echoed the host's line" "echo: ping-from-host" "$(sed -n 2p <<<"$out")"
out=$(python3 "$GPY" echo "$UDS" 53 $((4 << 20)) 2>&1 || true)
sent=$(awk '/^sent/ {print $2, $3}' <<<"$out")
expect "vsock host->guest->host: 4 MiB bulk echo came back intact" "$sent" "$(awk '/^got/ {print $2, $3}' <<<"$out")"
[ -n "$sent" ] || fail "vsock bulk echo: $out"
out=$(g 'cat /tmp/listen.out /tmp/echo.out' || true)
expect "vsock: the guest servers saw the line and all bytes" "VSOCK-LISTENING 52|VSOCK-SERVED ping-from-host|VSOCK-LISTENING 53|VSOCK-ECHOED $((4 << 20))|" "$(tr '\n' '|' <<<"$out")"

fi

# ------------------------------------------------------------ net
if section net; then
# The guest finds each NIC by its MAC (probe order decides eth0/eth1).
up_nic() {   # up_nic MAC GUEST_IP HOST_IP
    g "i=\$(grep -l '^$1\$' /sys/class/net/*/address | cut -d/ -f5); echo \$i | cut -c1-3; ip link set \$i up && ip addr add $2/24 dev \$i && ping -c 3 -W 5 $3 | grep 'packets transmitted'"
}
out=$(up_nic "$MAC" "$GUEST_IP" "$HOST_IP" || true)
expect "net: a NIC has the configured MAC $MAC; 3/3 pings over the created TAP answered" \
    "eth|3 packets transmitted, 3 packets received, 0% packet loss|" "$(tr '\n' '|' <<<"$out")"
out=$(up_nic "$MAC2" "$GUEST2_IP" "$HOST2_IP" || true)
expect "net: the second NIC has the default MAC $MAC2; 3/3 pings over the named TAP answered" \
    "eth|3 packets transmitted, 3 packets received, 0% packet loss|" "$(tr '\n' '|' <<<"$out")"
# Host -> guest ($NET_MIB MiB): the guest checksums what it receives.
t0=$SECONDS
setsid python3 - "$GPY" "$NS" "$GUEST_IP" "$WORK/net.bin" >"$WORK/send.out" 2>&1 <<'EOF' &
import subprocess, sys, time
gpy, ns, ip, path = sys.argv[1:]
for _ in range(120):   # retry until the guest listens
    if subprocess.run(["ip", "netns", "exec", ns, "python3", gpy, "tcp-send", ip, "5602", path]).returncode == 0:
        sys.exit(0)
    time.sleep(0.5)
sys.exit(1)
EOF
BG+=($!)
out=$(STEP_TIMEOUT=180 g '/t/guest-tool tcp-recv 5602 2>/dev/null | md5sum' || true)
reap "${BG[-1]}"
expect "net: $NET_MIB MiB TCP host->guest over TAP, guest md5 equals the host's ($((SECONDS - t0)) s)" "$NET_MD5  -" "$out"
# Guest -> host (16 MiB of vdc): the guest checksums what it sends.
t0=$SECONDS
setsid ip netns exec "$NS" python3 "$GPY" tcp-recv "$HOST_IP" 5601 >"$WORK/recv.out" 2>"$WORK/recv.err" &
BG+=($!)
for _ in $(seq 100); do grep -q '^listening' "$WORK/recv.err" && break; sleep 0.1; done
out=$(STEP_TIMEOUT=180 g "rm -f /tmp/f; mkfifo /tmp/f; md5sum </tmp/f >/tmp/sum & dd if=/dev/vdc bs=1M count=16 2>/dev/null | tee /tmp/f | /t/guest-tool tcp-send $HOST_IP 5601; wait; cat /tmp/sum" || true)
reap "${BG[-1]}"
raw_now=$(range_md5 "$WORK/raw.img" 0 16 | cut -d' ' -f1)
expect "net: 16 MiB TCP guest->host over TAP, host md5 equals the guest's ($((SECONDS - t0)) s)" \
    "$raw_now $((16 << 20))|$raw_now  -" "$(cat "$WORK/recv.out")|$out"
fi

# ------------------------------------------------------------ interrupts
# By now every device has completed requests: each one's interrupt line is a
# PLIC source (the device tree's interrupts-extended/interrupt-parent) with
# interrupts counted.
out=$(g 'grep virtio /proc/interrupts' || true)
n=$(wc -w <<<"$devs")
lines=$(grep -c 'PLIC.*virtio' <<<"$out" || true)
busy=$(awk '/PLIC.*virtio/ && $2 > 0' <<<"$out" | wc -l)
expect "transport: each of the $n devices' interrupts came through the PLIC" "$n $n" "$lines $busy"
[ "$lines" = "$n" ] && [ "$busy" = "$n" ] || echo "   /proc/interrupts: $(tr -s ' ' <<<"$out" | tr '\n' '|')"

# ------------------------------------------------------------ SIGKILL after sync
out=$(g "mkdir -p /k && mount /dev/vda /k && awk '$GEN' >/k/killfile && sync && echo synced" || true)
kill -KILL "$VM" 2>/dev/null || true
wait "$VM" 2>/dev/null || true
VM=""
expect "sigkill: the guest wrote and synced; $MACHINE killed with SIGKILL right after" "synced" "$out"
cp --sparse=always "$WORK/vda.img" "$WORK/replayed.img"
e2fsck -E journal_only -y "$WORK/replayed.img" >"$WORK/replay.out" 2>&1 || true
if e2fsck -fn "$WORK/replayed.img" >"$WORK/fsck.out" 2>&1; then pass "sigkill: after journal replay, e2fsck -fn is clean"
else fail "sigkill: e2fsck -fn after replay: $(grep -v '^Pass\|^e2fsck' "$WORK/fsck.out" | head -n 6 | tr '\n' '|')"; fi
got=$(debugfs -R "cat /killfile" "$WORK/replayed.img" 2>/dev/null | sha)
expect "sigkill: the synced file is there, intact" "$NEW_SHA" "$got"
got=$(debugfs -R "cat /known.bin" "$WORK/replayed.img" 2>/dev/null | sha)
expect "sigkill: the host's known.bin is still intact" "$KNOWN_SHA" "$got"

# ------------------------------------------------------------ host side
expect "host: the read-only image is unchanged" "$VDB_SHA" "$(sha <"$WORK/vdb.img")"
if [ "$MACHINE" = qemu ]; then skip "host: strata's driver-error and panic checks"
elif grep -q 'needs a reset' "$STDERR"; then fail "host: a device reported a driver error: $(grep 'needs a reset' "$STDERR" | head -n 3 | tr '\n' '|')"
else pass "host: no device reported a driver error (DEVICE_NEEDS_RESET)"; fi
if [ "$MACHINE" = strata ]; then
    if grep -qi 'panicked' "$STDERR"; then fail "host: strata panicked: $(grep -i -m1 panicked "$STDERR")"; else pass "host: no panic"; fi
fi
finish

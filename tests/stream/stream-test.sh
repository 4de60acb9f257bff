#!/usr/bin/env bash
# Streamed disks (issue 19), end to end: the Debian root filesystem of
# scripts/build-rootfs.sh, packed with `strata disk pack` and served by a real
# nginx on loopback (this script's own process, private config, stopped at
# the end), boots systemd to its autologin shell on `strata machine` from
# --drive url=...,cache=...,pubkey=... Commands typed into that shell read
# files; the drive's counter file (CACHE/stats) and log of fetched blocks
# (CACHE/fetched) say what came over the network.
#
# Checks:
#   - a cold boot reaches the shell and fetches a small part of the image
#   - every block fetched equals the original image there, byte for byte,
#     and a file the guest reads has the original's checksum
#   - a warm boot of the same version fetches no more than a few blocks
#   - nginx stopped mid-run: an uncached read fails in the guest (EIO), what
#     is cached still reads, and after nginx is back the read succeeds
#   - nginx that stops answering (SIGSTOP): the read fails after timeout=,
#     the machine goes on, and reads resume on SIGCONT
#   - a corrupted block on the server: refused (hash mismatches counted),
#     the guest gets EIO, never the bad bytes; restored, the read succeeds
#   - a tampered table, or the right table with another key: strata exits 1
#     with one error line, before the guest starts
#   - a changed image packed into the same DIR adds few blocks; a warm-cache
#     boot of the new version fetches the new table and only blocks of the
#     new version (counted), and reads the changed file's new content
#
# Usage: tests/stream/stream-test.sh
# Env:   STRATA_BIN, STREAM_PORT (loopback port, default 18000 + pid % 1000)
# Logs:  build/test/stream/ (console logs, nginx logs, the packed DIR, caches)
# Last line: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GUEST="$ROOT/build/guest"
W="$ROOT/build/test/stream"
PORT=${STREAM_PORT:-$((18000 + $$ % 1000))}
BS=65536

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"   # finish is redefined below, to clean up first
# check WHAT COMMAND...: one check; a compound condition goes in one string,
# evaluated here (check WHAT '[ "$X" = 1 ] && [ "$Y" = 2 ]').
check() {
    local what=$1; shift
    if [ $# = 1 ]; then
        if eval "$1"; then pass "$what"; else fail "$what"; fi
    elif "$@"; then pass "$what"; else fail "$what"; fi
}
SERVER_PID=""
GUEST_PID=""
cleanup() {
    [ -n "$GUEST_PID" ] && kill "$GUEST_PID" 2>/dev/null || true
    if [ -n "$SERVER_PID" ]; then
        kill -CONT "$SERVER_PID" $(pgrep -P "$SERVER_PID" 2>/dev/null) 2>/dev/null || true
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    exec {IN}>&- 2>/dev/null || true
}
finish() { cleanup; echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }
trap cleanup EXIT

require_guest "$GUEST" Image initramfs.cpio fw_dynamic.bin
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (run: make build)"; finish; }
command -v debugfs >/dev/null || { fail "debugfs not found (e2fsprogs; run: scripts/setup-host.sh)"; finish; }
if ! IMG=$("$ROOT/scripts/build-rootfs.sh"); then
    fail "no root filesystem image: scripts/build-rootfs.sh failed"
    finish
fi
IMG_SIZE=$(stat -c %s "$IMG")

rm -rf "$W"
mkdir -p "$W/www" "$W/nginx/tmp"
DIR="$W/www/disk"
URL="http://127.0.0.1:$PORT/disk/table"

# --- the server: nginx, or python3's http.server if nginx cannot run here
start_server() {
    if [ -x /usr/sbin/nginx ]; then
        cat >"$W/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
events { worker_connections 64; }
http {
    access_log $W/nginx/access.log;
    client_body_temp_path $W/nginx/tmp;
    proxy_temp_path $W/nginx/tmp;
    fastcgi_temp_path $W/nginx/tmp;
    uwsgi_temp_path $W/nginx/tmp;
    scgi_temp_path $W/nginx/tmp;
    server { listen 127.0.0.1:$PORT; root $W/www; }
}
EOF
        /usr/sbin/nginx -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" >>"$W/nginx/out" 2>&1 &
        SERVER_PID=$!
        SERVER=nginx
    else
        echo "stream-test: /usr/sbin/nginx missing: falling back to python3 -m http.server" >&2
        (cd "$W/www" && exec python3 -m http.server --bind 127.0.0.1 "$PORT") >>"$W/nginx/out" 2>&1 &
        SERVER_PID=$!
        SERVER=python3
    fi
    local i
    for i in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$1/stats"; }

# --- pack and sign version 1
"$STRATA_BIN" disk keygen "$W/key" >/dev/null
"$STRATA_BIN" disk keygen "$W/other" >/dev/null
PACK1=$("$STRATA_BIN" disk pack "$IMG" "$DIR" --key "$W/key")
echo "$PACK1"
check "pack: image of $IMG_SIZE bytes into $((IMG_SIZE / BS)) table entries" \
    grep -q "generation 1 .* $((IMG_SIZE / BS)) blocks" <<<"$PACK1"
start_server || { fail "$SERVER does not answer on 127.0.0.1:$PORT (see $W/nginx/)"; finish; }
echo "server: $SERVER on 127.0.0.1:$PORT"

# --- a machine whose console is driven through a FIFO
APPEND="console=ttyS0 earlycon panic=-1 root=/dev/vda rootfstype=ext4 rw strata.modules=virtio_mmio,virtio_blk,ext4"
boot() { # NAME DRIVE-OPTIONS
    LOG="$W/$1.log"
    rm -f "$W/in.fifo"
    mkfifo "$W/in.fifo"
    exec {IN}<>"$W/in.fifo"
    "$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" \
        --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 1G \
        --drive "$2" <"$W/in.fifo" >"$LOG" 2>"$W/$1.err" &
    GUEST_PID=$!
}
wait_for() { # PATTERN SECONDS
    local i
    for i in $(seq $(($2 * 5))); do
        grep -aqE "$1" "$LOG" && return 0
        kill -0 "$GUEST_PID" 2>/dev/null || { grep -aqE "$1" "$LOG"; return; }
        sleep 0.2
    done
    return 1
}
# Runs a command in the guest's shell; prints what it printed between the
# markers. The echoed command line has "$(" where the answer has its value.
guest() { # TAG COMMAND [SECONDS]
    echo "echo $1:\$($2 2>/dev/null):END" >&"$IN"
    if wait_for "$1:[^$]*:END" "${3:-60}"; then
        grep -aoE "$1:[^$]*:END" "$LOG" | tail -1 | sed -E "s/^$1:(.*):END$/\1/"
    else
        echo "no-answer"
    fi
}
shutdown_guest() {
    echo "systemctl poweroff" >&"$IN"
    local i
    for i in $(seq 300); do kill -0 "$GUEST_PID" 2>/dev/null || break; sleep 0.2; done
    kill "$GUEST_PID" 2>/dev/null || true
    wait "$GUEST_PID" 2>/dev/null && RC=0 || RC=$?
    GUEST_PID=""
    exec {IN}>&-
}
PROMPT='root@strata:~#'
host_md5() { debugfs -R "cat $2" "$1" 2>/dev/null | md5sum | cut -c1-32; }
# The table index of the 64 KiB block holding the file's 4 KiB block N.
block_of() { # IMAGE PATH N
    local b
    b=$(debugfs -R "bmap $2 $3" "$1" 2>/dev/null)
    echo $((b * 4096 / BS))
}
hash_at() { # TABLE INDEX
    od -An -tx1 -v -j $((40 + 32 * $2)) -N 32 "$1" | tr -d ' \n'
}

# Files the checks read: one that changes in version 2, two large ones no
# boot reads (so their blocks are uncached).
FILE_A=/usr/share/common-licenses/GPL-3
FILE_B=/usr/bin/perl
FILE_C=/usr/bin/sqv
FILE_D=/usr/bin/localedef

# === run 1: cold cache
CACHE="$W/cache"
DRIVE="url=$URL,cache=$CACHE,pubkey=$W/key.pub,timeout=2"
boot cold "$DRIVE,overlay=$W/overlay1"
if wait_for "$PROMPT" 240; then pass "cold cache: Debian booted to its shell from the streamed drive"; else fail "cold cache: no shell prompt (see $LOG, $W/cold.err)"; fi
A1=$(guest R1 "md5sum <$FILE_A | cut -c1-32")
check "cold cache: $FILE_A read in the guest has the original's MD5" [ "$A1" = "$(host_md5 "$IMG" $FILE_A)" ]
shutdown_guest
check "cold cache: the machine powered off (status $RC)" [ "$RC" = 0 ]
FETCHED=$(stat_of "$CACHE" bytes_fetched)
NBLK=$(stat_of "$CACHE" blocks_fetched)
echo "cold boot: $NBLK blocks fetched, $FETCHED bytes on the wire (+$(stat_of "$CACHE" table_bytes) table) of a $IMG_SIZE-byte image"
check "cold cache: bytes fetched ($FETCHED) are under 5% of the image ($IMG_SIZE)" \
    '[ "${FETCHED:-0}" -gt 0 ] && [ "$FETCHED" -lt $((IMG_SIZE / 20)) ]'
# Every block fetched (CACHE/fetched: index hash) equals the image there.
bad=0
while read -r idx h; do
    if ! dd if="$IMG" bs=$BS skip="$idx" count=1 status=none | cmp -s - "$CACHE/blocks/${h:0:2}/$h"; then
        bad=$((bad + 1))
    fi
done <"$CACHE/fetched"
check "cold cache: all $(wc -l <"$CACHE/fetched") blocks read equal the original image byte for byte" [ "$bad" = 0 ]

# === run 2: warm cache, same version; then the server's failures
boot warm "$DRIVE,overlay=$W/overlay2"
wait_for "$PROMPT" 240 || true
WARM=$(stat_of "$CACHE" blocks_fetched)
check "warm cache: booted to the shell fetching $WARM blocks (at most 8)" \
    'grep -aq "$PROMPT" "$LOG" && [ "${WARM:-99}" -le 8 ]'
# Metadata and the tools first (while the server is up), so the failures
# hit the files' data, not cat's own code.
guest M "ls -l $FILE_B $FILE_C $FILE_D | cat | wc -l" >/dev/null
# nginx stopped mid-run.
stop_server
B_ERR=$(guest RB "cat $FILE_B >/dev/null; echo \$?" 120)
check "server stopped: an uncached read fails in the guest (cat status $B_ERR)" '[ "$B_ERR" = 1 ]'
A2=$(guest RA "md5sum <$FILE_A | cut -c1-32")
check "server stopped: cached data still reads" [ "$A2" = "$A1" ]
check "server stopped: strata reported the guest's I/O error" grep -aq "the guest gets an I/O error" "$W/warm.err"
start_server || fail "server restart"
B_OK=$(guest RB2 "md5sum <$FILE_B | cut -c1-32" 120)
check "server back: the same read succeeds with the original's data" [ "$B_OK" = "$(host_md5 "$IMG" $FILE_B)" ]
# nginx stops answering (SIGSTOP): the read fails after the timeout.
kill -STOP "$SERVER_PID" $(pgrep -P "$SERVER_PID") 2>/dev/null || true
T0=$SECONDS
C_ERR=$(guest RC "cat $FILE_C >/dev/null; echo \$?" 200)
check "server silent: the read fails after the timeout (cat status $C_ERR, $((SECONDS - T0)) s)" \
    '[ "$C_ERR" = 1 ]'
kill -CONT "$SERVER_PID" $(pgrep -P "$SERVER_PID") 2>/dev/null || true
C_OK=$(guest RC2 "md5sum <$FILE_C | cut -c1-32" 120)
check "server answering again: reads resume" [ "$C_OK" = "$(host_md5 "$IMG" $FILE_C)" ]
# A corrupted block on the server.
IDX=$(block_of "$IMG" $FILE_D 16)
H=$(hash_at "$DIR/table" "$IDX")
BF="$DIR/blocks/${H:0:2}/$H"
MM0=$(stat_of "$CACHE" hash_mismatches)
if [ -e "$CACHE/blocks/${H:0:2}/$H" ] || [ ! -e "$BF" ]; then
    fail "corrupt block: block $IDX of $FILE_D is already cached or not stored"
else
    cp "$BF" "$W/saved-block"
    head -c $BS /dev/urandom | zstd -q -c >"$BF"
    D_ERR=$(guest RD "cat $FILE_D >/dev/null; echo \$?" 120)
    MM=$(stat_of "$CACHE" hash_mismatches)
    check "corrupt block: refused, the guest's read fails (cat status $D_ERR, $((MM - MM0)) mismatches)" \
        '[ "$D_ERR" = 1 ] && [ "$((MM - MM0))" -ge 3 ]'
    check "corrupt block: nothing that failed its hash was cached" [ ! -e "$CACHE/blocks/${H:0:2}/$H" ]
    cp "$W/saved-block" "$BF"
    D_OK=$(guest RD2 "md5sum <$FILE_D | cut -c1-32" 120)
    check "corrupt block: restored on the server, the read succeeds" [ "$D_OK" = "$(host_md5 "$IMG" $FILE_D)" ]
fi
shutdown_guest
check "warm cache: the machine powered off after the failures (status $RC)" [ "$RC" = 0 ]

# === a tampered table, and another key: refused at start, status 1
mkdir -p "$W/www/bad"
cp "$DIR/table" "$W/www/bad/table"
ln -sfn "$DIR/blocks" "$W/www/bad/blocks"
printf '\x01' | dd of="$W/www/bad/table" bs=1 seek=$((40 + 32 * 100)) conv=notrunc status=none
refused() { # NAME DRIVE
    set +e
    timeout 60 "$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" \
        --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 1G --drive "$2" </dev/null >"$W/$1.log" 2>"$W/$1.err"
    local rc=$?
    set -e
    [ "$rc" = 1 ] && [ "$(wc -l <"$W/$1.err")" = 1 ] && grep -q "signature does not verify" "$W/$1.err" && [ ! -s "$W/$1.log" ]
}
check "tampered table: refused at start with status 1 and one error line" \
    refused tampered "url=http://127.0.0.1:$PORT/bad/table,cache=$W/cache-bad,pubkey=$W/key.pub"
check "the right table with another key: refused at start with status 1 and one error line" \
    refused otherkey "url=$URL,cache=$W/cache-bad,pubkey=$W/other.pub"
cat "$W/tampered.err" "$W/otherkey.err"

# === version 2: a changed file, packed into the same DIR
IMG2="$W/rootfs-v2.img"
cp --sparse=always "$IMG" "$IMG2"
head -c 100000 /dev/urandom | base64 >"$W/new-content"
printf 'cd %s\nrm %s\nwrite %s %s\n' "$(dirname $FILE_A)" "$(basename $FILE_A)" "$W/new-content" "$(basename $FILE_A)" >"$W/debugfs.cmd"
debugfs -w -f "$W/debugfs.cmd" "$IMG2" >"$W/debugfs.log" 2>&1
ls -R "$DIR/blocks" | grep -E '^[0-9a-f]{64}$' | sort >"$W/blocks-v1"
PACK2=$("$STRATA_BIN" disk pack "$IMG2" "$DIR" --key "$W/key")
echo "$PACK2"
ls -R "$DIR/blocks" | grep -E '^[0-9a-f]{64}$' | sort >"$W/blocks-v2"
comm -13 "$W/blocks-v1" "$W/blocks-v2" >"$W/blocks-new"
NEW=$(wc -l <"$W/blocks-new")
check "version 2: packing into the same DIR added only $NEW new blocks (at most 16)" '[ "$NEW" -ge 1 ] && [ "$NEW" -le 16 ]'
boot v2 "$DRIVE,overlay=$W/overlay3"
wait_for "$PROMPT" 240 || true
A3=$(guest R3 "md5sum <$FILE_A | cut -c1-32")
check "version 2: the guest reads the changed file's new content" [ "$A3" = "$(md5sum <"$W/new-content" | cut -c1-32)" ]
shutdown_guest
V2N=$(stat_of "$CACHE" blocks_fetched)
V2T=$(stat_of "$CACHE" table_bytes)
OTHER=$(cut -d' ' -f2 "$CACHE/fetched" | sort | comm -23 - "$W/blocks-new" | wc -l)
echo "version 2, warm cache: table $V2T bytes, $V2N blocks fetched ($OTHER not new in version 2), $(stat_of "$CACHE" bytes_fetched) bytes"
check "version 2, warm cache: fetched the new table and $V2N blocks, all of them new in version 2" \
    '[ "$V2T" = "$(stat -c %s "$DIR/table")" ] && [ "${V2N:-0}" -ge 1 ] && [ "$OTHER" = 0 ]'

finish

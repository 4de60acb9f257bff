#!/usr/bin/env bash
# Streamed drives (issue 19): the Debian root filesystem of
# scripts/build-rootfs.sh booted by `strata machine` to systemd's autologin
# shell on the serial console (time to userspace: the host's seconds from
# the start of strata to the shell prompt), from
#   1. the local raw image (--drive file=, a sparse copy),
#   2. a streamed drive, cold cache (nginx on loopback, a new cache),
#   3. a streamed drive, warm cache (the cache of 2, a new overlay),
#   4. a streamed drive, cold cache, reading ahead from the boot profile
#      the cold run of 2 recorded (published beside the table),
# with the bytes fetched (the drive's counter file) against the image size.
# Each configuration runs REPS times (the cold one with a new cache each
# time); medians are reported. Output: build/bench/stream.txt.
#
# Env: REPS (default 3), STRATA_BIN, STREAM_PORT (default 19000 + pid % 1000).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPS=${REPS:-3}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
PORT=${STREAM_PORT:-$((19000 + $$ % 1000))}
GUEST="$ROOT/build/guest"
OUT="$ROOT/build/bench"
W="$OUT/stream"
die() { echo "bench-stream: ERROR: $*" >&2; exit 1; }
[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
[ -x /usr/sbin/nginx ] || die "nginx not found (run: scripts/setup-host.sh)"
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
IMG=$("$ROOT/scripts/build-rootfs.sh") || die "no root filesystem image"
IMG_SIZE=$(stat -c %s "$IMG")
rm -rf "$W"
mkdir -p "$W/www" "$W/nginx/tmp"

NGINX_PID=""
cleanup() { [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
"$STRATA_BIN" disk keygen "$W/key" >/dev/null
"$STRATA_BIN" disk pack "$IMG" "$W/www/disk" --key "$W/key" >"$W/pack.txt"
cat >"$W/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $W/nginx/tmp;
    proxy_temp_path $W/nginx/tmp;
    fastcgi_temp_path $W/nginx/tmp;
    uwsgi_temp_path $W/nginx/tmp;
    scgi_temp_path $W/nginx/tmp;
    server { listen 127.0.0.1:$PORT; root $W/www; }
}
EOF
/usr/sbin/nginx -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" &
NGINX_PID=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

APPEND="console=ttyS0 earlycon panic=-1 root=/dev/vda rootfstype=ext4 rw strata.modules=virtio_mmio,virtio_blk,ext4"
# One boot to the shell prompt; prints the seconds it took.
boot() { # LOG DRIVE
    local log=$1 fifo="$W/in.fifo" t0 t pid in
    rm -f "$fifo"; mkfifo "$fifo"; exec {in}<>"$fifo"
    t0=$EPOCHREALTIME
    "$STRATA_BIN" machine --bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" \
        --initrd "$GUEST/initramfs.cpio" --append "$APPEND" -m 1G --drive "$2" <"$fifo" >"$log" 2>&1 &
    pid=$!
    t=""
    for _ in $(seq 3000); do
        if grep -aq 'root@strata:~#' "$log"; then t=$EPOCHREALTIME; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "systemctl poweroff" >&"$in"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    exec {in}>&-
    [ -n "$t" ] || die "no shell prompt (see $log)"
    echo "$t0 $t" | awk '{ printf "%.1f", $2 - $1 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$1/stats"; }

URL="http://127.0.0.1:$PORT/disk/table"
: >"$W/local.t"; : >"$W/cold.t"; : >"$W/warm.t"; : >"$W/prof.t"; : >"$W/cold.bytes"; : >"$W/warm.bytes"; : >"$W/prof.bytes"
for r in $(seq "$REPS"); do
    cp --sparse=always "$IMG" "$W/local.img"
    boot "$W/local-$r.log" "file=$W/local.img" >>"$W/local.t"; echo >>"$W/local.t"
    rm -rf "$W/cache"
    boot "$W/cold-$r.log" "url=$URL,cache=$W/cache,pubkey=$W/key.pub,overlay=$W/ov-cold-$r" >>"$W/cold.t"; echo >>"$W/cold.t"
    echo "$(stat_of "$W/cache" bytes_fetched) $(stat_of "$W/cache" blocks_fetched) $(stat_of "$W/cache" table_bytes)" >>"$W/cold.bytes"
    boot "$W/warm-$r.log" "url=$URL,cache=$W/cache,pubkey=$W/key.pub,overlay=$W/ov-warm-$r" >>"$W/warm.t"; echo >>"$W/warm.t"
    echo "$(stat_of "$W/cache" bytes_fetched) $(stat_of "$W/cache" blocks_fetched) $(stat_of "$W/cache" table_bytes)" >>"$W/warm.bytes"
    # The cold run's first reads, in order (the warm run rewrote the file
    # with the same blocks), served beside the table.
    cp "$W/cache/profile" "$W/www/disk/profile"
    rm -rf "$W/pcache"
    boot "$W/prof-$r.log" "url=$URL,cache=$W/pcache,pubkey=$W/key.pub,overlay=$W/ov-prof-$r,profile=${URL%/table}/profile" >>"$W/prof.t"; echo >>"$W/prof.t"
    # Bytes over HTTP: the guest's own fetches plus the read-ahead's.
    echo "$(( $(stat_of "$W/pcache" bytes_fetched) + $(stat_of "$W/pcache" prefetch_bytes) )) $(( $(stat_of "$W/pcache" blocks_fetched) + $(stat_of "$W/pcache" prefetched_blocks) )) $(stat_of "$W/pcache" table_bytes)" >>"$W/prof.bytes"
    echo "profile run $r: $(stat_of "$W/pcache" blocks_fetched) blocks fetched by the guest's reads, $(stat_of "$W/pcache" prefetched_blocks) by the read-ahead" >>"$W/prof.detail"
done
row() { # NAME TIMES BYTES
    local t b
    t=$(grep . "$2" | median)
    if [ -n "${3:-}" ]; then
        b=$(awk '{ print $1 + $3, $2 }' "$3" | sort -n | awk '{ v[NR] = $0 } END { split(v[int((NR + 1) / 2)], m, " "); printf "%d bytes (%d blocks + table), %.2f%% of the image", m[1], m[2], 100 * m[1] / '"$IMG_SIZE"' }')
    else
        b="— (local file)"
    fi
    printf '| %s | %s s | %s |\n' "$1" "$t" "$b"
}
{
    echo "bench-stream: $(git -C "$ROOT" rev-parse --short HEAD), $REPS runs each, medians; image $IMG_SIZE bytes"
    cat "$W/pack.txt"
    echo "| drive | time to the shell prompt | fetched over HTTP |"
    echo "| --- | --- | --- |"
    row "local raw image" "$W/local.t"
    row "streamed, cold cache" "$W/cold.t" "$W/cold.bytes"
    row "streamed, warm cache" "$W/warm.t" "$W/warm.bytes"
    row "streamed, cold cache, boot profile" "$W/prof.t" "$W/prof.bytes"
    cat "$W/prof.detail"
} | tee "$OUT/stream.txt"

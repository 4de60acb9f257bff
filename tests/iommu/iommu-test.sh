#!/usr/bin/env bash
# IOMMU test: Linux's own riscv-iommu driver (Debian's 7.x kernel, the
# `newer` guest profile) drives Strata's RISC-V IOMMU on the bare board
# (`strata machine --iommu`), with a virtio-blk disk and virtio-rng behind
# it. Boots, each one machine run:
#
#   strict   iommu.passthrough=0 (strict invalidation): Linux probes the
#            IOMMU (wired interrupts), registers it in sysfs, puts the
#            virtio devices in IOMMU groups, with the domain type its
#            configuration allows (see below); the disk reads back the
#            host's random image (md5), a guest write lands in the host
#            file, /dev/hwrng delivers; the IOMMU ran Linux's commands and
#            saw the devices' DMA (--stats)
#   lazy     the same with iommu.strict=0 (lazy invalidation)
#   fault    --iommu-stray-dma: the disk's device issues one DMA write as a
#            device ID the driver never set up: a fault record (cause 258,
#            DDT entry invalid) that Linux logs with the device ID and the
#            IOVA, an interrupt on the fault-queue vector, and no byte at
#            the address (Strata's report compares RAM before and after)
#   control  the same stray write with the disk's own device ID, which
#            Linux's identity domain lets through: the RAM there changes
#            (so the "unchanged" check above can fail)
#
# (Debian's 6.12 kernel has no driver: with --iommu its virtio devices wait
# for one, deferred, as on any board whose IOMMU the kernel cannot drive.)
#
# Domain type: Debian's riscv64 kernels are built without CONFIG_IOMMU_DMA
# (RISC-V does not select it), and Linux then forces the identity domain
# for kernel DMA whatever iommu.passthrough says (iommu.c). The test reads
# the guest kernel's config and expects "DMA" with IOMMU_DMA and
# "identity" without; translated DMA itself is shown by the unit tests
# (crates/devices/src/iommu/tests.rs), see docs/iommu.md.
#
# Usage: tests/iommu/iommu-test.sh
# Env:   STRATA_BIN (default target/release/strata), TIMEOUT (300 s a boot)
# Logs:  build/test/iommu/<boot>.log
# Last line of output: "<passed> passed, <failed> failed"; exit 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
TIMEOUT=${TIMEOUT:-300}
NEWER="$ROOT/build/guest-newer"
LOGDIR="$ROOT/build/test/iommu"
mkdir -p "$LOGDIR"

# shellcheck source=tests/lib.sh
. "$ROOT/tests/lib.sh"

require_guest "$NEWER" fw_dynamic.bin Image initramfs.cpio kernel-release modules-dir
[ -x "$STRATA_BIN" ] || { fail "strata binary $STRATA_BIN not found (cargo build --release)"; finish; }
CONFIG="$(cat "$NEWER/modules-dir")/config"
[ -s "$CONFIG" ] || { fail "no kernel config at $CONFIG"; finish; }
grep -qx 'CONFIG_RISCV_IOMMU=y' "$CONFIG" || { fail "the newer kernel lacks CONFIG_RISCV_IOMMU=y"; finish; }
if grep -qx 'CONFIG_IOMMU_DMA=y' "$CONFIG"; then WANT_TYPE=DMA; else WANT_TYPE=identity; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-iommu-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
IMG="$WORK/disk.img"
dd if=/dev/urandom of="$IMG" bs=1M count=8 status=none
HOST_MD5=$(md5sum <"$IMG" | cut -d' ' -f1)

# The guest reads the whole disk, writes 64 KiB of random data at 1 MiB
# (printing its md5), reads 64 bytes of /dev/hwrng, and reports what Linux
# made of the IOMMU.
GCMD='echo "DISK-MD5 $(dd if=/dev/vda bs=1M count=8 2>/dev/null | md5sum | cut -d" " -f1)"
head -c 65536 /dev/urandom >/tmp/w
echo "WROTE-MD5 $(md5sum </tmp/w | cut -d" " -f1)"
dd if=/tmp/w of=/dev/vda bs=65536 seek=16 conv=fsync 2>/dev/null
echo "HWRNG-BYTES $(head -c 64 /dev/hwrng | wc -c)"
echo "IOMMU-SYSFS $(ls /sys/class/iommu/ 2>/dev/null)"
for d in /sys/bus/platform/devices/*.virtio_mmio; do
  g=$(readlink $d/iommu_group 2>/dev/null); echo "GROUP $(basename $d) ${g##*/} $(cat $d/iommu_group/type 2>/dev/null)"
done
sleep 1
dmesg | grep -i iommu | sed "s/^/DMESG /"
grep -i iommu /proc/interrupts | sed "s/^/IRQ /"'

# boot NAME GUEST_DIR EXTRA_APPEND [strata flags...]
boot() {
    local name=$1 guest=$2 append=$3
    shift 3
    local log="$LOGDIR/$name.log"
    local cmd=("$STRATA_BIN" machine --bios "$guest/fw_dynamic.bin" --kernel "$guest/Image"
        --initrd "$guest/initramfs.cpio" -m 512M --stats
        --drive "file=$IMG" --device virtio-rng "$@"
        --append "console=ttyS0 panic=-1 $append strata.modules=virtio_mmio,virtio_blk,virtio_rng strata.cmd64=$(printf '%s' "$GCMD" | base64 -w0)")
    { printf '#'; printf ' %q' "${cmd[@]}"; echo; } >"$log"
    set +e
    timeout --kill-after=10 "$TIMEOUT" "${cmd[@]}" </dev/null >>"$log" 2>&1
    local rc=$?
    set -e
    sed -i 's/\r$//' "$log" # the console's CR LF
    if [ $rc -eq 0 ] && grep -q '^STRATA-CMD-EXIT 0' "$log"; then
        pass "$name: booted and ran the guest commands"
    else
        fail "$name: exit $rc (see $log)"
    fi
    LOG=$log
}

field() { grep -a "^$1 " "$LOG" | head -1 | cut -d' ' -f2-; }

# disk_checks NAME: the disk's reads and writes went through intact.
disk_checks() {
    local name=$1 got wrote host
    got=$(field DISK-MD5)
    [ "$got" = "$HOST_MD5" ] && pass "$name: the guest read the host's image (md5 $got)" \
        || fail "$name: guest md5 '$got', host $HOST_MD5"
    wrote=$(field WROTE-MD5)
    host=$(dd if="$IMG" bs=65536 skip=16 count=1 status=none | md5sum | cut -d' ' -f1)
    [ -n "$wrote" ] && [ "$wrote" = "$host" ] && pass "$name: the guest's write is in the host file" \
        || fail "$name: guest wrote md5 '$wrote', host file has $host"
    HOST_MD5=$(md5sum <"$IMG" | cut -d' ' -f1)
    [ "$(field HWRNG-BYTES)" = 64 ] && pass "$name: /dev/hwrng delivered 64 bytes" \
        || fail "$name: /dev/hwrng gave '$(field HWRNG-BYTES)' bytes"
}

# linux_checks NAME POLICY: Linux found the IOMMU and grouped the devices.
linux_checks() {
    local name=$1 policy=$2
    grep -aq 'DMESG .*riscv,iommu 3010000.iommu: using wire-signaled interrupts' "$LOG" \
        && pass "$name: Linux probed the IOMMU with wired interrupts" || fail "$name: no riscv-iommu probe in dmesg"
    [ "$(field IOMMU-SYSFS)" = "riscv-iommu@3010000.iommu" ] && pass "$name: /sys/class/iommu lists it" \
        || fail "$name: /sys/class/iommu: '$(field IOMMU-SYSFS)'"
    grep -aq "DMESG .*DMA domain TLB invalidation policy: $policy mode" "$LOG" \
        && pass "$name: invalidation policy $policy" || fail "$name: policy $policy not reported"
    local groups types
    groups=$(grep -ac '^GROUP .*virtio_mmio [0-9]' "$LOG" || true)
    [ "$groups" = 2 ] && pass "$name: both virtio devices are in IOMMU groups" \
        || fail "$name: $groups virtio devices in IOMMU groups (want 2)"
    types=$(grep -a '^GROUP ' "$LOG" | awk '{print $4}' | sort -u | tr '\n' ' ')
    [ "$types" = "$WANT_TYPE " ] && pass "$name: domain type $WANT_TYPE (the kernel's IOMMU_DMA setting allows no other)" \
        || fail "$name: domain types '$types', want $WANT_TYPE"
    # Linux's set-up commands ran (IODIR.INVAL_DDT, IOTINVAL, IOFENCE.C)
    # and both devices' DMA went through the IOMMU (device IDs 1 and 2).
    local cmds
    cmds=$(sed -n 's/^strata: iommu: \([0-9]*\) commands.*/\1/p' "$LOG")
    [ "${cmds:-0}" -ge 3 ] && pass "$name: the IOMMU ran $cmds commands" || fail "$name: '$cmds' commands"
    for did in 1 2; do
        grep -aqE "^strata: iommu device $did: direct [1-9]" "$LOG" \
            && pass "$name: device $did's DMA went through the IOMMU" || fail "$name: no DMA of device $did seen"
    done
}

# ---- strict ----
boot strict "$NEWER" "iommu.passthrough=0 iommu.strict=1" --iommu
disk_checks strict
linux_checks strict strict
grep -aq 'IOMMU-SYSFS' "$LOG" || fail "strict: guest report missing"

# ---- lazy ----
boot lazy "$NEWER" "iommu.passthrough=0 iommu.strict=0" --iommu
disk_checks lazy
linux_checks lazy lazy

# ---- fault: a DMA write as device 0x63, which has no device context ----
STRAY=0x84000000
boot fault "$NEWER" "iommu.passthrough=0" --iommu --iommu-stray-dma "0:20:$STRAY:99"
disk_checks fault
grep -aqE "DMESG .*riscv,iommu 3010000.iommu: Fault 258 devid: 0x63 iotval: ${STRAY#0x} " "$LOG" \
    && pass "fault: Linux logged the fault record (cause 258, device 0x63, the IOVA)" \
    || fail "fault: no fault record in the guest's log"
# The fault queue's vector is the IOMMU's second interrupt (icvec.FIV = 1):
# PLIC source 37.
fq_irqs=$(grep -a '^IRQ .* 37 .*3010000.iommu' "$LOG" | awk '{print $3}')
[ "${fq_irqs:-0}" -ge 1 ] && pass "fault: the fault-queue interrupt arrived ($fq_irqs)" \
    || fail "fault: fault-queue interrupts '$fq_irqs'"
grep -aq "^strata: iommu stray write to $STRAY as device 99: faulted, RAM at that address unchanged" "$LOG" \
    && pass "fault: the write faulted and no byte reached memory" || fail "fault: stray write outcome wrong"
grep -aq '^strata: iommu: .* 1 fault records' "$LOG" && pass "fault: one fault record" \
    || fail "fault: fault record count"

# ---- control: the same write as the disk itself, through its identity domain ----
boot control "$NEWER" "iommu.passthrough=0" --iommu --iommu-stray-dma "0:20:$STRAY"
if [ "$WANT_TYPE" = identity ]; then
    grep -aq "^strata: iommu stray write to $STRAY as device 1: translated, RAM at that address changed" "$LOG" \
        && pass "control: through an identity domain the write lands (the check above can fail)" \
        || fail "control: stray write outcome wrong"
else
    grep -aq "^strata: iommu stray write to $STRAY as device 1: faulted, RAM at that address unchanged" "$LOG" \
        && pass "control: a translated domain refuses the unmapped IOVA" || fail "control: stray write outcome wrong"
fi

finish

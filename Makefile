# Strata build/test entry points.
#   make setup        host tools + guest kernel/busybox (cached) + initramfs
#   make build        cargo build --release
#   make check        cargo fmt --check, clippy (-D warnings), rustdoc (-D warnings),
#                     no architecture or board constant defined twice
#   make test         check + setup + build + every test: cargo tests, boot, virtio,
#                     conformance, difftest (vs QEMU), difftest-jit (JIT vs
#                     interpreter), KVM and a nested Linux under KVM on Strata,
#                     strata run (hypervisor), a Debian systemd root disk
#   make demo         boot the guest on Strata with an interactive shell
#   make qemu-demo    the same guest under QEMU (reference)
#   make boot-test-qemu   the boot test against QEMU
#   make boot-test-newer  the boot test with Debian's 7.x kernel (make guest-newer)
#   make iommu-test   --iommu: Linux 7.x's riscv-iommu driver on Strata's IOMMU, disk and
#                     rng behind it, strict and lazy, a stray DMA's fault record (tests/iommu)
#   make boot-test-max    the boot test with --cpu max (/proc/cpuinfo lists its extensions)
#   make bench        benchmarks against QEMU: boot (machine and hypervisor),
#                     virtio-blk, invalidation policies, Linux KVM, several VMs
#                     sharing harts, the control API's cost, a real-time guest's
#                     latency beside Linux per placement (scripts/bench-*.sh)
#   make virtio-test  tests/virtio on Strata (all virtio devices, one boot; root)
#   make disk-test    tests/disks: image locks, clobbered paths, a full host disk (root)
#   make conformance  tests/conformance/run.sh
#   make kvm-test     Linux KVM test on Strata (tests/kvm); kvm-test-qemu: on QEMU
#   make kvm-nested   nested Linux guest under KVM on Strata; kvm-nested-qemu: on QEMU;
#                     kvm-nested-preempt: with the vCPU thread preempted every 20 us
#   make hyp-test     strata run: VMs under Strata's hypervisor (tests/hyp)
#   make rt-test      a real-time guest beside Linux: --placement share, migrate,
#                     dedicated; migration stress; bad placements (tests/rt)
#   make gdb-test     the gdb stub with gdb-multiarch against the Debian kernel (tests/gdb)
#   make rootfs       Debian trixie + systemd ext4 image, cached in /var/cache/strata
#                     (scripts/build-rootfs.sh; minutes the first time, then instant)
#   make stream-test  that image packed, served by nginx on loopback, booted from a
#                     streamed drive; failures of the server and the data (tests/stream)
#   make snapshot-test snapshots of the bare board: restored runs print what the
#                     uninterrupted run printed, byte for byte; bad files refused (tests/snapshot)
#   make tpm-test     --tpm swtpm: measured boot, guest PCRs against strata measure,
#                     swtpm killed mid-run, swtpm missing (tests/tpm)
#   make attest-vm-test evidence for VMs under strata run: signed by the hypervisor,
#                     checked by strata attest verify-vm, tampering rejected (tests/attest)
#   make systemd-test that image boots to systemd "running" on strata machine and
#                     strata run (tests/systemd); systemd-test-qemu: on QEMU
#   make api-test     the control API (--api-sock) with curl on both machines (tests/api)
#   make monitor-test introspection, the integrity monitor, device monitors, faults (tests/monitor)
#   make clean        remove build/ and cargo outputs; distclean also drops .cache/

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO       ?= cargo
TARGET_DIR  ?= $(or $(CARGO_TARGET_DIR),target)
STRATA_BIN  ?= $(TARGET_DIR)/release/strata
QEMU        ?= qemu-system-riscv64
SMP         ?= 2
MEM         ?= 512M
GUEST       := build/guest
APPEND      ?= console=ttyS0 earlycon
export STRATA_BIN

.PHONY: all check setup setup-host guest initramfs build demo test cargo-test boot-test \
        boot-test-qemu boot-test-newer iommu-test boot-test-max guest-newer conformance kvm-test kvm-test-qemu kvm-nested kvm-nested-qemu kvm-nested-preempt hyp-test hyp-shadow-test \
        bench qemu-demo \
        rootfs systemd-test systemd-test-qemu smp-test rt-test loom models \
        clean distclean

all: build

setup: setup-host guest

setup-host:
	@scripts/setup-host.sh

# Cached after the first run: works offline, re-packs the initramfs (~1 s).
guest: setup-host
	@scripts/fetch-guest.sh

initramfs:
	@scripts/mkinitramfs.sh

# The second guest profile: Debian's newer (7.x) kernel, for what 6.12 lacks
# (the RISC-V IOMMU driver), in build/guest-newer (cached like the first).
guest-newer: guest
	@GUEST_PROFILE=newer scripts/fetch-guest.sh

build: setup-host
	$(CARGO) build --release

demo: setup build
	$(STRATA_BIN) machine --bios $(GUEST)/fw_dynamic.bin --kernel $(GUEST)/Image \
	    --initrd $(GUEST)/initramfs.cpio --append "$(APPEND)" -m $(MEM) --smp $(SMP)

qemu-demo: setup
	@echo "QEMU: Ctrl-A X quits; 'exit' in the guest shell powers off"
	$(QEMU) -M virt -smp $(SMP) -m $(MEM) -bios $(GUEST)/fw_dynamic.bin \
	    -kernel $(GUEST)/Image -initrd $(GUEST)/initramfs.cpio \
	    -append "$(APPEND)" -nographic

# The quality gate, first in make test: format, lints (warnings denied, every
# unsafe block with a SAFETY comment), rustdoc (warnings denied), and no CSR
# number, cause code, PTE bit or board address defined outside its home.
check: setup-host
	scripts/check-duplicates.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --release

test: check setup build
	$(CARGO) test --workspace --release
	tests/boot/boot-test.sh --machine strata
	$(MAKE) --no-print-directory boot-test-newer
	$(MAKE) --no-print-directory iommu-test
	$(MAKE) --no-print-directory boot-test-max
	$(MAKE) --no-print-directory virtio-test
	$(MAKE) --no-print-directory disk-test
	$(MAKE) --no-print-directory conformance
	$(MAKE) --no-print-directory difftest
	$(MAKE) --no-print-directory difftest-jit
	tests/kvm/kvm-test.sh --machine strata
	tests/kvm/nested-test.sh --machine strata
	$(MAKE) --no-print-directory kvm-nested-preempt
	tests/hyp/run-test.sh
	tests/hyp/run-test.sh --threads 1
	$(MAKE) --no-print-directory gdb-test
	tests/hyp/run-test.sh --paging shadow
	$(MAKE) --no-print-directory smp-test
	$(MAKE) --no-print-directory rt-test
	$(MAKE) --no-print-directory loom
	$(MAKE) --no-print-directory stream-test
	$(MAKE) --no-print-directory snapshot-test
	$(MAKE) --no-print-directory tpm-test
	$(MAKE) --no-print-directory attest-vm-test
	$(MAKE) --no-print-directory systemd-test
	$(MAKE) --no-print-directory api-test
	$(MAKE) --no-print-directory monitor-test

cargo-test:
	$(CARGO) test --workspace --release

boot-test: setup build
	tests/boot/boot-test.sh --machine strata

# Debian's newer (7.x) kernel, the second guest profile, on 2 harts.
boot-test-newer: guest-newer build
	GUEST_DIR=build/guest-newer SMP_LIST=2 tests/boot/boot-test.sh --machine strata

# The RISC-V IOMMU driven by Linux's own driver (Debian's 7.x kernel).
iommu-test: guest-newer build
	tests/iommu/iommu-test.sh

boot-test-qemu: setup
	tests/boot/boot-test.sh --machine qemu

# --cpu max on 1 hart: Linux boots with Zicbo* (CBO.ZERO clear_page) and
# Svinval, and its /proc/cpuinfo lists them (docs/isa.md).
boot-test-max: setup build
	STRATA_CPU=max EXPECT_ISA="zba zbb zbc zbs zicbom zicboz zihintntl zimop zawrs zfhmin zcb zcmop sstc svinval svnapot svpbmt" SMP_LIST=1 tests/boot/boot-test.sh --machine strata

# Every tests/virtio check on Strata; the last line is "N passed, M failed".
.PHONY: virtio-test
virtio-test: setup build
	tests/virtio/virtio-test.sh

# Image locking, clobbered host paths, a full host disk (root: a tmpfs).
.PHONY: disk-test
disk-test: setup build
	tests/disks/disk-test.sh

conformance:
	@[ -x tests/conformance/run.sh ] || { echo "make conformance: tests/conformance/run.sh is missing or not executable" >&2; exit 1; }
	tests/conformance/run.sh

kvm-test: setup build
	tests/kvm/kvm-test.sh --machine strata

kvm-test-qemu: setup
	tests/kvm/kvm-test.sh --machine qemu

kvm-nested: setup build
	tests/kvm/nested-test.sh --machine strata

kvm-nested-qemu: setup
	tests/kvm/nested-test.sh --machine qemu

# The nested guest with its vCPU thread preempted every 20 us, on an outer
# machine without Sstc (kvm.ko's Sstc timer race: tests/kvm/README.md).
kvm-nested-preempt: setup build
	tests/kvm/nested-test.sh --machine strata --preempt 20000 --timeout 900

# Parallel harts: litmus tests on 2-8 harts and Debian on 1, 2, 4, 8.
smp-test: setup build
	tests/smp/smp-test.sh

# Issue 22: the real-time guest beside Linux under each placement, a
# migration stress run, bad placements refused (tests/rt; docs/realtime.md).
rt-test: setup build
	tests/rt/rt-test.sh

# The hypervisor's cross-hart shootdown protocol, model-checked with loom
# (every interleaving up to three preemptions; its own target directory).
loom:
	RUSTFLAGS="--cfg loom" $(CARGO) test -p strata-hypervisor --release --target-dir target/loom shootdown

# Memory-virtualization protocols (invalidation by physical address across
# harts, shadow-table updates) explored exhaustively with stateright, each
# with its mutations; prints states explored and counterexamples. Also part
# of the workspace tests in `make test`.
models:
	$(CARGO) test -p strata-models --release -- --nocapture --test-threads 1

hyp-test: setup build
	tests/hyp/run-test.sh
	tests/hyp/run-test.sh --threads 1

# The gdb stub (docs/gdb.md): gdb-multiarch in batch mode against the guest kernel.
.PHONY: gdb-test
gdb-test: setup build
	tests/gdb/gdb-test.sh
# The same VM tests with every VM shadow-paged (strata run --paging shadow).
hyp-shadow-test: setup build
	tests/hyp/run-test.sh --paging shadow

# Cached outside the checkout (/var/cache/strata, keyed on its inputs): built
# once per machine, reused by every clone.
rootfs: setup
	@scripts/build-rootfs.sh >/dev/null

# Both runs even if the first fails; the target fails if either does.
systemd-test: setup build rootfs
	@rc=0; tests/systemd/systemd-test.sh --machine strata || rc=1; \
	tests/systemd/systemd-test.sh --machine strata-run || rc=1; exit $$rc

systemd-test-qemu: setup rootfs
	tests/systemd/systemd-test.sh --machine qemu

# Streamed drives (docs/stream.md): the Debian image over nginx on loopback.
.PHONY: stream-test
stream-test: setup build rootfs
	tests/stream/stream-test.sh

# The control API (docs/api.md) with curl against a booting Debian guest.
.PHONY: api-test
api-test: setup build
	tests/api/api-test.sh

# Monitors (docs/monitor.md): strata inspect against the guest's ps, the
# integrity monitor with and without retry, a simulated rootkit, device
# monitors and fault injection. The real System.map comes from
# linux-image-*-dbg (scripts/fetch-symbols.sh, cached in build/guest).
.PHONY: symbols monitor-test
symbols: setup
	scripts/fetch-symbols.sh
monitor-test: symbols build
	tests/monitor/monitor-test.sh

# Snapshots (docs/snapshot.md): determinism at two points, refusals, triggers.
.PHONY: snapshot-test
snapshot-test: setup build
	tests/snapshot/snapshot-test.sh

# The TPM (swtpm) and measured boot (docs/attestation.md).
.PHONY: tpm-test
tpm-test: setup build
	tests/tpm/tpm-test.sh

.PHONY: attest-vm-test
attest-vm-test: setup build
	tests/attest/vm-evidence-test.sh

# Strata against QEMU, side by side; figures go to docs/benchmarks.md.
bench: setup build
	scripts/bench-boot.sh
	scripts/bench-virtio.sh
	scripts/bench-iommu.sh
	scripts/bench-invalidation.sh
	scripts/bench-kvm.sh
	scripts/bench-multivm.sh
	scripts/bench-smp.sh
	scripts/bench-rt.sh
	scripts/bench-stream.sh
	scripts/bench-api.sh
	scripts/bench-snapshot.sh
	scripts/bench-tpm.sh
	scripts/bench-paging.sh
	scripts/bench-sstc.sh
	scripts/bench-monitor.sh
	scripts/bench-gdb.sh

clean:
	rm -rf build
	$(CARGO) clean

distclean: clean
	rm -rf .cache

# Random differential testing against QEMU (crates/difftest, tests/difftest).
#   make fuzz-diff SEED=123 COUNT=1000000   one seeded run (add REDUCE=1 to shrink failures)
#   make difftest                           regression reproducers + a fixed-seed run
#   make difftest-jit                       the same programs, Strata's JIT against its interpreter
DIFFTEST_BIN  ?= $(TARGET_DIR)/release/strata-difftest
SEED          ?= $(shell date +%s)
COUNT         ?= 100000
DIFFTEST_SEED ?= 20240601
DIFFTEST_COUNT ?= 500000

.PHONY: fuzz-diff difftest difftest-jit
fuzz-diff: build
	$(DIFFTEST_BIN) run --seed $(SEED) --count $(COUNT) $(if $(REDUCE),--reduce)

difftest: build
	$(if $(wildcard tests/difftest/regress/*.S),$(DIFFTEST_BIN) check $(sort $(wildcard tests/difftest/regress/*.S)))
	$(DIFFTEST_BIN) run --seed $(DIFFTEST_SEED) --count $(DIFFTEST_COUNT)

# No QEMU involved: Strata with --no-jit is the oracle, so more programs fit.
difftest-jit: build
	$(if $(wildcard tests/difftest/regress/*.S),$(DIFFTEST_BIN) check --oracle interp $(sort $(wildcard tests/difftest/regress/*.S)))
	$(DIFFTEST_BIN) run --oracle interp --seed $(DIFFTEST_SEED) --count $$(( $(DIFFTEST_COUNT) * 5 ))

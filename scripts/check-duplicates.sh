#!/usr/bin/env bash
# Issue 11: every CSR number, CSR field, cause code, interrupt bit, PTE bit,
# instruction encoding and SBI id has one home, crates/arch (strata-arch);
# every board address one home, the board's layout
# (crates/devices/src/board.rs). This check fails when a constant is defined
# again elsewhere:
#   - a `const` whose name (less a register prefix such as SSTATUS_ or
#     CAUSE_) is a name strata-arch defines (PTE_V: the PTE's one-letter
#     bits count too), or an instruction's name from
#     the encoding table, and whose value is written out as a literal; an
#     interrupt spelled by level and kind (IRQ_M_TIMER, S_EXT) counts as
#     strata-arch's name for it (MTIP, SEIP);
#   - a `u32` const named after an instruction (ADDI_A0, J_BACK, CSRW_MEPC)
#     whose value is a whole instruction word written out in hex: encode it
#     with strata_arch::isa::encode instead;
#   - a `const` named like a board address (RAM, *_BASE, UART, PLIC, IOMMU,
#     ...) whose literal value is one of the addresses in the board's layout
#     (read from board.rs, so a device added there is covered at once).
# Importing (`use strata_arch::...`, `pub use`) and deriving (`= irq::SSIP
# as u64`) are fine. Before it looks at the tree, the check runs itself on a
# fixture of restatements it must find and definitions it must let pass, so
# it cannot silently stop finding anything. Run by `make check`; the last
# line is "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

BOARD=crates/devices/src/board.rs

# Files allowed to restate: the board's home itself, and unit tests that
# pick windows of their own.
ALLOW=(
    "$BOARD"                          # the board's home
    # Device-model unit tests that pick their own guest-RAM window for the
    # device under test, with no board around the device.
    crates/devices/src/virtio/queue.rs
    crates/devices/src/virtio/vsock.rs
    crates/devices/src/virtio/hostile.rs
    crates/devices/fuzz/fuzz_targets/virtqueue.rs
    # The hart's own tests, likewise: a RAM window and a device window of
    # their own, with no board around the hart.
    crates/hart/src/jit/tests.rs
    crates/hart/src/zawrs_tests.rs
    crates/hart/tests/common/mod.rs
)

insn_names=$(
    # The rows of the encoding table (not Zbb's MIN and MAX, which every
    # limit in the tree is also called).
    grep -hoE '^\s+[A-Z][A-Z0-9_]+\s+= "[01. ]+"' crates/arch/src/isa.rs | awk '{print $1}' \
        | grep -vxE 'MINU?|MAXU?' | sort -u
)
arch_names=$(
    {
        # (Not sbi.rs: its names, BASE, TIME, FAILED, are too common to
        # tell apart by name; the SBI's one restatement is allow-listed.)
        grep -hoE '^\s*pub const [A-Z][A-Z0-9_]{2,}' crates/arch/src/{cause,csr,irq,isa,pte,tinst}.rs | awk '{print $3}'
        echo "$insn_names"
    } | sort -u
)
# Names an instruction word goes by in a test: the table's, and the
# assembler's pseudo-instructions.
insn_words=$( { echo "$insn_names"; printf '%s\n' J JR CSRR CSRW CSRS CSRC CSRWI CSRSI CSRCI LI LA MV NOP RET CALL TAIL BEQZ BNEZ; } | sort -u)

# The board's addresses, from its layout: every `base: 0x…` and `ram_base: 0x…`.
norm() { tr -d '_ ' <<<"$1" | tr 'A-F' 'a-f' | sed -E 's/^0x0+/0x/'; }
board_addrs=$(grep -oE '\b(ram_)?base: 0x[0-9a-fA-F_]+' "$BOARD" | sed -E 's/.*: //' | while read -r v; do norm "$v"; done | sort -u)
[[ $(wc -l <<<"$board_addrs") -ge 8 ]] || { echo "check-duplicates: found only '$board_addrs' as board addresses in $BOARD"; exit 1; }
board_values="^($(paste -sd'|' <<<"$board_addrs"))$"

# check_file FILE: one line "FILE:LINE: why" per restatement in FILE.
check_file() {
    local file=$1 line name value base irq norm_value
    # name <TAB> value of each `const NAME: type = value;` on one line.
    while IFS=$'\t' read -r line name type value; do
        # Only literal values count (digits, operators, parentheses).
        [[ $value =~ ^[-0-9a-fA-Fx_\ \(\)\|\&\<\>\!\+\*]+$ ]] || continue
        [[ $value =~ [0-9] ]] || continue
        base=$(sed -E 's/^(SSTATUS|MSTATUS|HSTATUS|VSSTATUS|CAUSE|IRQ|PTE|CSR|SATP|HGATP|HVIP|HIP|MIP|SBI)_//' <<<"$name")
        # An interrupt by level and kind: M_SOFT is MSIP, S_EXT is SEIP.
        irq=$(sed -E 's/^(M|S|VS)_(SOFT|SOFTWARE|SW)$/\1SIP/; s/^(M|S|VS)_(TIMER|TIME)$/\1TIP/; s/^(M|S|VS)_(EXT|EXTERNAL)$/\1EIP/' <<<"$base")
        if grep -qxF -- "$base" <<<"$arch_names" || grep -qxF -- "$irq" <<<"$arch_names" \
            || [[ $name =~ ^PTE_[VRWXUGADN]$ ]]; then
            [[ $irq == "$base" ]] || base="$base ($irq)"
            echo "$file:$line: $name = $value restates strata-arch's $base: import it from crates/arch"
            continue
        fi
        norm_value=$(norm "$value")
        if [[ $type == u32 && $(tr -d '_ ' <<<"$value") =~ ^0x[0-9a-fA-F]{8}$ ]] && grep -qxF -- "${name%%_*}" <<<"$insn_words"; then
            echo "$file:$line: $name = $value is an instruction word written out: encode it with strata_arch::isa::encode"
            continue
        fi
        if [[ $name =~ (^|_)(RAM|BASE|UART|PLIC|CLINT|ACLINT|RTC|SYSCON|VIRTIO|MMIO|TPM|IOMMU)[0-9]*(_|$) && $norm_value =~ $board_values ]]; then
            echo "$file:$line: $name = $value restates a board address: import it from the board's layout ($BOARD)"
        fi
    done < <(grep -nE '^\s*(pub(\([a-z]+\))?\s+)?const\s+[A-Z][A-Z0-9_]*\s*:\s*[a-z0-9]+\s*=' "$file" \
        | sed -E 's/^([0-9]+):\s*(pub(\([a-z]+\))?\s+)?const\s+([A-Z][A-Z0-9_]*)\s*:\s*([a-z0-9]+)\s*=\s*(.*);.*$/\1\t\4\t\5\t\6/')
}

# The check on its own fixture: each line ending in `// found` must be
# reported, no other line may be.
self_test() {
    local fixture want got
    fixture=$(mktemp --suffix=.rs)
    cat >"$fixture" <<'RS'
use strata_arch::irq::{MTIP, SEIP};
const IRQ_M_SOFT: u32 = 3; // found
const IRQ_S_EXT: u32 = 9; // found
pub const SSTATUS_SPP: u64 = 1 << 8; // found
pub(crate) const CAUSE_LOAD_ACCESS: u64 = 5; // found
const MTVEC: u16 = 0x305; // found
const PTE_V: u64 = 1; // found
const IOMMU_BASE: u64 = 0x0301_0000; // found
pub const RAM_BASE: u64 = 0x8000_0000; // found
const UART0: u64 = 0x1000_0000; // found
const ADDI_A0: u32 = 0x0015_0513; // found
const J_BACK4: u32 = 0xffdf_f06f; // found
const CSRW_MEPC_T1: u32 = 0x3413_1073; // found
const SEI: u64 = irq::SEIP as u64;
const FENCE_W_IP: u64 = 1 << 11;
const PHANDLE_PLIC: u32 = 1;
const TIMEOUT_MS: u64 = 0x8000_0000;
const MAGIC: u32 = 0x7472_6976;
const HOLE: u64 = 0x4000_0000;
RS
    want=$(grep -n '// found$' "$fixture" | cut -d: -f1 | paste -sd' ')
    got=$(check_file "$fixture" | cut -d: -f2 | paste -sd' ')
    rm -f "$fixture"
    if [[ $got != "$want" ]]; then
        echo "check-duplicates: self-test: reported lines '$got' of its fixture, want '$want'"
        return 1
    fi
}

self_test || { echo "0 passed, 1 failed"; exit 1; }

pass=0
fail=0
while IFS= read -r file; do
    for a in "${ALLOW[@]}"; do [[ $file == "$a" ]] && continue 2; done
    found=$(check_file "$file")
    if [[ -n $found ]]; then
        echo "$found" | sed 's/^/check-duplicates: /'
        fail=$((fail + $(wc -l <<<"$found")))
    fi
    pass=$((pass + 1))
done < <(git ls-files 'crates/*.rs' | grep -v '^crates/arch/')

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]

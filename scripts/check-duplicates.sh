#!/usr/bin/env bash
# Issue 11: every CSR number, CSR field, cause code, interrupt bit, PTE bit,
# instruction encoding and SBI id has one home, crates/arch (strata-arch);
# every board address one home, the board's layout (today
# crates/platform/src/{fdt,machine,virtio}.rs; crates/devices/src/board.rs once
# it lands). This check fails when a constant is defined again elsewhere:
#   - a `const` whose name (less a register prefix such as SSTATUS_ or
#     CAUSE_) is a name strata-arch defines, or an instruction's name from
#     the encoding table, and whose value is written out as a literal;
#   - a `const` named like a board address (RAM, *_BASE, UART, PLIC, ...)
#     whose literal value is one of the board's addresses.
# Importing (`use strata_arch::...`, `pub use`) and deriving (`= irq::SSIP
# as u64`) are fine. Run by `make check`; the last line is "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

# Files allowed to restate: the board's home itself, and unit tests that
# pick windows of their own.
ALLOW=(
    crates/devices/src/board.rs       # the board's home
    # Device-model unit tests that pick their own guest-RAM window for the
    # device under test; to import the RAM base from devices::board once it
    # lands (devices cannot see the platform's).
    crates/devices/src/virtio/queue.rs
    crates/devices/src/virtio/vsock.rs
    crates/devices/src/virtio/hostile.rs
    crates/devices/fuzz/fuzz_targets/virtqueue.rs
    # The hart's own tests, likewise: a RAM window and a device window of
    # their own, with no board around the hart.
    crates/hart/src/jit/tests.rs
    crates/hart/tests/common/mod.rs
)

arch_names=$(
    {
        # (Not sbi.rs: its names, BASE, TIME, FAILED, are too common to
        # tell apart by name; the SBI's one restatement is allow-listed.)
        grep -hoE '^\s*pub const [A-Z][A-Z0-9_]{2,}' crates/arch/src/{cause,csr,irq,isa,pte,tinst}.rs | awk '{print $3}'
        # Instruction names: the rows of the encoding table (not Zbb's MIN
        # and MAX, which every limit in the tree is also called).
        grep -hoE '^\s+[A-Z][A-Z0-9_]+\s+= "[01. ]+"' crates/arch/src/isa.rs | awk '{print $1}' \
            | grep -vxE 'MINU?|MAXU?'
    } | sort -u
)
board_values='^0x(80000000|10000000|c000000|2000000|100000|101000|10001000)$'

pass=0
fail=0
report() { echo "check-duplicates: $1"; fail=$((fail + 1)); }

while IFS= read -r file; do
    for a in "${ALLOW[@]}"; do [[ $file == "$a" ]] && continue 2; done
    # name <TAB> value of each `const NAME: type = value;` on one line.
    while IFS=$'\t' read -r line name value; do
        # Only literal values count (digits, operators, parentheses).
        [[ $value =~ ^[-0-9a-fA-Fx_\ \(\)\|\&\<\>\!\+\*]+$ ]] || continue
        [[ $value =~ [0-9] ]] || continue
        base=$(sed -E 's/^(SSTATUS|MSTATUS|HSTATUS|VSSTATUS|CAUSE|IRQ|PTE|CSR|SATP|HGATP|HVIP|HIP|MIP|SBI)_//' <<<"$name")
        if grep -qxF -- "$base" <<<"$arch_names"; then
            report "$file:$line: $name = $value restates strata-arch's $base: import it from crates/arch"
            continue
        fi
        norm=$(tr -d '_ ' <<<"$value" | tr 'A-F' 'a-f' | sed -E 's/^0x0+/0x/')
        if [[ $name =~ (^|_)(RAM|BASE|UART|PLIC|CLINT|ACLINT|RTC|SYSCON|VIRTIO|MMIO)(_|$) && $norm =~ $board_values ]]; then
            report "$file:$line: $name = $value restates a board address: import it from the board's layout"
        fi
    done < <(grep -nE '^\s*(pub(\([a-z]+\))?\s+)?const\s+[A-Z][A-Z0-9_]*\s*:\s*[a-z0-9]+\s*=' "$file" \
        | sed -E 's/^([0-9]+):\s*(pub(\([a-z]+\))?\s+)?const\s+([A-Z][A-Z0-9_]*)\s*:\s*[a-z0-9]+\s*=\s*(.*);.*$/\1\t\4\t\5/')
    pass=$((pass + 1))
done < <(git ls-files 'crates/*.rs' | grep -v '^crates/arch/')

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]

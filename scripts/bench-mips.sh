#!/usr/bin/env bash
# Guest MIPS on small bare-metal loops (scripts/bench/*.S), JIT on and off,
# read from `strata machine --stats`. Prints one line per program and mode.
#
# Env: STRATA_BIN (default target/release/strata), CC_RISCV
#      (riscv64-unknown-elf-gcc), RUNS (default 3; the median is printed).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
CC=${CC_RISCV:-riscv64-unknown-elf-gcc}
RUNS=${RUNS:-3}
OUT="$ROOT/build/bench"
die() { echo "bench-mips: ERROR: $*" >&2; exit 1; }
command -v "$CC" >/dev/null || die "$CC not found (run scripts/setup-host.sh)"
[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
mkdir -p "$OUT"
for src in "$ROOT"/scripts/bench/*.S; do
    name=$(basename "${src%.S}")
    elf="$OUT/$name.elf"
    "$CC" -march=rv64gc -mabi=lp64d -nostdlib -nostartfiles -static -T "$ROOT/scripts/bench/link.ld" -o "$elf" "$src"
    for mode in jit no-jit; do
        flag=(); [ "$mode" = no-jit ] && flag=(--no-jit)
        mips=()
        for _ in $(seq "$RUNS"); do
            line=$("$STRATA_BIN" machine --clock virtual --bios none --kernel "$elf" -m 64M --stats "${flag[@]}" 2>&1 >/dev/null \
                   | grep -o '[0-9.]* MIPS') || die "$name ($mode) did not run"
            mips+=("${line% MIPS}")
        done
        med=$(printf '%s\n' "${mips[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
        printf '%-10s %-7s %8.1f MIPS (median of %d: %s)\n' "$name" "$mode" "$med" "$RUNS" "${mips[*]}"
    done
done

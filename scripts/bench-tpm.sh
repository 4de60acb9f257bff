#!/usr/bin/env bash
# TPM benchmark (docs/attestation.md): the default guest booted to power-off
# (guest command `true`) on `strata machine` without a TPM and with
# `--tpm swtpm` (swtpm started, TPM2_Startup, five images hashed and 13 PCR
# extends before the first instruction, swtpm stopped at exit), with
# hyperfine; and `strata measure` alone (hashing the same files offline).
# Prints each median and the TPM's added time.
#
# Env: RUNS (hyperfine runs, default 5), WARMUP (default 1),
#      STRATA_BIN (default target/release/strata)
# Output: build/bench/tpm-*.json (hyperfine --export-json), build/bench/tpm-summary.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
STRATA_BIN=${STRATA_BIN:-$ROOT/target/release/strata}
GUEST="$ROOT/build/guest"
OUT="$ROOT/build/bench"

die() { echo "bench-tpm: ERROR: $*" >&2; exit 1; }

for t in hyperfine jq swtpm; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run scripts/setup-host.sh)"
done
for f in fw_dynamic.bin Image initramfs.cpio; do
    [ -s "$GUEST/$f" ] || die "missing $GUEST/$f (run: make setup)"
done
[ -x "$STRATA_BIN" ] || die "strata binary $STRATA_BIN not found: run 'make build' first"
mkdir -p "$OUT"

q() { printf '%q ' "$@"; }
IMAGES=(--bios "$GUEST/fw_dynamic.bin" --kernel "$GUEST/Image" --initrd "$GUEST/initramfs.cpio"
        --append 'console=ttyS0 panic=-1 strata.cmd=true' -m 512M)
declare -A CMD=(
    [no-tpm]="$(q "$STRATA_BIN" machine "${IMAGES[@]}")"
    [tpm]="$(q "$STRATA_BIN" machine "${IMAGES[@]}" --tpm swtpm)"
    [measure]="$(q "$STRATA_BIN" measure "${IMAGES[@]}")"
)
declare -A MEDIAN
for m in no-tpm tpm measure; do
    echo "== $m ($RUNS runs): ${CMD[$m]}"
    hyperfine --runs "$RUNS" --warmup "$WARMUP" --shell bash --output null \
        --command-name "$m" --export-json "$OUT/tpm-$m.json" "${CMD[$m]}" || die "$m failed (non-zero exit)"
    MEDIAN[$m]=$(jq -r '.results[0].median' "$OUT/tpm-$m.json")
done
{
    echo "strata machine boot to power-off, median of $RUNS runs:"
    printf '  %-8s %8.3f s\n' "no-tpm" "${MEDIAN[no-tpm]}" "tpm" "${MEDIAN[tpm]}"
    awk -v a="${MEDIAN[no-tpm]}" -v b="${MEDIAN[tpm]}" 'BEGIN { printf "  --tpm swtpm adds %.3f s (ratio %.2f)\n", b - a, b / a }'
    printf '  strata measure alone: %.3f s\n' "${MEDIAN[measure]}"
} | tee "$OUT/tpm-summary.txt"

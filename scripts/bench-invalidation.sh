#!/usr/bin/env bash
# Invalidation benchmark (docs/hypervisor.md): VM A's pages move to other
# machine pages while VM B runs, under each policy (pa, vmid, all); hyperfine
# times each, and one more run prints the counters: translations dropped,
# dropped as collateral, and collateral misses in A and in B.
#
# Env: ROUNDS (2000 scheduling rounds), MOVES (1 page moved per round),
#      RUNS (5), WARMUP (1)
# Output: build/bench/invalidation.json, build/bench/invalidation-summary.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-2000}
MOVES=${MOVES:-1}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
OUT="$ROOT/build/bench"
BIN="$ROOT/target/release/examples/invalidation"
die() { echo "bench-invalidation: ERROR: $*" >&2; exit 1; }
command -v hyperfine >/dev/null 2>&1 || die "hyperfine not found (run scripts/setup-host.sh)"
command -v jq >/dev/null 2>&1 || die "jq not found (run scripts/setup-host.sh)"
(cd "$ROOT" && cargo build --release -q -p strata-platform --example invalidation) || die "cannot build the benchmark"
mkdir -p "$OUT"

echo "== invalidation policies: $ROUNDS rounds, $MOVES of A's pages moved per round, $RUNS runs"
hyperfine --runs "$RUNS" --warmup "$WARMUP" --output null --export-json "$OUT/invalidation.json" \
    -n pa "$BIN pa $ROUNDS $MOVES" -n vmid "$BIN vmid $ROUNDS $MOVES" -n all "$BIN all $ROUNDS $MOVES" \
    || die "a benchmark run failed"
{
    echo "invalidation policies ($ROUNDS rounds, $MOVES page(s) of VM A moved per round; VM B only runs):"
    printf '  %-5s %9s %9s %12s %13s %13s\n' policy median dropped collateral "coll.miss A" "coll.miss B"
    for p in pa vmid all; do
        med=$(jq -r --arg p "$p" '.results[] | select(.command == $p) | .median' "$OUT/invalidation.json")
        line=$("$BIN" "$p" "$ROUNDS" "$MOVES")
        get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
        printf '  %-5s %8.3fs %9s %12s %13s %13s\n' "$p" "$med" "$(get dropped)" "$(get collateral_dropped)" \
            "$(get collateral_misses_a)" "$(get collateral_misses_b)"
    done
} | tee "$OUT/invalidation-summary.txt"

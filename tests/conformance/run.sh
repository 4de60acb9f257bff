#!/usr/bin/env bash
# Strata ISA/privileged conformance suite, with QEMU as differential oracle.
#
#   tests/conformance/run.sh [test-name-substring...]
#
# Environment:
#   MACHINE=strata (default)  run each test on QEMU and on strata, compare
#   MACHINE=qemu-only         run only QEMU; check completion + self-checks
#   STRATA=path               strata binary (default: <repo>/target/release/strata)
#   QEMU=path                 qemu-system-riscv64 binary
#   TIMEOUT=seconds           per-test, per-machine time limit (default 20)
#   BUILD_DIR=path            build outputs (default: <repo>/build/conformance)
#   NO_CACHE=1                ignore cached QEMU signatures
#
# A test source may ask QEMU for a specific CPU with a marker comment, e.g.
#   /* qemu-cpu: rv64,h=true */
# (first match wins; tests without one get QEMU's default CPU). Strata
# implements everything by default; a test of a smaller machine names its
# flags with `strata-args: --cpu rv64gc` (to the end of the line or `*/`).
# A test of an extension QEMU 7.2 does not implement says so with
# `qemu-lacks: <extension>`: QEMU is not run, and every word must pass the
# machine's own self-check against the value the specification requires
# (record-only words fail: there is nothing to compare them with). With
# MACHINE=qemu-only such a test is reported as SKIP and not counted.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MACHINE="${MACHINE:-strata}"
STRATA="${STRATA:-$REPO/target/release/strata}"
QEMU="${QEMU:-qemu-system-riscv64}"
TIMEOUT="${TIMEOUT:-20}"
BUILD="${BUILD_DIR:-$REPO/build/conformance}"
CC="${CC_RISCV:-riscv64-unknown-elf-gcc}"
DEVIATIONS="$HERE/known-qemu-deviations.txt"
CFLAGS=(-march=rv64gc -mabi=lp64d -mcmodel=medany -nostdlib -nostartfiles -static
        -ffreestanding -fno-builtin -O2 -I"$HERE/env" -T "$HERE/env/link.ld")

case "$MACHINE" in
  strata|qemu-only) ;;
  *) echo "MACHINE must be 'strata' or 'qemu-only'" >&2; exit 2 ;;
esac
command -v "$CC" >/dev/null || { echo "missing $CC" >&2; exit 2; }
command -v "$QEMU" >/dev/null || { echo "missing $QEMU" >&2; exit 2; }
if [[ "$MACHINE" == strata && ! -x "$STRATA" ]]; then
  echo "strata binary not found at $STRATA (build it, set STRATA=, or use MACHINE=qemu-only)" >&2
  exit 2
fi

mkdir -p "$BUILD/elf" "$BUILD/out" "$BUILD/qemu-cache"
QEMU_VER="$("$QEMU" --version | head -n1)"

# ---- build ---------------------------------------------------------------
tests=()
declare -A QCPU SARGS QLACKS
for src in "$HERE"/tests/*.S "$HERE"/tests/*.c; do
  [[ -e "$src" ]] || continue
  name="$(basename "${src%.*}")"
  if [[ $# -gt 0 ]]; then
    keep=0
    for f in "$@"; do [[ "$name" == *"$f"* ]] && keep=1; done
    [[ $keep == 1 ]] || continue
  fi
  elf="$BUILD/elf/$name.elf"
  if ! "$CC" "${CFLAGS[@]}" -o "$elf" "$HERE/env/start.S" "$HERE/env/runtime.c" "$src" \
        2>"$BUILD/out/$name.build.log"; then
    cat "$BUILD/out/$name.build.log" >&2
    echo "build of $name failed" >&2
    exit 2
  fi
  tests+=("$name")
  QCPU[$name]="$(sed -n 's/.*qemu-cpu:[[:space:]]*\([^[:space:]*]*\).*/\1/p' "$src" | head -n 1)"
  SARGS[$name]="$(sed -n 's/.*strata-args:[[:space:]]*\([^*]*\).*/\1/p' "$src" | head -n 1 | sed 's/[[:space:]]*$//')"
  QLACKS[$name]="$(sed -n 's/.*qemu-lacks:[[:space:]]*\([^[:space:]*]*\).*/\1/p' "$src" | head -n 1)"
done
[[ ${#tests[@]} -gt 0 ]] || { echo "no tests selected" >&2; exit 2; }

run_qemu() { # elf out cpu
  local cpu=()
  [[ -n "$3" ]] && cpu=(-cpu "$3")
  timeout -k 2 "$TIMEOUT" "$QEMU" -M virt "${cpu[@]}" -bios none -kernel "$1" -m 128M -smp 1 \
    -display none -serial stdio -monitor none </dev/null >"$2" 2>&1 || true
}
run_strata() { # elf out [extra flags...]
  local elf="$1" out="$2"
  shift 2
  # Virtual time: the same instructions give the same counters every run.
  timeout -k 2 "$TIMEOUT" "$STRATA" machine --clock virtual --bios none --kernel "$elf" -m 128M "$@" \
    </dev/null >"$out" 2>&1 || true
}

# ---- run + compare -----------------------------------------------------------
total_pass=0
total_fail=0
start=$(date +%s)
for name in "${tests[@]}"; do
  elf="$BUILD/elf/$name.elf"
  lacks="${QLACKS[$name]}"
  if [[ -n "$lacks" && "$MACHINE" == qemu-only ]]; then
    printf 'SKIP %-24s QEMU lacks %s: checked against the specification on the machine only\n' "$name" "$lacks"
    continue
  fi
  mout="$BUILD/out/$name.$MACHINE.out"
  if [[ -n "$lacks" ]]; then
    # The machine's output stands in for QEMU's (a copy, made below): only
    # its self-checks count.
    qout="$BUILD/out/$name.spec.out"
  else
    key="$( (sha256sum "$elf" | cut -d' ' -f1; echo "$QEMU_VER"; echo "cpu=${QCPU[$name]}") | sha256sum | cut -c1-32)"
    qout="$BUILD/qemu-cache/$name-$key.out"
    if [[ -n "${NO_CACHE:-}" || ! -s "$qout" ]] || ! grep -q '^END ' "$qout"; then
      run_qemu "$elf" "$qout" "${QCPU[$name]}"
    fi
  fi
  if [[ "$MACHINE" == strata ]]; then
    read -r -a sargs <<<"${SARGS[$name]}"
    run_strata "$elf" "$mout" "${sargs[@]}"
    [[ -n "$lacks" ]] && cp "$mout" "$qout"
  else
    cp "$qout" "$mout"
  fi
  result="$(awk -v test="$name" -v mode="$MACHINE" -v speconly="${lacks:+1}" '
    # Documented QEMU departures: "test | case name | reason"
    FILENAME == ARGV[1] {
      if ($0 ~ /^[ \t]*(#|$)/) next
      n = split($0, p, /[ \t]*\|[ \t]*/)
      gsub(/^[ \t]+/, "", p[1])
      if (p[1] == test) dev[p[2]] = 1
      next
    }
    function parse(line, arr,   f, n, i, nm) {
      n = split(line, f, " ")
      arr["idx"] = f[2]; arr["val"] = f[3]
      if (f[4] ~ /^BAD:/) { arr["st"] = "BAD"; arr["exp"] = substr(f[4], 5) }
      else { arr["st"] = f[4]; arr["exp"] = "" }
      nm = f[5]
      for (i = 6; i <= n; i++) nm = nm " " f[i]
      arr["name"] = nm
    }
    FILENAME == ARGV[2] {
      if ($1 == "SIG") { q[qn++] = $0 } else if ($1 == "END") qend = 1
      else if ($1 == "FATAL") qfatal = $0
      next
    }
    FILENAME == ARGV[3] {
      if ($1 == "SIG") { m[mn++] = $0 } else if ($1 == "END") mend = 1
      else if ($1 == "FATAL") mfatal = $0
      next
    }
    END {
      pass = 0; fail = 0; first = ""; ndev = 0
      if (!qend) {
        fail = (qn > 0 ? qn : 1)
        first = (speconly ? "machine" : "QEMU") " did not complete" (qfatal != "" ? ": " qfatal : "")
      } else {
        for (i = 0; i < qn; i++) {
          parse(q[i], Q)
          ok = 1; why = ""
          isdev = (Q["name"] in dev)
          if (Q["st"] == "BAD" && !isdev) {
            ok = 0; why = (speconly ? "machine" : "QEMU") " self-check failed: got " Q["val"] " expected " Q["exp"]
          }
          if (speconly && Q["st"] != "ok") {
            ok = 0; if (why == "") why = "a spec-only test needs self-checked words (status " Q["st"] ")"
          }
          if (isdev) ndev++
          if (ok && mode != "qemu-only") {
            if (i >= mn) {
              ok = 0; why = "missing on machine" (mend ? "" : " (machine did not complete" (mfatal != "" ? ": " mfatal : "") ")")
            } else {
              parse(m[i], M)
              if (M["name"] != Q["name"]) { ok = 0; why = "case name differs: machine has \"" M["name"] "\"" }
              else if (M["st"] == "BAD") { ok = 0; why = "machine self-check failed: got " M["val"] " expected " M["exp"] " (qemu " Q["val"] ")" }
              else if (!isdev && M["val"] != Q["val"]) { ok = 0; why = "qemu=" Q["val"] " machine=" M["val"] }
            }
          }
          if (ok) pass++
          else { fail++; if (first == "") first = "SIG " Q["idx"] " \"" Q["name"] "\": " why }
        }
        if (mode != "qemu-only") {
          if (mn > qn) { fail += mn - qn; if (first == "") first = "machine emitted " (mn - qn) " extra signature words" }
          if (!mend && first == "") { fail++; first = "machine did not print END" (mfatal != "" ? ": " mfatal : "") }
        }
      }
      printf "%d %d %d %s\n", pass, fail, ndev, first
    }' "$DEVIATIONS" "$qout" "$mout")"
  read -r p f d first <<<"$result"
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
  note=""
  [[ "$d" != 0 ]] && note=" [$d documented QEMU deviation(s)]"
  [[ -n "$lacks" ]] && note="$note [spec only: QEMU lacks $lacks]"
  [[ -n "${SARGS[$name]}" ]] && note="$note [strata ${SARGS[$name]}]"
  if [[ "$f" == 0 ]]; then
    printf 'PASS %-24s %4d cases%s\n' "$name" "$p" "$note"
  else
    printf 'FAIL %-24s %4d/%d cases failed; first: %s%s\n' "$name" "$f" "$((p + f))" "$first" "$note"
  fi
done
echo "# ${#tests[@]} test programs, machine=$MACHINE, $(( $(date +%s) - start ))s" >&2
echo "$total_pass passed, $total_fail failed"
[[ $total_fail == 0 ]]

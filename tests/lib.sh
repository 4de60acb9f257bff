# Sourced by the shell tests (tests/*/*.sh): counted checks and the one
# summary line that `make test` reads. Every missing precondition is a
# counted failure, never a skip.

PASSED=0
FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
# Prints the summary and exits: status 0 only if nothing failed.
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }

# contains PATTERN: status 0 if a line of standard input matches PATTERN
# (grep's basic regular expressions). Unlike `... | grep -q`, it reads all of
# its input, so under `set -o pipefail` the writer never dies of SIGPIPE and
# turns a match into a failure (a race that depends on pipe timing).
contains() {
    local n
    n=$(grep -c -- "$1") || true
    [ "${n:-0}" -gt 0 ]
}

# require_guest DIR FILE...: the guest files a test boots, each non-empty;
# the first one missing ends the test as a failure.
require_guest() {
    local dir=$1 f
    shift
    for f in "$@"; do
        [ -s "$dir/$f" ] || { fail "missing $dir/$f (run: make setup)"; finish; }
    done
}

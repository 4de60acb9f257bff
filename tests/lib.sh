# Sourced by the shell tests (tests/*/*.sh): counted checks and the one
# summary line that `make test` reads. Every missing precondition is a
# counted failure, never a skip.

PASSED=0
FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
# Prints the summary and exits: status 0 only if nothing failed.
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; exit $?; }

# require_guest DIR FILE...: the guest files a test boots, each non-empty;
# the first one missing ends the test as a failure.
require_guest() {
    local dir=$1 f
    shift
    for f in "$@"; do
        [ -s "$dir/$f" ] || { fail "missing $dir/$f (run: make setup)"; finish; }
    done
}

#!/usr/bin/env bash
# Model-checks tests/model/*.pml with SPIN (Debian's spin + gcc). Each property must hold for the
# protocol as built, and the deliberately broken variants must produce a counterexample.
# Prints one line per check and "N passed, N failed" at the end; exits non-zero on any failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

# check MODEL PROPERTY EXPECT [SPIN_DEFINES...]   EXPECT: holds | violated
check() {
  local model=$1 prop=$2 expect=$3; shift 3
  local dir="$work/$(basename "$model" .pml)-$prop-$expect"
  mkdir -p "$dir" && cd "$dir" || return
  if ! spin -a "$@" "$here/$model" >spin.log 2>&1 ||
     ! gcc -O2 -DSAFETY_OFF -o pan pan.c >gcc.log 2>&1; then
    echo "FAIL $model $prop: spin/gcc failed: $(tail -2 spin.log gcc.log)"; failed=$((failed + 1)); return
  fi
  ./pan -a -m100000 -N "$prop" >pan.log 2>&1
  local errors
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log | head -1)
  if [ -z "$errors" ]; then
    echo "FAIL $model $prop: no result from pan"; tail -5 pan.log; failed=$((failed + 1)); return
  fi
  local states
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.log | head -1)
  if { [ "$expect" = holds ] && [ "$errors" -eq 0 ]; } ||
     { [ "$expect" = violated ] && [ "$errors" -gt 0 ]; }; then
    echo "ok   $model $prop $expect $* ($states states)"; passed=$((passed + 1))
  else
    echo "FAIL $model $prop: expected $expect, pan found $errors error(s) $*"; failed=$((failed + 1))
  fi
}

check two_phase.pml agreement holds
check two_phase.pml validity holds
check two_phase.pml stability holds
check two_phase.pml never_commits violated
check two_phase.pml never_aborts violated
check two_phase.pml agreement violated -DLOG_AFTER_SEND
check two_phase.pml agreement violated -DGUESS_WHEN_DOWN

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

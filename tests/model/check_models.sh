#!/usr/bin/env bash
# Model-checks tests/model/*.pml with SPIN (Debian's spin + gcc). Each property must hold for the
# protocol as built, and the deliberately broken variants must produce a counterexample.
# Runs the checks two at a time (the biggest takes several minutes and a few GB of memory).
# Prints one line per check and "N passed, N failed" at the end; exits non-zero on any failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jobs_max=${TXCOORD_MODEL_JOBS:-2}
n=0

# check MODEL PROPERTY EXPECT [SPIN_DEFINES...]   EXPECT: holds | violated
# Writes "ok ..." or "FAIL ..." to its own result file.
check() {
  local model=$1 prop=$2 expect=$3; shift 3
  local dir="$work/$n"
  mkdir -p "$dir" && cd "$dir" || return
  local result="$dir/result"
  if ! spin -a "$@" "$here/$model" >spin.log 2>&1 ||
     ! gcc -O2 -DSAFETY_OFF -DCOLLAPSE -o pan pan.c >gcc.log 2>&1; then
    echo "FAIL $model $prop: spin/gcc failed: $(tail -2 spin.log gcc.log)" >"$result"; return
  fi
  local start=$SECONDS
  ./pan -a -m200000 -N "$prop" >pan.log 2>&1
  local errors states
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log | head -1)
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.log | head -1)
  if [ -z "$errors" ]; then
    { echo "FAIL $model $prop: no result from pan"; tail -5 pan.log; } >"$result"; return
  fi
  if grep -q "max search depth too small" pan.log; then
    echo "FAIL $model $prop: search depth too small, the search was cut" >"$result"; return
  fi
  if { [ "$expect" = holds ] && [ "$errors" -eq 0 ]; } ||
     { [ "$expect" = violated ] && [ "$errors" -gt 0 ]; }; then
    echo "ok   $model $prop $expect $* ($states states, $((SECONDS - start)) s)" >"$result"
  else
    echo "FAIL $model $prop: expected $expect, pan found $errors error(s) $*" >"$result"
  fi
}

run() {
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  n=$((n + 1))
  check "$@" &
}

# The biggest first, so that the small ones fill the other core.
# (c) 3PC with the quorum termination txcoord ships (three_phase_quorum.pml's header has the bounds).
run three_phase_quorum.pml agreement holds -DMAX_ROUNDS=3 -DMAX_CRASHES=0 -DMAX_PARTS=1
run three_phase_quorum.pml agreement holds -DMAX_ROUNDS=3 -DMAX_CRASHES=1 -DMAX_PARTS=0
run three_phase_quorum.pml agreement holds -DMAX_ROUNDS=2 -DMAX_CRASHES=1 -DMAX_PARTS=2
run three_phase_quorum.pml validity holds -DMAX_ROUNDS=1
run three_phase_quorum.pml never_commits violated -DMAX_ROUNDS=1
run three_phase_quorum.pml never_aborts violated -DMAX_ROUNDS=1
run three_phase_quorum.pml agreement violated -DFORGET_PROMISE -DMAX_ROUNDS=2 -DMAX_PARTS=0
# (b) 3PC with Skeen's non-quorum termination: a partition splits the outcome; without one it holds.
run three_phase_skeen.pml agreement violated
run three_phase_skeen.pml agreement holds -DNO_PARTITION
# (d) The global deadlock detector: the rule holds; each safeguard, removed, breaks its property.
run deadlock_detector.pml all_three holds -DMAX_CALLS=3
run deadlock_detector.pml no_decided violated -DNO_RECHECK
run deadlock_detector.pml real_cycle violated -DNO_CALL_CHECK
run deadlock_detector.pml one_victim violated -DPICK_ANY
# (a) 2PC with presumed abort and coordinator crash/recovery.
run two_phase.pml agreement holds
run two_phase.pml validity holds
run two_phase.pml stability holds
run two_phase.pml never_commits violated
run two_phase.pml never_aborts violated
run two_phase.pml agreement violated -DLOG_AFTER_SEND
run two_phase.pml agreement violated -DGUESS_WHEN_DOWN
wait

passed=0 failed=0
for i in $(seq 1 "$n"); do
  line=$(cat "$work/$i/result" 2>/dev/null || echo "FAIL check $i: no result")
  echo "$line"
  case $line in ok*) passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

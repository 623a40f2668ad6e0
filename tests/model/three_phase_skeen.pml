/*
 * Three-phase commit with Skeen's classic (non-quorum) termination, for 3 participants and a
 * separate coordinator C: the protocol txcoord does NOT ship. docs/three-phase.md section 6
 * walks through the run this model exists to show: C pre-commits p0, the network splits
 * {C,p0} | {p1,p2}; the side {p1,p2} sees only W and aborts, while C, taking the silent side for
 * crashed, commits. SPIN must find that mixed outcome (tests/model/check_models.sh asserts that
 * `agreement` is violated); with -DNO_PARTITION the same protocol keeps agreement, which is why 3PC
 * is called non-blocking: it is safe only when the network never splits.
 *
 * States as in three_phase_quorum.pml and the C++ core: W (voted YES), PC (pre-committed), C, A.
 * Termination rule of the backup coordinator over the states it can reach (Skeen / BHG TR1-TR4):
 * some A -> ABORT; some C -> COMMIT; some PC -> pre-commit the rest, then COMMIT; all W -> ABORT.
 */
#define N 3
#define W  1
#define PC 2
#define C  4
#define A  5
#define COORD 3

byte st[N];
byte cdecision;          /* 0 none, C or A: C's log */
bool voted_yes[N];
byte grp[4];             /* same group = connected; index COORD is C */
bool split;
bool c_crashed;        /* fail-stop: a crashed C never returns */

#define CONN(a, b) (grp[a] == grp[b])
#define DECIDED(s) ((s) == C || (s) == A)
#define ANY_ST(s) (st[0] == s || st[1] == s || st[2] == s)
#define ANY_COMMIT (ANY_ST(C) || cdecision == C)
#define ANY_ABORT  (ANY_ST(A) || cdecision == A)

/* Skeen's termination rule applied by backup b over the participants connected to it. */
inline terminate(b) {
  byte j; bool some_a, some_c, some_pc;
  some_a = false; some_c = false; some_pc = false;
  for (j : 0 .. N - 1) {
    if
    :: CONN(b, j) ->
       some_a = some_a || st[j] == A; some_c = some_c || st[j] == C; some_pc = some_pc || st[j] == PC
    :: else -> skip
    fi
  }
  for (j : 0 .. N - 1) {
    if
    :: CONN(b, j) && !DECIDED(st[j]) -> st[j] = (some_a -> A : (some_c || some_pc -> C : A))
    :: else -> skip
    fi
  }
}

proctype Participant(byte i) {
  if
  :: st[i] = W; voted_yes[i] = true
  :: st[i] = A
  fi;
  do
  /* the coordinator is unreachable past the timeout (crashed, or so it seems): act as backup */
  :: atomic { !DECIDED(st[i]) && (c_crashed || !CONN(i, COORD)) -> terminate(i) }
  :: DECIDED(st[i]) -> break
  od
}

/* C may crash (fail-stop) before any of its steps. */
#define STEP(guarded) if :: guarded :: c_crashed = true; goto dead fi

proctype Coordinator() {
  byte j;
  /* vote phase: all YES, or abort */
  if
  :: voted_yes[0] && voted_yes[1] && voted_yes[2]
  :: cdecision = A; goto send
  :: c_crashed = true; goto dead
  fi;
  /* PRE_COMMIT to each reachable participant, one message at a time */
  do
  :: j < N -> STEP(atomic { if :: CONN(COORD, j) && st[j] == W -> st[j] = PC :: else -> skip fi; j++ })
  :: j == N -> break
  od;
  /* ACKs in, or timed out: 3PC takes the silent participants for crashed and commits */
  STEP(cdecision = C);
send:
  j = 0;
  do
  :: j < N -> STEP(atomic { if :: CONN(COORD, j) && !DECIDED(st[j]) -> st[j] = cdecision :: else -> skip fi; j++ })
  :: j == N -> break
  od;
dead:
  skip
}

#ifndef NO_PARTITION
active proctype Network() {
  /* one split at any moment: {C,p0} | {p1,p2} */
  atomic { !split -> split = true; grp[1] = 1; grp[2] = 1 }
}
#endif

init {
  atomic { run Participant(0); run Participant(1); run Participant(2); run Coordinator() }
}

ltl agreement { [] !(ANY_COMMIT && ANY_ABORT) }

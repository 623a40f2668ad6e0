/*
 * The global deadlock detector: coordinator/core/wait_for_graph.{h,cc} with the standing checks
 * of TransactionDriver (DeadlockStanding, AbortDeadlockVictim) and the agents' reports
 * (participant-agent/lock_wait_reporter.cc). Three transactions (0 oldest, 2 youngest) over two
 * databases with one contested row each.
 *
 * The world (process World): an executing transaction sends a call to a database (a new call
 * number each time); it gets the row if it is free (and returns, at once or after a while),
 * else it waits for the row's owner; or it runs a while on other rows. A wait
 * ends when the owner lets go of the row (the waiter then takes it, or waits for whoever took it),
 * or by the lock timeout, which fails the call; the transaction may then go on with new calls
 * (an interactive client). A transaction with no call in flight may decide (COMMIT, and let go
 * of its rows). A victim is aborting until it lets go of its rows.
 *
 * Agents (process Agent, one per database) send snapshots of their database's waits (waiter ->
 * holder, with the waiter's call number) with increasing sequence numbers. The network may
 * delay or lose any report (a new report replaces one still in flight), and with -DREORDER
 * agent 0 may have two in flight, delivered in either order; the coordinator takes a report only
 * if its sequence is newer than the last it took from that agent, and may drop (expire) an
 * agent's snapshot at any time; a victim's exclusion may end at any time.
 *
 * The detector (process Detector) finds a cycle in what it holds, checks every member's standing
 * (executing, and the call of its edge still in flight at that database), then, in a later step,
 * aborts the youngest if it is still undecided (the re-check under the transaction's lock).
 *
 * Bounds: T transactions (2, or 3 with -DTHREE), MAX_CALLS calls each; reports are unbounded:
 * (CI checks 2 transactions without REORDER in seconds; -DTHREE and -DREORDER each take more
 * than this machine's budget for the suite, so cycles of three are covered by the unit and
 * integration tests only)
 * sequence numbers are kept as their order only (0: not newer than what the coordinator took,
 * 1 and 2: newer, in order), which is all the coordinator's check looks at.
 *
 * Checked properties (tests/model/check_models.sh; ghost flags set where a check fails):
 *   no_decided   a victim never has a decision
 *   real_cycle   every wait on a cycle the detector acts on is real when it checks it
 *   one_victim   a wait that a victim's abort broke never counts toward a second victim
 *   all_three    the three at once (one search instead of three)
 * Broken variants that must fail: -DNO_RECHECK (abort without the re-check: no_decided),
 * -DNO_CALL_CHECK (a wait's call not compared: real_cycle, a timed-out wait taken for a later
 * call's), -DPICK_ANY (the youngest executing member is aborted even when another member's edge
 * is stale: one_victim).
 */
#ifdef THREE
#define T 3          /* three transactions: cycles through all three */
#else
#define T 2
#endif
#define D 2
#define NONE 255
#ifndef MAX_CALLS
#define MAX_CALLS 3  /* per transaction: a row, a wait, and one more call after a timeout */
#endif


#define EXEC     0
#define DECIDED  1
#define ABORTING 3
#define ABORTED  4

byte st[T];            /* EXEC initially */
bool decided[T];       /* ghost: ever had a decision */
byte owner[D] = NONE;  /* who holds the database's row */
byte wt[T] = NONE;     /* whom t waits for (its call waits), or NONE */
byte wdb[T] = NONE;    /* where t's call in flight is, or NONE when none */
byte call[T];          /* t's current call number */

/* Reports in flight: two slots per agent. */
bool m_full[D * 2];
byte m_seq[D * 2];
byte m_h[D * 2 * T];
byte m_c[D * 2 * T];

/* What the coordinator holds. */
byte v_seq[D];
byte v_h[D * T] = NONE;
byte v_c[D * T];
bool excluded[T];

/* Ghost for one_victim: the waits (call, holder) that victims' aborts broke. */
byte broken_call[T];
byte broken_holder[T] = NONE;

bool bad_decided, bad_real, bad_one;
ltl no_decided { [] !bad_decided }
ltl real_cycle { [] !bad_real }
ltl one_victim { [] !bad_one }
ltl all_three { [] !(bad_decided || bad_real || bad_one) }

/* Detector's candidate between the check and the abort. */
byte cand = NONE;
byte cyc[T];
byte cyc_len;

#define VH(a, t) v_h[(a) * T + (t)]
#define VC(a, t) v_c[(a) * T + (t)]
#define MH(s, t) m_h[(s) * T + (t)]
#define MC(s, t) m_c[(s) * T + (t)]

/* Releases t's rows; waiters for t take the row or wait for its new owner. */
inline release(t) {
  k = 0;
  do
  :: k < D -> if :: owner[k] == t -> owner[k] = NONE :: else -> skip fi; k++
  :: else -> break
  od;
  k = 0;
  do
  :: k < T ->
     if
     :: wt[k] == t ->
        if
        :: owner[wdb[k]] == NONE -> owner[wdb[k]] = k; wt[k] = NONE; wdb[k] = NONE
        :: else -> wt[k] = owner[wdb[k]]
        fi
     :: else -> skip
     fi;
     k++
  :: else -> break
  od;
  k = 0
}

/* t sends a call to database d: it gets the row, or waits for its owner. */
#define CAN_CALL(t) (st[t] == EXEC && wdb[t] == NONE && call[t] < MAX_CALLS)
inline send_call(t, d) {
  call[t]++;
  if
  :: wdb[t] = d        /* a statement on other rows, which runs a while */
  :: owner[d] == NONE || owner[d] == t -> owner[d] = t
     if
     :: wdb[t] = d     /* it runs on a while (a long statement), not waiting */
     :: skip           /* it returns at once */
     fi
  :: owner[d] != NONE && owner[d] != t -> wdb[t] = d; wt[t] = owner[d]
  fi
}

active proctype World() {
  byte k;
end:
  do
  :: atomic { CAN_CALL(0) -> send_call(0, 0) }
  :: atomic { CAN_CALL(0) -> send_call(0, 1) }
  :: atomic { CAN_CALL(1) -> send_call(1, 0) }
  :: atomic { CAN_CALL(1) -> send_call(1, 1) }
#ifdef THREE
  :: atomic { CAN_CALL(2) -> send_call(2, 0) }
  :: atomic { CAN_CALL(2) -> send_call(2, 1) }
#endif
  /* a running call that does not wait returns */
  :: atomic { wdb[0] != NONE && wt[0] == NONE && st[0] == EXEC -> wdb[0] = NONE }
  :: atomic { wdb[1] != NONE && wt[1] == NONE && st[1] == EXEC -> wdb[1] = NONE }
#ifdef THREE
  :: atomic { wdb[2] != NONE && wt[2] == NONE && st[2] == EXEC -> wdb[2] = NONE }
#endif
  /* the lock timeout fails a waiting call */
  :: atomic { wt[0] != NONE && st[0] == EXEC -> wt[0] = NONE; wdb[0] = NONE }
  :: atomic { wt[1] != NONE && st[1] == EXEC -> wt[1] = NONE; wdb[1] = NONE }
#ifdef THREE
  :: atomic { wt[2] != NONE && st[2] == EXEC -> wt[2] = NONE; wdb[2] = NONE }
#endif
  /* a transaction with no call in flight decides, commits and lets go of its rows */
  :: atomic { st[0] == EXEC && wdb[0] == NONE -> st[0] = DECIDED; decided[0] = true; release(0) }
  :: atomic { st[1] == EXEC && wdb[1] == NONE -> st[1] = DECIDED; decided[1] = true; release(1) }
#ifdef THREE
  :: atomic { st[2] == EXEC && wdb[2] == NONE -> st[2] = DECIDED; decided[2] = true; release(2) }
#endif
  /* a victim's rollback lets go of its rows */
  :: atomic { st[0] == ABORTING -> st[0] = ABORTED; release(0) }
  :: atomic { st[1] == ABORTING -> st[1] = ABORTED; release(1) }
#ifdef THREE
  :: atomic { st[2] == ABORTING -> st[2] = ABORTED; release(2) }
#endif
  od
}

/* Sequence numbers as order only: slots of agent a not newer than v_seq[a] become 0 (a late
 * report, which take() ignores); newer ones 1 and 2 in their order; v_seq[a] becomes 0. */
inline normalize(a) {
  if :: m_full[2 * (a)] && m_seq[2 * (a)] <= v_seq[(a)] -> m_seq[2 * (a)] = 0
     :: m_full[2 * (a)] && m_seq[2 * (a)] > v_seq[(a)] -> m_seq[2 * (a)] = m_seq[2 * (a)] - v_seq[(a)]
     :: else -> m_seq[2 * (a)] = 0 fi;
  if :: m_full[2 * (a) + 1] && m_seq[2 * (a) + 1] <= v_seq[(a)] -> m_seq[2 * (a) + 1] = 0
     :: m_full[2 * (a) + 1] && m_seq[2 * (a) + 1] > v_seq[(a)] -> m_seq[2 * (a) + 1] = m_seq[2 * (a) + 1] - v_seq[(a)]
     :: else -> m_seq[2 * (a) + 1] = 0 fi;
  v_seq[(a)] = 0;
  if :: m_seq[2 * (a)] == 2 && m_seq[2 * (a) + 1] == 0 -> m_seq[2 * (a)] = 1
     :: m_seq[2 * (a) + 1] == 2 && m_seq[2 * (a)] == 0 -> m_seq[2 * (a) + 1] = 1
     :: else -> skip fi
}

/* Agent a sends a snapshot of the waits in its database into slot s (o: its other slot); it is
 * newer than every report before it. A report already in slot s is lost. */
inline snapshot(a, s, o) {
  m_full[s] = true;
  if :: m_full[o] && m_seq[o] > 0 -> m_seq[s] = m_seq[o] + 1 :: else -> m_seq[s] = 1 fi;
  k = 0;
  do
  :: k < T ->
     if
     :: wt[k] != NONE && wdb[k] == a -> MH(s, k) = wt[k]; MC(s, k) = call[k]
     :: else -> MH(s, k) = NONE; MC(s, k) = 0
     fi;
     k++
  :: else -> break
  od;
  k = 0;
  normalize(a)
}

active proctype Agents() {
  byte k;
end:
  do
  :: atomic { snapshot(0, 0, 1) }
#ifdef REORDER
  :: atomic { snapshot(0, 1, 0) }   /* agent 0 may have two reports in flight, out of order */
#endif
  :: atomic { snapshot(1, 2, 3) }
  od
}

/* The coordinator takes the report in slot s if it is newer than the last from its agent. */
inline take(s) {
  if
  :: m_seq[s] > v_seq[s / 2] ->
     v_seq[s / 2] = m_seq[s];
     k = 0;
     do
     :: k < T ->
        if
        :: excluded[k] || (MH(s, k) != NONE && excluded[MH(s, k)]) -> VH(s / 2, k) = NONE
        :: else -> VH(s / 2, k) = MH(s, k); VC(s / 2, k) = MC(s, k)
        fi;
        k++
     :: else -> break
     od;
     k = 0
  :: else -> skip   /* late: ignored */
  fi;
  m_full[s] = false;
  m_seq[s] = 0;
  normalize(s / 2)
}

inline expire(a) {
  k = 0; do :: k < T -> VH(a, k) = NONE; k++ :: else -> break od; k = 0
}

/* Is m's edge to h in what the coordinator holds, and (standing) is its call still waiting? */
#ifdef NO_CALL_CHECK
#define LIVE(a, m) (st[m] == EXEC && wdb[m] == a)
#else
#define LIVE(a, m) (st[m] == EXEC && wdb[m] == a && call[m] == VC(a, m))
#endif
#define HELD(a, m, h) (VH(a, m) == h && !excluded[m] && !excluded[h])
#define EDGE(m, h) (HELD(0, m, h) || HELD(1, m, h))
#define LIVE_EDGE(m, h) ((HELD(0, m, h) && LIVE(0, m)) || (HELD(1, m, h) && LIVE(1, m)))
#define NEXT(i) cyc[((i) + 1) % cyc_len]
/* The wait m -> h is real now; it was broken by a victim's abort. */
#define REAL(m, h) (wt[m] == h)
#define WAS_BROKEN(m, h) (broken_holder[m] == h && broken_call[m] == call[m])

/* Finds a cycle and checks its members' standing (all under the detector's lock). */
inline check_cycle() {
  cyc_len = 0;
  if
  :: EDGE(0, 1) && EDGE(1, 0) -> cyc_len = 2; cyc[0] = 0; cyc[1] = 1
#ifdef THREE
  :: EDGE(0, 2) && EDGE(2, 0) -> cyc_len = 2; cyc[0] = 0; cyc[1] = 2
  :: EDGE(1, 2) && EDGE(2, 1) -> cyc_len = 2; cyc[0] = 1; cyc[1] = 2
  :: EDGE(0, 1) && EDGE(1, 2) && EDGE(2, 0) -> cyc_len = 3; cyc[0] = 0; cyc[1] = 1; cyc[2] = 2
  :: EDGE(0, 2) && EDGE(2, 1) && EDGE(1, 0) -> cyc_len = 3; cyc[0] = 0; cyc[1] = 2; cyc[2] = 1
#endif
  :: else -> skip
  fi;
  v = NONE; i = 0;
  do
  :: i < cyc_len ->
#ifdef PICK_ANY
     /* the naive rule: the youngest member that still executes, whatever the others do */
     if :: st[cyc[i]] == EXEC && (v == NONE || cyc[i] > v) -> v = cyc[i] :: else -> skip fi;
     i++
#else
     /* every member's edge on the cycle must be live, else the cycle is stale */
     if
     :: LIVE_EDGE(cyc[i], NEXT(i)) -> if :: v == NONE || cyc[i] > v -> v = cyc[i] :: else -> skip fi; i++
     :: else -> v = NONE; break
     fi
#endif
  :: else -> break
  od;
  if
  :: v != NONE ->
     i = 0;
     do
     :: i < cyc_len ->
        if :: !REAL(cyc[i], NEXT(i)) -> bad_real = true :: else -> skip fi;
        if :: REAL(cyc[i], NEXT(i)) && WAS_BROKEN(cyc[i], NEXT(i)) -> bad_one = true :: else -> skip fi;
        i++
     :: else -> break
     od
  :: else -> skip
  fi;
  cand = v; i = 0; v = 0
}

/* Aborts the candidate if it is still undecided (TransactionDriver::AbortDeadlockVictim). */
inline abort_candidate() {
#ifdef NO_RECHECK
  skip;
#else
  if :: st[cand] == EXEC -> skip :: else -> cand = NONE fi;
#endif
  if
  :: cand != NONE ->
     if :: decided[cand] -> bad_decided = true :: else -> skip fi;
     /* ghost: the real waits on its cycle are broken by this abort */
     i = 0;
     do
     :: i < cyc_len ->
        if
        :: REAL(cyc[i], NEXT(i)) -> broken_call[cyc[i]] = call[cyc[i]]; broken_holder[cyc[i]] = NEXT(i)
        :: else -> skip
        fi;
        i++
     :: else -> break
     od;
     st[cand] = ABORTING; wt[cand] = NONE; wdb[cand] = NONE;
     excluded[cand] = true;
     /* its edges go */
     k = 0;
     do
     :: k < T -> if :: VH(0, k) == cand || k == cand -> VH(0, k) = NONE :: else -> skip fi;
                 if :: VH(1, k) == cand || k == cand -> VH(1, k) = NONE :: else -> skip fi; k++
     :: else -> break
     od;
     k = 0; i = 0
  :: else -> skip
  fi;
  cand = NONE; cyc_len = 0
}

active proctype Detector() {
  byte k, i, v;
end:
  do
  :: atomic { m_full[0] -> take(0) }
#ifdef REORDER
  :: atomic { m_full[1] -> take(1) }
#endif
  :: atomic { m_full[2] -> take(2) }
  /* the network loses a report */
  :: atomic { m_full[0] -> m_full[0] = false; m_seq[0] = 0; normalize(0) }
#ifdef REORDER
  :: atomic { m_full[1] -> m_full[1] = false; m_seq[1] = 0; normalize(0) }
#endif
  :: atomic { m_full[2] -> m_full[2] = false; m_seq[2] = 0; normalize(1) }
  /* a snapshot expires; an exclusion ends */
  :: atomic { expire(0) }
  :: atomic { expire(1) }
  :: atomic { excluded[0] -> excluded[0] = false }
  :: atomic { excluded[1] -> excluded[1] = false }
#ifdef THREE
  :: atomic { excluded[2] -> excluded[2] = false }
#endif
  :: atomic { cand == NONE -> check_cycle() }
  /* the abort is a later step: the world moves in between */
  :: atomic { cand != NONE -> abort_candidate() }
  od
}

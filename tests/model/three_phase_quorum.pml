/*
 * Three-phase commit with quorum (E3PC-style) termination and ballots, for 3 participants and a
 * separate coordinator C that is not a quorum member (docs/three-phase.md sections 2-8). The
 * C++ that follows this model: coordinator/core/three_phase.{h,cc} (C) and
 * protocol/three_phase_quorum.{h,cc} (the participant rules E1-E3, the decision rule, the
 * termination round), driven by coordinator/driver/three_phase_driver.cc and by the agents'
 * participant-agent/three_phase_records.cc and three_phase_terminator.cc. They name the same
 * states (W, PC, PA, C, A), ballots (LE promised, LA last attempt) and steps (ELECT, STATE,
 * PRE_COMMIT/PRE_ABORT, ACK, DECIDED); the crash after C's PRE_COMMIT(B0) is the failpoint
 * coord.after_precommit_sent. Change the model and the C++ together.
 *
 * Ballot b = n*4 + owner (owner 0..2 a participant, 3 the coordinator); B0 = 1*4+3 is the normal
 * case's PRE_COMMIT. Durable per participant: st (no record = Q), LE, LA. Durable at C: its log
 * (START implicit, COMMIT / ABORT) and the highest ballot it used. Everything a candidate collects
 * during a round is volatile and lost in a crash.
 *
 * Faults: up to MAX_CRASHES crashes (of any process, each restarting later), up to MAX_PARTS
 * network changes among a few partition shapes (a message is delivered only while sender and
 * receiver are connected; one never delivered is lost), and up to MAX_ROUNDS termination rounds
 * started in all (by participants that time out, and by C after a restart with only START logged).
 *
 * A round is counted when it starts; a candidate that gives up (a NACK, a timeout) and tries again
 * starts a new one. A candidate is also a participant: before it pre-commits or pre-aborts itself it
 * checks its own promise like anyone else's (a later candidate may have reached it meanwhile).
 *
 * Checked (tests/model/check_models.sh), exhaustively:
 *   agreement  never a participant (or C's log) committed while another aborted: with one crash
 *              and two network changes up to 2 rounds; with one crash, or with one network
 *              change, up to 3 rounds (3 rounds with every fault at once did not finish: past
 *              1.4e8 states after 12 minutes on the 2-core machine)
 *   validity   nothing commits unless every participant voted YES
 * With -DFORGET_PROMISE (a participant's promised ballot LE is not persisted: after a crash it falls
 * back to its last attempt) SPIN must find an agreement violation: the forgotten promise lets the
 * coordinator's late PRE_COMMIT(B0) and a termination round's PRE_ABORT both reach a quorum.
 */
#define N 3
#define QUORUM 2
#ifndef MAX_CRASHES
#define MAX_CRASHES 1
#endif
#ifndef MAX_PARTS
#define MAX_PARTS 2
#endif
#ifndef MAX_ROUNDS
#define MAX_ROUNDS 2
#endif

/* participant states */
#define Q  0   /* no record: never voted YES */
#define W  1
#define PC 2
#define PA 3
#define C  4
#define A  5

/* C's log */
#define L_NONE   0
#define L_COMMIT 1
#define L_ABORT  2

#define COORD 3
#define B0 (1 * 4 + COORD)
#define BALLOT(n, owner) ((n) * 4 + (owner))
#define ROUND_OF(b) ((b) / 4)

byte st[N];
byte LE[N];
byte LA[N];
bool voted_yes[N];

byte clog = L_NONE;
byte c_max_ballot = B0;   /* durable at C: highest ballot it used */
bool c_alive = true;
bool precommit_sent;      /* volatile at C in the code; kept here for the "ABORT only before
                             PRE_COMMIT(B0)" guard: once set it stays set (C logs START first
                             and a restarted C never aborts on its own) */
bool p_alive[N];

byte grp[4];              /* connectivity: same group = connected; index COORD is C */
byte parts;
byte crashes;
byte rounds;

/* Candidates (indexed by owner: 0..2 participants, 3 C). All volatile. */
byte cb[4];               /* ballot of the round; 0 = idle */
byte cphase[4];           /* 0 idle, 1 electing, 2 sending PRE_x */
byte casked[4];           /* bitmask of participants that answered ELECT */
byte cmaxla[4];           /* highest LA seen */
byte cmaxst[4];           /* the state reported with it (PC or PA) */
byte cdir[4];             /* PC or PA being pushed */
byte cacks[4];            /* bitmask of ACKs */

#define CONN(a, b) (grp[a] == grp[b])
#define ALIVE(x) ((x) == COORD -> c_alive : p_alive[x])
#define DECIDED(s) ((s) == C || (s) == A)
#define BIT(j) (1 << (j))
#define COUNT(m) ((((m) >> 0) & 1) + (((m) >> 1) & 1) + (((m) >> 2) & 1))
#define ANY_ST(s) (st[0] == s || st[1] == s || st[2] == s)
#define ANY_COMMIT (ANY_ST(C) || clog == L_COMMIT)
#define ANY_ABORT  (ANY_ST(A) || clog == L_ABORT)

inline reset_candidate(o) {
  cb[o] = 0; cphase[o] = 0; casked[o] = 0; cmaxla[o] = 0; cmaxst[o] = 0; cdir[o] = 0; cacks[o] = 0
}

/* A candidate learned a decision (DECIDED / a c or a state): it persists and spreads it. */
/* A participant's final state. Its ballots no longer matter (it answers everything with DECIDED):
 * they are cleared so that SPIN does not tell apart states that differ only there. */
inline decide(j, d) {
  st[j] = d; LE[j] = 0; LA[j] = 0
}

inline adopt(o, d) {
  if
  :: o == COORD ->
     if :: clog == L_NONE -> clog = (d == C -> L_COMMIT : L_ABORT); c_max_ballot = 0
     :: else -> skip
     fi
  :: else -> decide(o, d)
  fi;
  reset_candidate(o)
}

/* Participant j handles PRE_x(b) from candidate o (rule E2); a DECIDED reply is adopted (T3/T7). */
inline pre_x(o, j) {
  if
  :: DECIDED(st[j]) -> adopt(o, st[j])
  :: !DECIDED(st[j]) && st[j] != Q && cb[o] >= LE[j] ->
     st[j] = cdir[o]; LA[j] = cb[o]; LE[j] = cb[o]; cacks[o] = cacks[o] | BIT(j)
  :: !DECIDED(st[j]) && (st[j] == Q || cb[o] < LE[j]) -> reset_candidate(o)   /* NACK: give up */
  fi
}

/* Participant j handles ELECT(b) from candidate o (rule E1); a DECIDED reply is adopted (T3/T7). */
inline elect(o, j) {
  if
  :: DECIDED(st[j]) -> adopt(o, st[j])
  :: st[j] == Q -> decide(j, A); adopt(o, A)   /* never voted YES: a unilateral abort */
  :: !DECIDED(st[j]) && st[j] != Q && cb[o] > LE[j] ->
     LE[j] = cb[o];
     if
     :: LA[j] > cmaxla[o] -> cmaxla[o] = LA[j]; cmaxst[o] = st[j]
     :: LA[j] == cmaxla[o] && LA[j] > 0 -> assert(cmaxst[o] == st[j])   /* same ballot, same state */
     :: else -> skip
     fi;
     casked[o] = casked[o] | BIT(j)
  :: !DECIDED(st[j]) && st[j] != Q && cb[o] == LE[j] && (cb[o] % 4) == o ->   /* retransmission */
     casked[o] = casked[o] | BIT(j)
  :: !DECIDED(st[j]) && st[j] != Q && cb[o] <= LE[j] && !(cb[o] == LE[j] && (cb[o] % 4) == o) ->
     reset_candidate(o)   /* NACK */
  fi
}

/* Candidate o (its STATEs from a quorum are in; any DECIDED was adopted already) applies the
 * decision rule of section 4: the latest attempt's direction, or PRE_ABORT when there is none. */
inline decide_direction(o) {
  if
  :: o != COORD && cb[o] < LE[o] -> reset_candidate(o)   /* it promised a later candidate since */
  :: else ->
     cdir[o] = (cmaxla[o] > 0 && cmaxst[o] == PC -> PC : PA);
     cphase[o] = 2;
     if
     :: o != COORD -> st[o] = cdir[o]; LA[o] = cb[o]; LE[o] = cb[o]; cacks[o] = BIT(o)
     :: else -> skip
     fi
  fi
}

proctype Participant(byte i) {
  /* PREPARE: vote (a participant that a candidate's ELECT reached first has aborted already,
     and answers NO) */
  atomic {
    if
    :: st[i] == Q -> st[i] = W; LE[i] = B0; LA[i] = 0; voted_yes[i] = true
    :: st[i] == Q -> decide(i, A)
    :: st[i] != Q -> skip
    fi
  };
  do
  /* learn a decision from anyone connected (DECIDED / COMMIT / ABORT) */
  :: atomic { p_alive[i] && !DECIDED(st[i]) && c_alive && CONN(i, COORD) && clog != L_NONE ->
       decide(i, (clog == L_COMMIT -> C : A)); reset_candidate(i) }
  :: atomic { p_alive[i] && !DECIDED(st[i]) &&
              ((p_alive[(i + 1) % N] && CONN(i, (i + 1) % N) && DECIDED(st[(i + 1) % N])) ||
               (p_alive[(i + 2) % N] && CONN(i, (i + 2) % N) && DECIDED(st[(i + 2) % N]))) ->
       if
       :: p_alive[(i + 1) % N] && CONN(i, (i + 1) % N) && DECIDED(st[(i + 1) % N]) ->
          decide(i, st[(i + 1) % N])
       :: else -> decide(i, st[(i + 2) % N])
       fi;
       reset_candidate(i) }
  /* E4: time out and start a termination round as candidate (also: give up the current round
     after a NACK or a timeout and start again with a higher ballot) */
  :: atomic { p_alive[i] && (st[i] == W || st[i] == PC || st[i] == PA) && rounds < MAX_ROUNDS ->
       rounds++; reset_candidate(i);
       cb[i] = BALLOT(ROUND_OF(LE[i]) + 1, i);
       LE[i] = cb[i];                                 /* self-promise, persisted */
       cphase[i] = 1; casked[i] = BIT(i);
       cmaxla[i] = LA[i]; cmaxst[i] = (LA[i] > 0 -> st[i] : 0) }
  /* the candidate's ELECT reaches participant j */
  :: atomic { p_alive[i] && cphase[i] == 1 && !DECIDED(st[i]) ->
       if
       :: p_alive[(i + 1) % N] && CONN(i, (i + 1) % N) && !(casked[i] & BIT((i + 1) % N)) ->
          elect(i, (i + 1) % N)
       :: p_alive[(i + 2) % N] && CONN(i, (i + 2) % N) && !(casked[i] & BIT((i + 2) % N)) ->
          elect(i, (i + 2) % N)
       fi }
  :: atomic { p_alive[i] && cphase[i] == 1 && COUNT(casked[i]) >= QUORUM -> decide_direction(i) }
  /* the candidate's PRE_x reaches participant j */
  :: atomic { p_alive[i] && cphase[i] == 2 && !DECIDED(st[i]) ->
       if
       :: p_alive[(i + 1) % N] && CONN(i, (i + 1) % N) && !(cacks[i] & BIT((i + 1) % N)) ->
          pre_x(i, (i + 1) % N)
       :: p_alive[(i + 2) % N] && CONN(i, (i + 2) % N) && !(cacks[i] & BIT((i + 2) % N)) ->
          pre_x(i, (i + 2) % N)
       fi }
  :: atomic { p_alive[i] && cphase[i] == 2 && COUNT(cacks[i]) >= QUORUM ->
       adopt(i, (cdir[i] == PC -> C : A)) }
  /* crash and restart: the candidate's round is lost, the record is not */
  /* (a decided participant's crash changes nothing: it re-applies its decision) */
  :: atomic { p_alive[i] && !DECIDED(st[i]) && crashes < MAX_CRASHES ->
       crashes++; p_alive[i] = false; reset_candidate(i) }
  :: atomic { !p_alive[i] ->
       p_alive[i] = true;
#ifdef FORGET_PROMISE
       if
       :: st[i] == W || st[i] == PC || st[i] == PA -> LE[i] = (LA[i] > 0 -> LA[i] : B0)
       :: else -> skip
       fi
#endif
     }
  :: DECIDED(st[i]) -> break
  od
}

proctype Coordinator() {
  /* START is logged; PREPARE went out (the participants vote on their own above). */
  do
  /* vote phase: any NO (or a vote timeout) -> ABORT, legal only before PRE_COMMIT(B0) */
  :: atomic { c_alive && clog == L_NONE && !precommit_sent && cphase[COORD] == 0 ->
       clog = L_ABORT }
  /* all YES -> PRE_COMMIT(B0) */
  :: atomic { c_alive && clog == L_NONE && !precommit_sent &&
              voted_yes[0] && voted_yes[1] && voted_yes[2] ->
       precommit_sent = true; cb[COORD] = B0; cdir[COORD] = PC; cphase[COORD] = 2; cacks[COORD] = 0 }
  /* C's PRE_x (B0 or its termination ballot) reaches participant j */
  :: atomic { c_alive && cphase[COORD] == 2 ->
       if
       :: p_alive[0] && CONN(COORD, 0) && !(cacks[COORD] & BIT(0)) -> pre_x(COORD, 0)
       :: p_alive[1] && CONN(COORD, 1) && !(cacks[COORD] & BIT(1)) -> pre_x(COORD, 1)
       :: p_alive[2] && CONN(COORD, 2) && !(cacks[COORD] & BIT(2)) -> pre_x(COORD, 2)
       fi }
  /* a quorum of ACK(b) -> log the decision (sync) before sending it */
  :: atomic { c_alive && cphase[COORD] == 2 && COUNT(cacks[COORD]) >= QUORUM ->
       adopt(COORD, (cdir[COORD] == PC -> C : A)) }
  /* C's own termination round (after a restart, or when ACKs stall) */
  :: atomic { c_alive && clog == L_NONE && precommit_sent && rounds < MAX_ROUNDS ->
       rounds++; reset_candidate(COORD);
       c_max_ballot = BALLOT(ROUND_OF(c_max_ballot) + 1, COORD);   /* persisted first */
       cb[COORD] = c_max_ballot; cphase[COORD] = 1 }
  :: atomic { c_alive && cphase[COORD] == 1 ->
       if
       :: p_alive[0] && CONN(COORD, 0) && !(casked[COORD] & BIT(0)) -> elect(COORD, 0)
       :: p_alive[1] && CONN(COORD, 1) && !(casked[COORD] & BIT(1)) -> elect(COORD, 1)
       :: p_alive[2] && CONN(COORD, 2) && !(casked[COORD] & BIT(2)) -> elect(COORD, 2)
       fi }
  :: atomic { c_alive && cphase[COORD] == 1 && COUNT(casked[COORD]) >= QUORUM ->
       decide_direction(COORD) }
  /* learn a decision from a connected participant (DECIDED sent to C) */
  :: atomic { c_alive && clog == L_NONE &&
              ((p_alive[0] && CONN(COORD, 0) && DECIDED(st[0])) ||
               (p_alive[1] && CONN(COORD, 1) && DECIDED(st[1])) ||
               (p_alive[2] && CONN(COORD, 2) && DECIDED(st[2]))) ->
       if
       :: p_alive[0] && CONN(COORD, 0) && DECIDED(st[0]) -> adopt(COORD, st[0])
       :: p_alive[1] && CONN(COORD, 1) && DECIDED(st[1]) -> adopt(COORD, st[1])
       :: p_alive[2] && CONN(COORD, 2) && DECIDED(st[2]) -> adopt(COORD, st[2])
       fi }
  /* crash / restart: the log and c_max_ballot survive */
  :: atomic { c_alive && clog == L_NONE && crashes < MAX_CRASHES -> crashes++; c_alive = false; reset_candidate(COORD) }
  :: atomic { !c_alive -> c_alive = true }
  :: clog != L_NONE -> break
  od
}

/* The network: a few partition shapes (groups of p0, p1, p2, C). */
active proctype Network() {
  do
  :: atomic { parts < MAX_PARTS ->
       parts++;
       if
       :: grp[0] = 0; grp[1] = 0; grp[2] = 0; grp[COORD] = 0   /* healed */
       :: grp[0] = 0; grp[1] = 1; grp[2] = 1; grp[COORD] = 0   /* {C,p0} | {p1,p2} */
       :: grp[0] = 1; grp[1] = 1; grp[2] = 0; grp[COORD] = 0   /* {C,p2} | {p0,p1} */
       :: grp[0] = 1; grp[1] = 1; grp[2] = 1; grp[COORD] = 0   /* C alone */
       :: grp[0] = 0; grp[1] = 1; grp[2] = 2; grp[COORD] = 0   /* everyone alone but C with p0 */
       fi }
  :: parts >= MAX_PARTS -> break
  od
}

init {
  atomic {
    p_alive[0] = true; p_alive[1] = true; p_alive[2] = true;
    run Participant(0); run Participant(1); run Participant(2); run Coordinator()
  }
}

ltl agreement { [] !(ANY_COMMIT && ANY_ABORT) }
ltl validity  { [] (ANY_COMMIT -> (voted_yes[0] && voted_yes[1] && voted_yes[2])) }
/* Sanity: both outcomes are reachable (each must be violated). */
ltl never_commits { [] !ANY_COMMIT }
ltl never_aborts  { [] !ANY_ABORT }

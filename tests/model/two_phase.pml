/*
 * Two-phase commit with presumed abort and coordinator crash/recovery, for 3 participants.
 * Mirrors coordinator/core/two_phase.{h,cc}: the COMMIT decision is logged (durably) before any
 * Commit is sent; nothing is logged on the abort path; a participant in doubt asks the
 * coordinator (GetDecision) and gets COMMIT if it is logged, UNKNOWN while the transaction is in
 * the coordinator's memory and undecided, ABORT otherwise (presumed abort).
 *
 * Crashes lose the coordinator's memory (the transaction, its phase) but not the log; messages
 * already sent may still arrive. Participants persist their state (the database's prepared
 * transaction) and never decide in doubt on their own.
 *
 * Checked properties (tests/model/check_models.sh):
 *   agreement  no participant commits while another aborts
 *   validity   a participant commits only if every participant voted YES
 *   stability  a committed participant stays committed
 * With -DLOG_AFTER_SEND (the decision logged after the Commits are sent: the bug the driver's
 * "persist before send" rule prevents) or -DGUESS_WHEN_DOWN (an in-doubt participant aborting on
 * its own while the coordinator is down) SPIN must find an agreement violation, and
 * never_commits / never_aborts must be violated (both outcomes are reachable).
 */
#define N 3
#define MAX_CRASHES 2

#define WORKING   0
#define PREPARED  1
#define COMMITTED 2
#define ABORTED   3

byte ps[N];            /* participant state, durable */
byte vote[N];          /* 0 none, 1 yes, 2 no */
bool prepare_sent;
bool commit_msg[N];    /* in flight to participant i */
bool abort_msg[N];

bool logged_commit;    /* the coordinator's decision log (durable) */
bool in_memory;        /* the coordinator holds the transaction (volatile) */
bool deciding;         /* volatile: still collecting votes */
bool alive = true;
byte crashes;

#define ALL_VOTED (vote[0] != 0 && vote[1] != 0 && vote[2] != 0)
#define ALL_YES   (vote[0] == 1 && vote[1] == 1 && vote[2] == 1)
#define ANY(s)    (ps[0] == s || ps[1] == s || ps[2] == s)

inline send_commits() {
  commit_msg[0] = true; commit_msg[1] = true; commit_msg[2] = true
}

inline send_aborts() {
  abort_msg[0] = true; abort_msg[1] = true; abort_msg[2] = true
}

active proctype Coordinator() {
  atomic { in_memory = true; deciding = true; prepare_sent = true };
  do
  :: atomic { alive && deciding && ALL_VOTED && ALL_YES ->
#ifdef LOG_AFTER_SEND
       send_commits(); deciding = false
     };
     /* a crash can strike between the sends and the log write */
     atomic { alive -> logged_commit = true }
#else
       logged_commit = true; deciding = false; send_commits()
     }
#endif
  :: atomic { alive && deciding && ALL_VOTED && !ALL_YES -> deciding = false; send_aborts() }
  :: atomic { alive && deciding -> deciding = false; send_aborts() }  /* prepare timeout */
  :: atomic { alive && crashes < MAX_CRASHES ->
       alive = false; crashes++; in_memory = false; deciding = false }
  :: atomic { !alive ->
       alive = true;
       if
       :: logged_commit -> send_commits()   /* recovery re-drives a logged COMMIT */
       :: else -> skip                       /* presumed abort: nothing to do */
       fi }
  :: atomic { alive && logged_commit -> send_commits() }  /* commit retries */
  :: atomic { !deciding && (ps[0] >= COMMITTED && ps[1] >= COMMITTED && ps[2] >= COMMITTED) ->
       break }
  od
}

proctype Participant(byte i) {
  prepare_sent;
  atomic {
    if
    :: vote[i] = 1; ps[i] = PREPARED
    :: vote[i] = 2; ps[i] = ABORTED     /* a NO voter rolls back at once */
    fi
  };
  do
  :: atomic { ps[i] == PREPARED && commit_msg[i] -> ps[i] = COMMITTED }
  :: atomic { ps[i] == PREPARED && abort_msg[i] -> ps[i] = ABORTED }
  :: atomic { ps[i] == PREPARED && alive ->   /* GetDecision */
       if
       :: logged_commit -> ps[i] = COMMITTED
       :: !logged_commit && in_memory && deciding -> skip   /* UNKNOWN: ask again later */
       :: !logged_commit && !(in_memory && deciding) -> ps[i] = ABORTED
       fi }
#ifdef GUESS_WHEN_DOWN
  :: atomic { ps[i] == PREPARED && !alive -> ps[i] = ABORTED }   /* deciding alone: wrong */
#endif
  :: ps[i] != PREPARED -> break
  od
}

init {
  atomic { run Participant(0); run Participant(1); run Participant(2) }
}

ltl agreement { [] !(ANY(COMMITTED) && ANY(ABORTED)) }
ltl validity  { [] (ANY(COMMITTED) -> (vote[0] == 1 && vote[1] == 1 && vote[2] == 1)) }
ltl stability { [] ((ps[0] == COMMITTED) -> [] (ps[0] == COMMITTED)) }
/* Sanity: both outcomes are reachable (each of these must be violated). */
ltl never_commits { [] !ANY(COMMITTED) }
ltl never_aborts  { [] !ANY(ABORTED) }

"""The agents' side of three-phase commit against real PostgreSQL and MariaDB: the record in the
agent's own table (txcoord_3pc) written before every reply, ELECT / PRE_x by the rules of
docs/three-phase.md section 3, and a promise that survives a kill -9 of the agent (the model's
FORGET_PROMISE counterexample is what happens without it).

The Participant RPCs are called directly, as a coordinator or a peer's termination round would;
the agents' reconciler is slowed down so that it does not finish the branches itself."""
import itertools
import unittest

import grpc

from tests.harness import cluster as h
from tests.integration import bank_two_databases as bank

ppb = h.participant_pb2
MEMBERS = ["pg", "my", "third"]
_txn_seq = itertools.count(1)


def ballot(rnd, owner):
    return ppb.Ballot(round=rnd, owner=owner)


class AgentRecords(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = bank.start_bank(reconcile_ms=600_000)

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def stub(self, who):
        return self.c.participant_stub(who)

    def new_ref(self, who):
        return ppb.BranchRef(txn_id=f"n9-1-{next(_txn_seq)}", branch=MEMBERS.index(who))

    def row(self, who, ref):
        gid = f"txc_{ref.txn_id}_{ref.branch}"
        q = ("SELECT state, promised_round, promised_owner, attempted_round, attempted_owner "
             f"FROM txcoord_3pc WHERE gid = '{gid}'")
        rows = (self.c.pgs["bank"].sql(q, db="bank") if who == "pg"
                else self.c.mariadbs["ledger"].sql(q, db="ledger"))
        if not rows:
            return None
        state, pr, po, ar, ao = rows[0]
        return state, int(pr), po, int(ar), ao

    def prepare(self, who, ref, amount=1):
        account = f"{who}4"
        ops = bank.credit(who, account, amount, f"tpc-{ref.txn_id}")
        return self.stub(who).Prepare(ppb.PrepareBranchRequest(
            ref=ref, operations=ops, begin=True, three_phase_members=MEMBERS), timeout=10)

    def elect(self, who, ref, b):
        return self.stub(who).Elect(ppb.ElectRequest(ref=ref, ballot=b), timeout=10)

    def pre_decide(self, who, ref, b, direction):
        return self.stub(who).PreDecide(
            ppb.PreDecideRequest(ref=ref, ballot=b, direction=direction), timeout=10)

    def restart_agent(self, who):
        agent = self.c.agents[who]
        agent.kill()
        agent.start()

    def check_promise_survives_restart(self, who):
        before = bank.balances(self.c)
        ref = self.new_ref(who)
        self.assertEqual(self.prepare(who, ref).vote, ppb.VOTE_YES)
        self.assertEqual(self.row(who, ref), ("W", 1, "", 0, ""))

        r = self.elect(who, ref, ballot(2, "pg"))
        self.assertEqual(r.kind, ppb.TerminationReply.KIND_STATE)
        self.assertEqual(r.state, ppb.TPC_STATE_WAITING)
        self.assertEqual(self.row(who, ref), ("W", 2, "pg", 0, ""))

        self.restart_agent(who)
        # A lower ballot (same round, lower owner) and the coordinator's late PRE_COMMIT(B0) are
        # refused with the promise that the restarted agent read back from its table.
        r = self.elect(who, ref, ballot(2, "a"))
        self.assertEqual(r.kind, ppb.TerminationReply.KIND_NACK)
        self.assertEqual((r.ballot.round, r.ballot.owner), (2, "pg"))
        r = self.pre_decide(who, ref, ballot(1, ""), ppb.PRE_DECISION_PRE_COMMIT)
        self.assertEqual(r.kind, ppb.TerminationReply.KIND_NACK)
        self.assertEqual(self.row(who, ref)[0], "W")

        r = self.pre_decide(who, ref, ballot(3, "third"), ppb.PRE_DECISION_PRE_ABORT)
        self.assertEqual(r.kind, ppb.TerminationReply.KIND_ACK)
        self.assertEqual(self.row(who, ref), ("PA", 3, "third", 3, "third"))

        out = self.stub(who).Rollback(ppb.RollbackBranchRequest(ref=ref, three_phase=True),
                                      timeout=10)
        self.assertEqual(out.result, ppb.BRANCH_RESULT_ABORTED)
        self.assertEqual(self.row(who, ref)[0], "A")
        self.assertEqual(bank.prepared(self.c), [])
        self.assertEqual(bank.balances(self.c), before)
        # The opposite decision is refused, never applied.
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub(who).Commit(ppb.CommitBranchRequest(ref=ref, three_phase=True), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(self.row(who, ref)[0], "A")

    def check_elect_before_vote_aborts(self, who):
        before = bank.balances(self.c)
        ref = self.new_ref(who)
        r = self.elect(who, ref, ballot(2, "third"))
        self.assertEqual(r.kind, ppb.TerminationReply.KIND_DECIDED)
        self.assertEqual(r.state, ppb.TPC_STATE_ABORTED)
        self.assertEqual(self.row(who, ref)[0], "A")
        out = self.prepare(who, ref)
        self.assertEqual(out.vote, ppb.VOTE_NO)
        self.assertIn("termination round", out.reason)
        self.assertEqual(bank.prepared(self.c), [])
        self.assertEqual(bank.balances(self.c), before)

    def check_commit_is_recorded_first(self, who):
        before = bank.balances(self.c)
        ref = self.new_ref(who)
        self.assertEqual(self.prepare(who, ref, amount=7).vote, ppb.VOTE_YES)
        r = self.pre_decide(who, ref, ballot(1, ""), ppb.PRE_DECISION_PRE_COMMIT)
        self.assertEqual(r.kind, ppb.TerminationReply.KIND_ACK)
        self.assertEqual(self.row(who, ref), ("PC", 1, "", 1, ""))
        # A duplicate PRE_COMMIT is acknowledged again.
        r = self.pre_decide(who, ref, ballot(1, ""), ppb.PRE_DECISION_PRE_COMMIT)
        self.assertEqual(r.kind, ppb.TerminationReply.KIND_ACK)
        out = self.stub(who).Commit(ppb.CommitBranchRequest(ref=ref, three_phase=True), timeout=10)
        self.assertEqual(out.result, ppb.BRANCH_RESULT_COMMITTED)
        self.assertEqual(self.row(who, ref)[0], "C")
        self.assertEqual(bank.balances(self.c)[f"{who}4"], before[f"{who}4"] + 7)
        self.assertEqual(bank.prepared(self.c), [])
        r = self.elect(who, ref, ballot(9, "third"))
        self.assertEqual(r.kind, ppb.TerminationReply.KIND_DECIDED)
        self.assertEqual(r.state, ppb.TPC_STATE_COMMITTED)

    def test_bad_requests_are_refused(self):
        ref = self.new_ref("pg")
        for call in (lambda: self.elect("pg", ref, ballot(0, "x")),
                     lambda: self.pre_decide("pg", ref, ballot(2, "x"),
                                             ppb.PRE_DECISION_UNSPECIFIED)):
            with self.assertRaises(grpc.RpcError) as cm:
                call()
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub("pg").Prepare(ppb.PrepareBranchRequest(
                ref=ppb.BranchRef(txn_id=ref.txn_id, branch=5), begin=True,
                three_phase_members=MEMBERS), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


for _who in ("pg", "my"):
    for _check in ("promise_survives_restart", "elect_before_vote_aborts",
                   "commit_is_recorded_first"):
        def _test(self, who=_who, check=_check):
            getattr(self, f"check_{check}")(who)
        setattr(AgentRecords, f"test_{_check}_{'postgres' if _who == 'pg' else 'mariadb'}", _test)


if __name__ == "__main__":
    unittest.main()

"""Crash recovery: kill real processes with SIGKILL at named failpoints, restart, verify.

Each test has one shape: do work, crash at a named point, restart, recover, then check what a
user would check: orders and stock agree, no prepared transaction is left, and every outcome a
client was told is true.
"""
import os
import shutil
import time
import unittest

import grpc

from tests.harness import cluster as h
from tests.integration import bank_fixture as shop

pb = h.coordinator_pb2
ppb = h.participant_pb2


class CrashRecovery(unittest.TestCase):
    def setUp(self):
        self.c = shop.start_shop(reconcile_ms=300)
        self.coord = self.c.coordinator_stub()
        self.stock0 = shop.stock(self.c)

    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e) or \
                getattr(self._outcome, "failures", None):
            print(self.c.logs())
        self.c.stop()

    def restart_coordinator(self, failpoints=None):
        self.c.coordinator.kill()
        self.start_coordinator(failpoints)

    def start_coordinator(self, failpoints=None):
        self.c.coordinator.start(failpoints=failpoints)
        self.coord = self.c.coordinator_stub()  # a fresh channel: the old one saw the crash

    def crash_coordinator_at(self, failpoint, order_id):
        """Restarts the coordinator armed with `failpoint`, runs one order, expects it to die."""
        self.old_incarnation = self._incarnation()
        self.restart_coordinator(failpoints=f"{failpoint}=crash")
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Run(shop.order_request(order_id), timeout=20)
        self.assertIn(cm.exception.code(), (grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.INTERNAL))
        self.assertEqual(self.c.coordinator.wait_exit(), -9, "the failpoint must SIGKILL it")

    def assert_settled(self, order_id, committed):
        h.eventually(lambda: shop.prepared(self.c) == [], timeout=20, what="no prepared txn left")
        self.assertEqual(order_id in shop.orders(self.c), committed)
        self.assertEqual(shop.stock(self.c), self.stock0 - (1 if committed else 0))

    def test_crash_after_decision_logged_commits_everywhere_after_restart(self):
        self.crash_coordinator_at("coord.after_decision_log", "c-after-log")
        # Both branches were prepared, the decision is durable, no Commit was sent.
        self.assertEqual(len(shop.prepared(self.c)), 2)
        self.start_coordinator()
        self.assert_settled("c-after-log", committed=True)
        txn_id = self.c.txn_id(epoch=2, seq=1)
        txns = self.coord.GetDecision(pb.GetDecisionRequest(txn_id=txn_id), timeout=5)
        self.assertEqual(txns.decision, pb.DECISION_COMMIT)
        t = h.eventually(lambda: (lambda t: t if t.state == pb.TXN_STATE_COMMITTED else None)(
            self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=txn_id), timeout=5)),
            what="transaction COMMITTED")
        self.assertEqual([b.state for b in t.branches], [pb.BRANCH_STATE_COMMITTED] * 2)

    def test_a_replaced_data_folder_never_rolls_back_what_an_earlier_incarnation_committed(self):
        # COMMIT is durable, both branches prepared, then the coordinator's data folder is lost
        # (a container without its volume, a replaced disk) and it starts on an empty one.
        self.crash_coordinator_at("coord.after_decision_log", "c-lost-folder")
        lost_id = f"n1-{self.old_incarnation}-2-1"  # the second start's first transaction
        shutil.rmtree(os.path.join(self.c.root, "coord-data"))
        self.start_coordinator()
        self.assertNotEqual(self._incarnation(), self.old_incarnation)
        # The agents ask on every reconcile pass (300 ms); presuming abort would roll back a
        # committed transaction's branches. They must stay prepared, the transaction listed.
        admin = self.c.admin_stub()
        listed = h.eventually(lambda: [t for t in admin.ListTransactions(
            pb.ListTransactionsRequest(states=[pb.TXN_STATE_IN_DOUBT]), timeout=5).transactions
            if t.txn_id == lost_id], timeout=10, what="the lost transaction listed in doubt")
        self.assertIn(f"incarnation {self.old_incarnation}", listed[0].reason)
        self.assertEqual(self.coord.GetDecision(pb.GetDecisionRequest(txn_id=lost_id),
                                                timeout=5).decision, pb.DECISION_UNKNOWN)
        time.sleep(1.0)  # three more reconcile passes
        self.assertEqual(len(shop.prepared(self.c)), 2, "nothing rolled back")
        # The operator, who knows it committed, says so; the agents commit both branches.
        out = admin.ResolveTransaction(pb.ResolveTransactionRequest(
            txn_id=lost_id, decision=pb.DECISION_COMMIT), timeout=5)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        self.assert_settled("c-lost-folder", committed=True)
        fresh = self.coord.Run(shop.order_request("c-new-folder"), timeout=20)
        self.assertEqual(fresh.state, pb.TXN_STATE_COMMITTED)
        self.assertNotEqual(fresh.txn_id, lost_id)

    def _incarnation(self):
        return self.c.admin_stub().GetStats(pb.GetStatsRequest(), timeout=5).incarnation

    def test_crash_before_decision_logged_rolls_back_everywhere(self):
        self.crash_coordinator_at("coord.before_decision_log", "c-before-log")
        # Agents never decide alone: with the coordinator down the branches stay prepared.
        time.sleep(1.0)
        self.assertEqual(len(shop.prepared(self.c)), 2)
        self.start_coordinator()
        self.assert_settled("c-before-log", committed=False)
        txn_id = self.c.txn_id(epoch=2, seq=1)
        self.assertEqual(self.coord.GetDecision(pb.GetDecisionRequest(txn_id=txn_id)).decision,
                         pb.DECISION_ABORT)

    def test_crash_after_first_commit_sent_finishes_the_commit(self):
        self.crash_coordinator_at("coord.after_commit_sent", "c-mid-commit")
        self.start_coordinator()
        self.assert_settled("c-mid-commit", committed=True)

    def test_crash_during_recovery_then_a_second_restart_finishes_the_commit(self):
        self.crash_coordinator_at("coord.after_decision_log", "c-in-recovery")
        # The restart dies again while re-driving the logged COMMIT ...
        self.c.coordinator.start(failpoints="coord.recovery=crash", wait=False)
        self.assertEqual(self.c.coordinator.wait_exit(), -9)
        self.assertEqual(len(shop.prepared(self.c)), 2)
        # ... and the next one finishes it: recovery is itself restartable.
        self.start_coordinator()
        self.assert_settled("c-in-recovery", committed=True)

    def test_agent_crash_before_prepare_aborts_everywhere(self):
        agent = self.c.agents["inventory"]
        agent.kill()
        agent.start(failpoints="agent.before_prepare=crash")
        out = self.coord.Run(shop.order_request("c-agent-before-prep"), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertEqual(agent.wait_exit(), -9)
        agent.start()
        self.assert_settled("c-agent-before-prep", committed=False)

    def test_crash_mid_commit_fan_out_after_the_second_commit_sent(self):
        # The second Commit is sent, then the coordinator dies: one, both or neither may have
        # arrived; recovery re-sends and Commit is idempotent.
        self.restart_coordinator(failpoints="coord.after_commit_sent=crash@2")
        try:
            out = self.coord.Run(shop.order_request("c-fan-out", wait=True), timeout=20)
            # Both acks can come back (and the answer go out) before the sending thread reaches
            # the failpoint; the crash still follows.
            self.assertEqual(out.state, h.coordinator_pb2.TXN_STATE_COMMITTED)
        except grpc.RpcError:
            pass
        self.assertEqual(self.c.coordinator.wait_exit(), -9)
        self.start_coordinator()
        self.assert_settled("c-fan-out", committed=True)

    def test_agent_crash_after_prepare_aborts_and_is_cleaned_up(self):
        agent = self.c.agents["inventory"]
        agent.kill()
        agent.start(failpoints="agent.after_prepare=crash")
        out = self.coord.Run(shop.order_request("c-agent-prep"), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertEqual(agent.wait_exit(), -9)
        # The inventory branch is prepared in PostgreSQL with nobody to finish it ...
        self.assertEqual(len(self.c.pgs["inventory"].prepared("inventory")), 1)
        agent.start()
        # ... until the restarted agent asks the coordinator, which says ABORT.
        self.assert_settled("c-agent-prep", committed=False)

    def test_agent_crash_after_commit_is_proven_committed(self):
        agent = self.c.agents["orders"]
        agent.kill()
        agent.start(failpoints="agent.after_commit=crash")
        out = self.coord.Run(shop.order_request("c-agent-commit", wait=False), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assertEqual(agent.wait_exit(), -9)
        agent.start()
        self.assert_settled("c-agent-commit", committed=True)
        t = h.eventually(lambda: (lambda t: t if t.state == pb.TXN_STATE_COMMITTED else None)(
            self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=out.txn_id), timeout=5)),
            what="every branch acknowledged")
        self.assertEqual([b.state for b in t.branches], [pb.BRANCH_STATE_COMMITTED] * 2)

    def test_agent_killed_mid_interactive_transaction_aborts(self):
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        for p, op in (("orders", h.sql_op("INSERT INTO orders VALUES ('c-inter', 'apple', 1)")),
                      ("inventory", h.sql_op("UPDATE stock SET qty = qty - 1 WHERE sku = 'apple'"))):
            self.coord.Execute(pb.ExecuteRequest(txn_id=txn, participant=p, operation=op), timeout=5)
        self.c.agents["inventory"].kill()
        self.c.agents["inventory"].start()
        out = self.coord.Commit(pb.CommitRequest(txn_id=txn), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assert_settled("c-inter", committed=False)

    def test_committed_outcome_survives_coordinator_restart(self):
        out = self.coord.Run(shop.order_request("c-durable"), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        self.restart_coordinator()
        t = self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=out.txn_id), timeout=5)
        self.assertEqual(t.state, pb.TXN_STATE_COMMITTED)
        fresh = self.coord.Run(shop.order_request("c-durable-2"), timeout=20)
        self.assertNotEqual(fresh.txn_id, out.txn_id)

    def test_database_restart_keeps_a_prepared_branch(self):
        agent = self.c.participant_stub("orders")
        ref = ppb.BranchRef(txn_id="n9-900-1", branch=0)
        vote = agent.Prepare(ppb.PrepareBranchRequest(ref=ref, begin=True, operations=[
            h.sql_op("INSERT INTO orders VALUES ('c-pgrestart', 'apple', 1)")]), timeout=5)
        self.assertEqual(vote.vote, ppb.VOTE_YES)
        pg = self.c.pgs["orders"]
        pg.stop("immediate")
        pg.start()
        self.assertEqual(pg.prepared("orders"), ["txc_n9-900-1_0"])
        # The agent's pooled connection died with the server; the very first call after the
        # restart must still work (dead pooled connections are detected, not used).
        r = agent.Commit(ppb.CommitBranchRequest(ref=ref, native_id=vote.native_id), timeout=5)
        self.assertEqual(r.result, ppb.BRANCH_RESULT_COMMITTED)
        self.assertIn("c-pgrestart", shop.orders(self.c))


class AgentStartup(unittest.TestCase):
    def test_refuses_postgres_without_prepared_transactions(self):
        c = h.Cluster()
        try:
            pg = c.add_postgres("noprep", max_prepared=0)
            c.make_coordinator(["noprep"]).start()
            agent = c.add_agent("noprep", pg.dsn(), start=False)
            agent.start(wait=False)
            self.assertEqual(agent.wait_exit(), 2)
            self.assertIn("max_prepared_transactions", agent.log())
        finally:
            c.stop()

    def test_serves_while_database_and_coordinator_are_down(self):
        c = h.Cluster()
        try:
            c.make_coordinator(["ghost"])  # not started
            agent = c.add_agent("ghost", f"host=127.0.0.1 port={h.free_port()} user=postgres "
                                "connect_timeout=1")
            stub = c.participant_stub("ghost")
            with self.assertRaises(grpc.RpcError) as cm:
                stub.Prepare(ppb.PrepareBranchRequest(ref=ppb.BranchRef(txn_id="n1-1-1"), begin=True,
                                                      operations=[h.sql_op("SELECT 1")]), timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIsNone(agent.proc.poll())
        finally:
            c.stop()


if __name__ == "__main__":
    unittest.main()

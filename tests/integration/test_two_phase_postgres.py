"""2PC over two real PostgreSQL servers through txcoord and two txagents."""
import time
import unittest

import grpc

from tests.harness import cluster as h
from tests.integration import bank_fixture as shop

pb = h.coordinator_pb2
ppb = h.participant_pb2


class TwoPhaseOverPostgres(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = shop.start_shop()
        cls.coord = cls.c.coordinator_stub()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def run_txn(self, req, timeout=20):
        return self.coord.Run(req, timeout=timeout)

    def assertNothingPrepared(self):
        self.assertEqual(h.eventually(lambda: not shop.prepared(self.c) or None, what="no prepared",
                                      timeout=5) and [], [])

    def assertCode(self, code, fn, *args, contains=None):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, timeout=10)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        if contains:
            self.assertIn(contains, cm.exception.details())

    def test_a_fresh_agent_scans_for_three_phase_records_without_failing(self):
        # No three-phase transaction has reached these databases: the agents' termination scan
        # makes the records' table on its first pass instead of failing on every pass.
        time.sleep(1.0)  # several passes at the harness's 300 ms interval
        for name, pg in self.c.pgs.items():
            self.assertEqual(pg.sql("SELECT to_regclass('txcoord_3pc') IS NOT NULL", db=name),
                             [["t"]], name)
        for name, agent in self.c.agents.items():
            self.assertNotIn("scan failed", agent.log(), name)

    def test_order_and_stock_commit_together(self):
        before = shop.stock(self.c)
        out = self.run_txn(shop.order_request("o-commit", qty=2))
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assertIn("o-commit", shop.orders(self.c))
        self.assertEqual(shop.stock(self.c), before - 2)
        self.assertEqual([b.state for b in out.branches],
                         [pb.BRANCH_STATE_COMMITTED, pb.BRANCH_STATE_COMMITTED])
        self.assertEqual(shop.prepared(self.c), [])
        txn = self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=out.txn_id), timeout=5)
        self.assertEqual(txn.state, pb.TXN_STATE_COMMITTED)
        self.assertEqual(self.coord.GetDecision(pb.GetDecisionRequest(txn_id=out.txn_id)).decision,
                         pb.DECISION_COMMIT)

    def test_insufficient_stock_votes_no_and_neither_changes(self):
        out = self.run_txn(shop.order_request("o-nostock", sku="pear"))
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertIn("inventory voted NO", out.reason)
        self.assertIn("expected 1 rows affected, got 0", out.reason)
        self.assertNotIn("o-nostock", shop.orders(self.c))
        self.assertEqual(shop.stock(self.c, "pear"), 0)
        self.assertNothingPrepared()
        self.assertEqual(self.coord.GetDecision(pb.GetDecisionRequest(txn_id=out.txn_id)).decision,
                         pb.DECISION_ABORT)

    def test_sql_error_aborts_both(self):
        req = shop.order_request("o-sqlerr")
        req.branches[1].operations[0].sql.text = "UPDATE no_such_table SET qty = 1"
        req.branches[1].operations[0].sql.ClearField("params")
        before = shop.stock(self.c)
        out = self.run_txn(req)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        self.assertIn("no_such_table", out.reason)
        self.assertNotIn("o-sqlerr", shop.orders(self.c))
        self.assertEqual(shop.stock(self.c), before)
        self.assertNothingPrepared()

    def test_constraint_violation_aborts(self):
        first = self.run_txn(shop.order_request("o-dup"))
        self.assertEqual(first.state, pb.TXN_STATE_COMMITTED)
        before = shop.stock(self.c)
        out = self.run_txn(shop.order_request("o-dup"))  # duplicate primary key
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        self.assertIn("23505", out.reason)
        self.assertEqual(shop.stock(self.c), before)
        self.assertNothingPrepared()

    def test_null_params_and_query_results(self):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch("orders", h.sql_op(
            "INSERT INTO orders (id, sku, qty) VALUES ($1, coalesce($2, 'none'), $3)",
            "o-null", "ignored", 1, nulls=[1])))
        out = self.run_txn(req)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        rows = self.c.pgs["orders"].sql("SELECT sku FROM orders WHERE id = 'o-null'", db="orders")
        self.assertEqual(rows, [["none"]])

    def test_single_branch_commits_in_one_phase(self):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch("orders", h.sql_op(
            "INSERT INTO orders (id, sku, qty) VALUES ($1, 'apple', 1)", "o-1pc")))
        out = self.run_txn(req)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        self.assertIn("o-1pc", shop.orders(self.c))
        self.assertEqual(shop.prepared(self.c), [])

    def test_read_only_branch_leaves_phase_two(self):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch("orders", h.sql_op(
            "INSERT INTO orders (id, sku, qty) VALUES ($1, 'apple', 1)", "o-ro")))
        req.branches.append(h.branch("inventory", h.sql_op("SELECT qty FROM stock")))
        out = self.run_txn(req)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        self.assertEqual(out.branches[1].state, pb.BRANCH_STATE_READ_ONLY)
        self.assertIn("o-ro", shop.orders(self.c))

    def test_bad_requests_get_clear_errors_and_touch_nothing(self):
        IA, NF = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
        before = (shop.orders(self.c), shop.stock(self.c))
        req = shop.order_request("o-bad")
        req.protocol = pb.PROTOCOL_UNSPECIFIED
        self.assertCode(IA, self.coord.Run, req, contains="protocol")
        self.assertCode(IA, self.coord.Run, pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE),
                        contains="branches is empty")
        req = shop.order_request("o-bad")
        req.branches[1].participant = "warehouse"
        self.assertCode(NF, self.coord.Run, req, contains="branches[1].participant 'warehouse'")
        for text in ("COMMIT", "SELECT 1; DELETE FROM stock", "ROLLBACK PREPARED 'x'",
                     "PREPARE TRANSACTION 'x'", "SET autocommit = 0"):
            req = shop.order_request("o-bad")
            req.branches[0].operations[0].sql.text = text
            self.assertCode(IA, self.coord.Run, req, contains="branches[0].operations[0]")
        req = shop.order_request("o-bad")
        req.branches[0].operations[0].sql.null_params.append(9)
        self.assertCode(IA, self.coord.Run, req, contains="null_params")
        req = shop.order_request("o-bad")
        req.branches[0].operations.append(h.common_pb2.Operation())
        self.assertCode(IA, self.coord.Run, req, contains="neither sql nor mongo")
        req = shop.order_request("o-bad")
        req.idempotency_key = "k" * 257
        self.assertCode(IA, self.coord.Run, req, contains="idempotency_key has 257 bytes")
        self.assertCode(IA, self.coord.Begin, pb.BeginRequest(
            protocol=pb.PROTOCOL_TWO_PHASE, idempotency_key="k" * 1000), contains="idempotency_key")
        self.assertCode(IA, self.coord.GetTransaction, pb.GetTransactionRequest(txn_id="x'; --"))
        self.assertCode(NF, self.coord.GetTransaction, pb.GetTransactionRequest(txn_id="n1-999-1"))
        self.assertCode(IA, self.coord.Commit, pb.CommitRequest(txn_id=""))
        self.assertEqual((shop.orders(self.c), shop.stock(self.c)), before)
        self.assertEqual(shop.prepared(self.c), [])

    def test_statement_the_database_cannot_prepare_is_refused_by_the_agent(self):
        req = shop.order_request("o-temp")
        req.branches[0].operations[0].sql.text = "CREATE TEMP TABLE t (a int)"
        req.branches[0].operations[0].sql.ClearField("params")
        out = self.run_txn(req)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        self.assertIn("temporary tables", out.reason)
        self.assertNothingPrepared()

    def test_interactive_begin_execute_commit(self):
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        got = self.coord.Execute(pb.ExecuteRequest(
            txn_id=txn, participant="inventory",
            operation=h.sql_op("SELECT sku, qty FROM stock WHERE sku = $1", "apple")), timeout=5)
        self.assertEqual(list(got.columns), ["sku", "qty"])
        self.assertEqual(got.rows[0].values[0], "apple")
        qty = int(got.rows[0].values[1])
        r = self.coord.Execute(pb.ExecuteRequest(
            txn_id=txn, participant="inventory",
            operation=h.sql_op("UPDATE stock SET qty = qty - 1 WHERE sku = 'apple'", expect=1)),
            timeout=5)
        self.assertEqual(r.rows_affected, 1)
        self.coord.Execute(pb.ExecuteRequest(
            txn_id=txn, participant="orders",
            operation=h.sql_op("INSERT INTO orders VALUES ($1, 'apple', 1)", "o-inter")), timeout=5)
        out = self.coord.Commit(pb.CommitRequest(txn_id=txn, wait_for_completion=True), timeout=10)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        self.assertEqual(shop.stock(self.c), qty - 1)
        self.assertIn("o-inter", shop.orders(self.c))
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.coord.Execute, pb.ExecuteRequest(
            txn_id=txn, participant="orders", operation=h.sql_op("SELECT 1")))
        self.assertEqual(self.coord.Commit(pb.CommitRequest(txn_id=txn), timeout=5).state,
                         pb.TXN_STATE_COMMITTED)

    def test_interactive_rollback_discards_work(self):
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        self.coord.Execute(pb.ExecuteRequest(
            txn_id=txn, participant="orders",
            operation=h.sql_op("INSERT INTO orders VALUES ($1, 'apple', 1)", "o-rolled")), timeout=5)
        out = self.coord.Rollback(pb.RollbackRequest(txn_id=txn), timeout=5)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        self.assertNotIn("o-rolled", shop.orders(self.c))
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.coord.Execute, pb.ExecuteRequest(
            txn_id=txn, participant="orders", operation=h.sql_op("SELECT 1")))

    def test_interactive_failed_expectation_aborts_at_commit(self):
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        self.coord.Execute(pb.ExecuteRequest(
            txn_id=txn, participant="orders",
            operation=h.sql_op("INSERT INTO orders VALUES ($1, 'pear', 1)", "o-inter-no")), timeout=5)
        self.assertCode(grpc.StatusCode.ABORTED, self.coord.Execute, pb.ExecuteRequest(
            txn_id=txn, participant="inventory",
            operation=h.sql_op("UPDATE stock SET qty = qty - 1 WHERE sku = 'pear' AND qty >= 1",
                               expect=1)), contains="expected 1 rows affected, got 0")
        out = self.coord.Commit(pb.CommitRequest(txn_id=txn), timeout=10)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        self.assertNotIn("o-inter-no", shop.orders(self.c))
        self.assertNothingPrepared()

    def test_idempotency_key(self):
        req = shop.order_request("o-idem")
        req.idempotency_key = "client-42"
        first = self.run_txn(req)
        again = self.run_txn(req)
        self.assertEqual(first.txn_id, again.txn_id)
        self.assertEqual(again.state, pb.TXN_STATE_COMMITTED)
        other = shop.order_request("o-idem-other")
        other.idempotency_key = "client-42"
        self.assertCode(grpc.StatusCode.ALREADY_EXISTS, self.coord.Run, other)
        self.assertNotIn("o-idem-other", shop.orders(self.c))


class ParticipantIdempotency(unittest.TestCase):
    """Duplicated and reordered Participant calls, sent straight to an agent. The txn ids name
    node n9, which the coordinator does not own: it answers NOT_FOUND to the agents' in-doubt
    queries, so their reconcilers leave these branches alone."""

    @classmethod
    def setUpClass(cls):
        cls.c = shop.start_shop()

    def setUp(self):
        self.agent = self.c.participant_stub("orders")

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def ref(self, seq):
        return ppb.BranchRef(txn_id=f"n9-777-{seq}", branch=0)

    def prepare(self, seq, order_id):
        return self.agent.Prepare(ppb.PrepareBranchRequest(ref=self.ref(seq), begin=True, operations=[h.sql_op(
            "INSERT INTO orders VALUES ($1, 'apple', 1)", order_id)]), timeout=5)

    def test_commit_twice(self):
        v = self.prepare(1, "p-twice")
        self.assertEqual(v.vote, ppb.VOTE_YES)
        self.assertTrue(v.native_id.isdigit())
        self.assertEqual(self.c.pgs["orders"].prepared("orders"), ["txc_n9-777-1_0"])
        for _ in range(2):
            r = self.agent.Commit(ppb.CommitBranchRequest(ref=self.ref(1), native_id=v.native_id))
            self.assertEqual(r.result, ppb.BRANCH_RESULT_COMMITTED)
        self.assertIn("p-twice", shop.orders(self.c))

    def test_commit_for_unknown_gid_is_not_reported_committed(self):
        r = self.agent.Commit(ppb.CommitBranchRequest(ref=self.ref(2)))
        self.assertEqual(r.result, ppb.BRANCH_RESULT_UNKNOWN)

    def test_prepare_after_rollback_votes_no(self):
        r = self.agent.Rollback(ppb.RollbackBranchRequest(ref=self.ref(3)))
        self.assertEqual(r.result, ppb.BRANCH_RESULT_ABORTED)
        v = self.prepare(3, "p-late")
        self.assertEqual(v.vote, ppb.VOTE_NO)
        self.assertNotIn("p-late", shop.orders(self.c))
        self.assertEqual(self.c.pgs["orders"].prepared("orders"), [])

    def test_prepare_twice_then_rollback(self):
        self.assertEqual(self.prepare(4, "p-p2").vote, ppb.VOTE_YES)
        self.assertEqual(self.agent.Prepare(ppb.PrepareBranchRequest(ref=self.ref(4))).vote,
                         ppb.VOTE_YES)
        self.assertEqual(self.agent.Rollback(ppb.RollbackBranchRequest(ref=self.ref(4))).result,
                         ppb.BRANCH_RESULT_ABORTED)
        self.assertEqual(self.agent.Rollback(ppb.RollbackBranchRequest(ref=self.ref(4))).result,
                         ppb.BRANCH_RESULT_ABORTED)
        self.assertNotIn("p-p2", shop.orders(self.c))

    def test_manual_rollback_prepared_is_detected_at_commit(self):
        v = self.prepare(5, "p-heur")
        self.c.pgs["orders"].sql("ROLLBACK PREPARED 'txc_n9-777-5_0'", db="orders")
        r = self.agent.Commit(ppb.CommitBranchRequest(ref=self.ref(5), native_id=v.native_id))
        self.assertEqual(r.result, ppb.BRANCH_RESULT_ABORTED)
        self.assertIn("rolled back", r.reason)

    def test_lost_one_phase_answer_is_proven_by_the_marker(self):
        r = self.agent.CommitOnePhase(ppb.CommitOnePhaseRequest(
            ref=self.ref(7), begin=True,
            operations=[h.sql_op("INSERT INTO orders VALUES ($1, 'apple', 1)", "p-1pc")]), timeout=5)
        self.assertEqual(r.result, ppb.BRANCH_RESULT_COMMITTED)
        # The agent restarts and forgets; the coordinator, which never got the answer, asks again.
        self.c.agents["orders"].kill()
        self.c.agents["orders"].start()
        agent = self.c.participant_stub("orders")
        again = agent.CommitOnePhase(ppb.CommitOnePhaseRequest(ref=self.ref(7), retry=True),
                                     timeout=5)
        self.assertEqual(again.result, ppb.BRANCH_RESULT_COMMITTED)
        # A first attempt that never arrived: the retry finds no marker, answers ABORTED, and the
        # late original is refused afterwards.
        never = agent.CommitOnePhase(ppb.CommitOnePhaseRequest(ref=self.ref(8), retry=True),
                                     timeout=5)
        self.assertEqual(never.result, ppb.BRANCH_RESULT_ABORTED)
        late = agent.CommitOnePhase(ppb.CommitOnePhaseRequest(
            ref=self.ref(8), begin=True,
            operations=[h.sql_op("INSERT INTO orders VALUES ($1, 'apple', 1)", "p-late1pc")]),
            timeout=5)
        self.assertEqual(late.result, ppb.BRANCH_RESULT_ABORTED)
        self.assertNotIn("p-late1pc", shop.orders(self.c))

    def test_a_one_phase_commit_whose_marker_cannot_be_written_commits_nothing(self):
        # The marker and COMMIT travel in one round trip: when the marker's insert fails (here
        # the gid's marker exists already: a first send after a restart, for a branch that
        # committed before it), the COMMIT behind it must not run.
        first = self.agent.CommitOnePhase(ppb.CommitOnePhaseRequest(
            ref=self.ref(9), begin=True,
            operations=[h.sql_op("INSERT INTO orders VALUES ($1, 'apple', 1)", "p-1pc-a")]),
            timeout=5)
        self.assertEqual(first.result, ppb.BRANCH_RESULT_COMMITTED)
        self.c.agents["orders"].kill()
        self.c.agents["orders"].start()
        agent = self.c.participant_stub("orders")
        again = agent.CommitOnePhase(ppb.CommitOnePhaseRequest(
            ref=self.ref(9), begin=True,
            operations=[h.sql_op("INSERT INTO orders VALUES ($1, 'apple', 1)", "p-1pc-b")]),
            timeout=5)
        self.assertEqual(again.result, ppb.BRANCH_RESULT_ABORTED, again)
        self.assertIn("commit marker", again.reason)
        self.assertIn("p-1pc-a", shop.orders(self.c))
        self.assertNotIn("p-1pc-b", shop.orders(self.c))
        # The session was rolled back and is clean: the next branch on it commits.
        ok = agent.CommitOnePhase(ppb.CommitOnePhaseRequest(
            ref=self.ref(10), begin=True,
            operations=[h.sql_op("INSERT INTO orders VALUES ($1, 'apple', 1)", "p-1pc-c")]),
            timeout=5)
        self.assertEqual(ok.result, ppb.BRANCH_RESULT_COMMITTED, ok)
        self.assertIn("p-1pc-c", shop.orders(self.c))

    def test_bad_ref_is_invalid_argument(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.agent.Prepare(ppb.PrepareBranchRequest(
                ref=ppb.BranchRef(txn_id="x'); DROP TABLE orders; --")), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_list_in_doubt(self):
        self.prepare(6, "p-doubt")
        listed = self.agent.ListInDoubt(ppb.ListInDoubtRequest())
        self.assertIn("txc_n9-777-6_0", [b.native_name for b in listed.branches])
        self.agent.Rollback(ppb.RollbackBranchRequest(ref=self.ref(6)))


if __name__ == "__main__":
    unittest.main()

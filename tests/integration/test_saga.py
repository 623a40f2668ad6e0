"""Sagas end to end over a real PostgreSQL ("pg", database bank) and a real MariaDB ("my",
database ledger): money moves in two local transactions, a failure compensates in reverse, a
coordinator killed mid-saga resumes forward or backward, the barrier table handles retried,
early and late calls delivered on purpose, and a compensation that keeps failing is left as
FAILED_COMPENSATION for an operator.

The check each time is what a user of the bank would look at: balances, the ledger rows, the
outcome the client was told, and the barrier rows the agents wrote.
"""
import unittest

import grpc

from tests.fault.test_operations import txctl, txctl_json
from tests.harness import cluster as h
from tests.integration import bank_two_databases as bank

pb = h.coordinator_pb2
ppb = h.participant_pb2


def step(participant, ops, compensations):
    b = h.branch(participant, *ops)
    b.compensations.extend(compensations)
    return b


def move(tid, src, amount):
    """Step: take `amount` from `src`; compensation: give it back."""
    p = bank.participant_of(src)
    return step(p, bank.debit(p, src, amount, tid), bank.credit(p, src, amount, f"{tid}:undo"))


def give(tid, dst, amount):
    """Step: give `amount` to `dst`; compensation: take it back."""
    p = bank.participant_of(dst)
    return step(p, bank.credit(p, dst, amount, tid), bank.debit(p, dst, amount, f"{tid}:undo"))


def saga(*steps):
    req = pb.RunRequest(protocol=pb.PROTOCOL_SAGA)
    req.branches.extend(steps)
    return req


class Saga(unittest.TestCase):
    def setUp(self):
        self.c = bank.start_bank()
        self.coord = self.c.coordinator_stub()
        self.before = bank.balances(self.c)

    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e):
            print(self.c.logs())
        self.c.stop()

    def expect_balances(self, **delta):
        want = dict(self.before)
        for account, d in delta.items():
            want[account] += d
        self.assertEqual(bank.balances(self.c), want)

    def barrier(self, participant):
        if participant == "pg":
            rows = self.c.pgs["bank"].sql("SELECT gid, op, origin FROM txcoord_saga_barrier",
                                          db="bank")
        else:
            rows = self.c.mariadbs["ledger"].sql(
                "SELECT gid, op, origin FROM txcoord_saga_barrier", db="ledger")
        return sorted(tuple(r) for r in rows)

    def restart_coordinator(self, failpoints=None, wait=True):
        self.c.coordinator.kill()
        self.c.coordinator.start(failpoints=failpoints, wait=wait)
        self.coord = self.c.coordinator_stub()

    def wait_state(self, txn_id, state):
        return h.eventually(lambda: (lambda t: t if t.state == state else None)(
            self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=txn_id), timeout=5)),
            timeout=30, what=f"{txn_id} {pb.TxnState.Name(state)}")

    def test_saga_moves_money_from_postgres_to_mariadb(self):
        out = self.coord.Run(saga(move("s1", "pg0", 30), give("s1", "my0", 30)), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assertEqual([b.state for b in out.branches], [pb.BRANCH_STATE_COMMITTED] * 2)
        self.expect_balances(pg0=-30, my0=30)
        self.assertEqual(bank.ledger(self.c)["s1"], {"pg0": -30, "my0": 30})
        self.assertEqual(bank.prepared(self.c), [], "sagas prepare nothing")
        t = self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=out.txn_id), timeout=5)
        self.assertEqual((t.protocol, t.state), (pb.PROTOCOL_SAGA, pb.TXN_STATE_COMMITTED))

    def test_a_failing_step_compensates_the_done_ones_in_reverse(self):
        # Step 2 credits an account that does not exist: expect_rows_affected fails.
        out = self.coord.Run(saga(move("s2", "pg0", 10), move("s2", "pg1", 20),
                                  give("s2", "my404", 30)), timeout=30)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertIn("step 2 (participant my) failed: operations[0]: expected 1 rows affected",
                      out.reason)
        self.assertEqual([b.state for b in out.branches], [pb.BRANCH_STATE_COMPENSATED] * 3)
        self.expect_balances()
        ledger = bank.ledger(self.c)
        self.assertEqual(ledger["s2"], {"pg0": -10, "pg1": -20})
        self.assertEqual(ledger["s2:undo"], {"pg0": 10, "pg1": 20})
        # The failed step's compensation found nothing to undo and fenced the step off.
        self.assertEqual(self.barrier("my"), [
            (f"txc_{out.txn_id}_2", "action", "compensation"),
            (f"txc_{out.txn_id}_2", "compensation", "compensation")])
        self.assertEqual(self.barrier("pg"), sorted(
            [(f"txc_{out.txn_id}_{i}", op, op) for i in (0, 1)
             for op in ("action", "compensation")]))

    def test_coordinator_killed_between_steps_resumes_forward(self):
        self.restart_coordinator(failpoints="coord.saga_before_step=crash@2")
        with self.assertRaises(grpc.RpcError):
            self.coord.Run(saga(move("s3", "pg0", 5), give("s3", "my1", 5)), timeout=20)
        self.assertEqual(self.c.coordinator.wait_exit(), -9)
        self.expect_balances(pg0=-5)  # step 0 ran, step 1 did not
        self.restart_coordinator()
        listed = txctl_json(self.c, "list")["transactions"]
        self.assertEqual(len(listed), 1)
        self.wait_state(listed[0]["txn_id"], pb.TXN_STATE_COMMITTED)
        self.expect_balances(pg0=-5, my1=5)  # and step 0 ran once, not twice
        self.assertEqual(bank.ledger(self.c)["s3"], {"pg0": -5, "my1": 5})

    def test_coordinator_killed_while_compensating_resumes_backward(self):
        # Compensations: step 2 (hit 1), then step 1 (hit 2): the coordinator dies before it.
        self.restart_coordinator(failpoints="coord.saga_before_compensation=crash@2")
        with self.assertRaises(grpc.RpcError):
            self.coord.Run(saga(move("s4", "pg0", 7), move("s4", "my0", 8),
                                give("s4", "pg404", 15)), timeout=30)
        self.assertEqual(self.c.coordinator.wait_exit(), -9)
        self.expect_balances(pg0=-7, my0=-8)
        self.restart_coordinator()
        txn_id = txctl_json(self.c, "list")["transactions"][0]["txn_id"]
        t = self.wait_state(txn_id, pb.TXN_STATE_ABORTED)
        self.assertEqual([b.state for b in t.branches], [pb.BRANCH_STATE_COMPENSATED] * 3)
        self.expect_balances()
        self.assertEqual(bank.ledger(self.c)["s4:undo"], {"pg0": 7, "my0": 8})

    def test_barrier_orders_delivered_on_purpose(self):
        for p, account in (("pg", "pg2"), ("my", "my2")):
            with self.subTest(participant=p):
                agent = self.c.participant_stub(p)
                do = ppb.ExecuteLocalRequest(ref=ppb.BranchRef(txn_id="n9-1-1", branch=0 if p == "pg" else 1))
                do.operations.extend(bank.debit(p, account, 1, f"b-{p}"))
                undo = ppb.CompensateRequest(ref=do.ref)
                undo.operations.extend(bank.credit(p, account, 1, f"b-{p}:undo"))
                # A retried step runs once.
                first = agent.ExecuteLocal(do, timeout=5)
                again = agent.ExecuteLocal(do, timeout=5)
                self.assertEqual((first.result, first.already_done), (ppb.LOCAL_RESULT_DONE, False))
                self.assertEqual((again.result, again.already_done), (ppb.LOCAL_RESULT_DONE, True))
                self.assertEqual(bank.balances(self.c)[account], self.before[account] - 1)
                # A retried compensation runs once.
                c1, c2 = agent.Compensate(undo, timeout=5), agent.Compensate(undo, timeout=5)
                self.assertEqual((c1.result, c1.null_compensation, c1.already_done),
                                 (ppb.LOCAL_RESULT_DONE, False, False))
                self.assertEqual((c2.result, c2.already_done), (ppb.LOCAL_RESULT_DONE, True))
                self.assertEqual(bank.balances(self.c)[account], self.before[account])
                # A compensation before its step does nothing, and the late step is refused.
                late = ppb.ExecuteLocalRequest(ref=ppb.BranchRef(txn_id="n9-1-2", branch=do.ref.branch))
                late.operations.extend(bank.debit(p, account, 1, f"late-{p}"))
                early = ppb.CompensateRequest(ref=late.ref)
                early.operations.extend(bank.credit(p, account, 1, f"late-{p}:undo"))
                null = agent.Compensate(early, timeout=5)
                self.assertEqual((null.result, null.null_compensation), (ppb.LOCAL_RESULT_DONE, True))
                refused = agent.ExecuteLocal(late, timeout=5)
                self.assertEqual(refused.result, ppb.LOCAL_RESULT_REFUSED)
                self.assertEqual(bank.balances(self.c)[account], self.before[account])
                self.assertNotIn(f"late-{p}", bank.ledger(self.c))
                # A malformed ref is refused before the database is touched.
                with self.assertRaises(grpc.RpcError) as cm:
                    agent.ExecuteLocal(ppb.ExecuteLocalRequest(ref=ppb.BranchRef(txn_id="x;")),
                                       timeout=5)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_a_compensation_that_keeps_failing_is_left_for_an_operator(self):
        # Step 0's compensation credits an account that does not exist: it can never succeed.
        broken = step("pg", bank.debit("pg", "pg3", 4, "s6"),
                      bank.credit("pg", "pg404", 4, "s6:undo"))
        out = self.coord.Run(saga(broken, give("s6", "my404", 4)), timeout=60)
        self.assertEqual(out.state, pb.TXN_STATE_FAILED_COMPENSATION, out)
        self.assertIn("the compensation of step 0 (participant pg) failed 8 times", out.reason)
        self.assertEqual(out.branches[0].state, pb.BRANCH_STATE_HEURISTIC)
        self.expect_balances(pg3=-4)  # the money is gone from pg3 until someone fixes it
        self.c.coordinator.kill()
        self.c.coordinator.start()
        listed = txctl_json(self.c, "list", "--state", "failed-compensation")["transactions"]
        self.assertEqual([t["txn_id"] for t in listed], [out.txn_id])
        self.assertEqual(int(txctl_json(self.c, "stats")["heuristic_records"]), 1)
        shown = txctl(self.c, "show", out.txn_id).stdout
        self.assertIn("state:     FAILED_COMPENSATION", shown)

    def test_bad_saga_requests_are_refused(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_SAGA), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        bad = saga(move("s7", "pg0", 1))
        bad.branches[0].compensations[0].sql.text = "COMMIT"
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Run(bad, timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("branches[0].compensations[0]", cm.exception.details())
        self.expect_balances()


if __name__ == "__main__":
    unittest.main()

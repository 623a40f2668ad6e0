"""The last-resource protocol (DESIGN.md section 3) end to end, with a PostgreSQL agent run with
--last-resource standing in for a database that cannot prepare (MongoDB): the other branches
prepare, the coordinator logs committing_last, commits the last resource in one phase (its commit
marker in the same transaction), logs the outcome, then finishes the others. Crashes between those
steps must end the same way everywhere."""
import unittest

import grpc

from tests.harness import cluster as h
from tests.integration import bank_fixture as shop

pb = h.coordinator_pb2


def start_shop_with_last_resource(both=False):
    """inventory (and with `both`, orders too) run as agents that cannot prepare."""
    c = h.Cluster(reconcile_ms=300)
    last = {"inventory", "orders"} if both else {"inventory"}
    try:
        for name, schema in (("orders", shop.ORDERS_SCHEMA), ("inventory", shop.STOCK_SCHEMA)):
            pg = c.add_postgres(name, max_prepared=0 if name in last else 20)
            pg.sql(f"CREATE DATABASE {name}")
            pg.sql(schema, db=name)
        c.make_coordinator(["orders", "inventory"]).start()
        for name in ("orders", "inventory"):
            c.add_agent(name, c.pgs[name].dsn(name),
                        extra=("--last-resource",) if name in last else ())
    except Exception:
        c.stop()
        raise
    return c


class LastResource(unittest.TestCase):
    def setUp(self):
        self.c = start_shop_with_last_resource()
        self.coord = self.c.coordinator_stub()
        self.stock0 = shop.stock(self.c)
        # The coordinator learns which agents cannot prepare from their Describe answers.
        h.eventually(self.ready, timeout=15, what="agents described")

    def ready(self):
        """True once the coordinator knows inventory cannot prepare: a Run with two inventory
        branches is then refused (FAILED_PRECONDITION) instead of UNAVAILABLE, touching nothing."""
        try:
            self.coord.Run(pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, branches=[
                h.branch("inventory", h.sql_op("SELECT 1")),
                h.branch("inventory", h.sql_op("SELECT 1"))]), timeout=5)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return True
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        return False

    def tearDown(self):
        self.c.stop()

    def markers(self):
        return [r[0] for r in self.c.pgs["inventory"].sql("SELECT gid FROM txcoord_markers",
                                                          db="inventory")]

    def assert_settled(self, order_id, committed):
        h.eventually(lambda: shop.prepared(self.c) == [], timeout=20, what="nothing prepared")
        self.assertEqual(order_id in shop.orders(self.c), committed)
        self.assertEqual(shop.stock(self.c), self.stock0 - (1 if committed else 0))

    def restart_coordinator(self, failpoints=None):
        self.c.coordinator.kill()
        self.c.coordinator.start(failpoints=failpoints)
        self.coord = self.c.coordinator_stub()
        h.eventually(self.ready, timeout=15, what="agents described")

    def test_commit_with_a_last_resource(self):
        out = self.coord.Run(shop.order_request("lr-commit"), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assert_settled("lr-commit", committed=True)
        self.assertEqual(self.markers(), [f"txc_{out.txn_id}_1"])

    def test_last_resource_voting_no_aborts_the_others(self):
        out = self.coord.Run(shop.order_request("lr-pear", sku="pear"), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertIn("expected 1 rows affected, got 0", out.reason)
        self.assert_settled("lr-pear", committed=False)

    def test_two_branches_that_cannot_prepare_are_refused(self):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, branches=[
            h.branch("inventory", h.sql_op("SELECT 1")),
            h.branch("inventory", h.sql_op("SELECT 2"))])
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Run(req, timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("allow_heuristic", cm.exception.details())

    def test_crash_after_committing_last_logged_aborts(self):
        self.restart_coordinator(failpoints="coord.after_committing_last_log=crash")
        with self.assertRaises(grpc.RpcError):
            self.coord.Run(shop.order_request("lr-crash-before"), timeout=20)
        self.assertEqual(self.c.coordinator.wait_exit(), -9)
        self.assertEqual(len(self.c.pgs["orders"].prepared("orders")), 1)
        self.restart_coordinator()
        # The last resource was never asked to commit: recovery asks it, it has no marker and
        # refuses the commit from now on, so the prepared orders branch rolls back.
        self.assert_settled("lr-crash-before", committed=False)
        self.assertEqual(self.markers(), [])

    def test_crash_after_the_last_resource_committed_commits_everywhere(self):
        self.restart_coordinator(failpoints="coord.after_last_resource_reply=crash")
        with self.assertRaises(grpc.RpcError):
            self.coord.Run(shop.order_request("lr-crash-after"), timeout=20)
        self.assertEqual(self.c.coordinator.wait_exit(), -9)
        # The inventory change is committed, the order still prepared.
        self.assertEqual(shop.stock(self.c), self.stock0 - 1)
        self.assertEqual(len(self.c.pgs["orders"].prepared("orders")), 1)
        self.restart_coordinator()
        self.assert_settled("lr-crash-after", committed=True)

    def test_agent_refuses_prepare_in_last_resource_mode(self):
        stub = self.c.participant_stub("inventory")
        with self.assertRaises(grpc.RpcError) as cm:
            stub.Prepare(h.participant_pb2.PrepareBranchRequest(
                ref=h.participant_pb2.BranchRef(txn_id="n9-1-1"), begin=True,
                operations=[h.sql_op("SELECT 1")]), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        d = stub.Describe(h.participant_pb2.DescribeRequest(), timeout=5)
        self.assertFalse(d.supports_prepare)
        self.assertEqual(d.backend, "postgres")


class AllowHeuristic(unittest.TestCase):
    """Both participants cannot prepare: refused, unless the client opts into allow_heuristic; then
    a mixed outcome is reported as HEURISTIC_MIXED, never hidden."""

    def setUp(self):
        self.c = start_shop_with_last_resource(both=True)
        self.coord = self.c.coordinator_stub()
        h.eventually(self.described, timeout=15, what="agents described")

    def tearDown(self):
        self.c.stop()

    def described(self):
        try:
            self.coord.Run(shop.order_request("probe"), timeout=5)
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.FAILED_PRECONDITION
        return False

    def test_refused_without_allow_heuristic(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Run(shop.order_request("ah-refused"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertNotIn("ah-refused", shop.orders(self.c))

    def test_commits_when_both_commit(self):
        req = shop.order_request("ah-ok")
        req.allow_heuristic = True
        out = self.coord.Run(req, timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assertIn("ah-ok", shop.orders(self.c))

    def test_mixed_outcome_is_reported(self):
        stock = shop.stock(self.c, "pear")
        req = shop.order_request("ah-mixed", sku="pear")  # inventory aborts after orders committed
        req.allow_heuristic = True
        out = self.coord.Run(req, timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_HEURISTIC_MIXED, out)
        self.assertEqual(out.branches[1].state, pb.BRANCH_STATE_HEURISTIC)
        self.assertIn("ah-mixed", shop.orders(self.c))
        self.assertEqual(shop.stock(self.c, "pear"), stock)
        t = self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=out.txn_id), timeout=5)
        self.assertEqual(t.state, pb.TXN_STATE_HEURISTIC_MIXED)


if __name__ == "__main__":
    unittest.main()

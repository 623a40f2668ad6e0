"""Network partitions between the coordinator and one agent (both directions cut through
FaultProxies: packets dropped, or connections reset), and a coordinator frozen with SIGSTOP.

The promise checked each time: once the link heals (or the process thaws), every transaction
ends the same way on both databases, nothing stays prepared, and what the client was told is
true. While the link is cut, an agent holding a prepared branch waits: it never decides alone.
"""
import threading
import time
import unittest

from tests.harness import cluster as h
from tests.integration import bank_fixture as shop

pb = h.coordinator_pb2
ppb = h.participant_pb2


class Partitions(unittest.TestCase):
    def start(self, coordinator_failpoints=None, agent_extra=()):
        self.c = shop.start_shop(reconcile_ms=200, partitionable=["inventory"],
                                 agent_extra=agent_extra)
        if coordinator_failpoints:
            self.c.coordinator.kill()
            self.c.coordinator.start(failpoints=coordinator_failpoints)
        self.coord = self.c.coordinator_stub()
        self.stock0 = shop.stock(self.c)

    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e):
            print(self.c.logs())
        self.c.stop()

    def run_in_background(self, order_id, wait=False):
        result = {}

        def call():
            try:
                result["out"] = self.coord.Run(shop.order_request(order_id, wait=wait),
                                               timeout=30)
            except Exception as e:  # noqa: BLE001 - reported by the test
                result["error"] = e
        t = threading.Thread(target=call)
        t.start()
        return t, result

    def assert_settled(self, order_id, committed):
        h.eventually(lambda: shop.prepared(self.c) == [], timeout=30,
                     what="nothing left prepared")
        self.assertEqual(order_id in shop.orders(self.c), committed)
        self.assertEqual(shop.stock(self.c), self.stock0 - (1 if committed else 0))

    def check_partition_during_prepare(self, mode):
        self.start()
        self.c.partition("inventory", mode)
        out = self.coord.Run(shop.order_request("p-1"), timeout=30)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertIn("inventory", out.reason)
        self.c.heal("inventory")
        # A Prepare held in the cut link may still arrive after healing: it must not commit.
        self.assert_settled("p-1", committed=False)
        time.sleep(1.0)
        self.assert_settled("p-1", committed=False)
        # Healed: work goes through again (once the circuit, if it opened, closes).
        out = h.eventually(lambda: (lambda o: o if o.state == pb.TXN_STATE_COMMITTED else None)(
            self.coord.Run(shop.order_request(f"p-2-{time.monotonic_ns()}"), timeout=30)),
            timeout=20, what="a transfer commits after healing")
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)

    def test_blackhole_during_prepare_aborts_everywhere(self):
        self.check_partition_during_prepare("blackhole")

    def test_reset_during_prepare_aborts_everywhere(self):
        self.check_partition_during_prepare("reset")

    def check_partition_during_commit(self, mode):
        # The commits are held back 2 s after the decision is durable: the link is cut then.
        self.start(coordinator_failpoints="coord.after_decision_log=delay(2000)")
        t, result = self.run_in_background("c-1", wait=False)
        h.eventually(lambda: len(shop.prepared(self.c)) == 2, what="both branches prepared")
        self.c.partition("inventory", mode)
        t.join(timeout=30)
        self.assertEqual(result["out"].state, pb.TXN_STATE_COMMITTED, result)
        txn_id = result["out"].txn_id
        # orders commits; inventory cannot hear the decision and cannot ask for it: it waits,
        # prepared, across several of its reconcile rounds.
        h.eventually(lambda: self.c.pgs["orders"].prepared("orders") == [],
                     what="orders committed")
        time.sleep(2.0)
        self.assertEqual(len(self.c.pgs["inventory"].prepared("inventory")), 1,
                         "an agent cut off from the coordinator must not decide alone")
        self.assertEqual(shop.stock(self.c), self.stock0)
        state = self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=txn_id), timeout=5)
        self.assertEqual(state.state, pb.TXN_STATE_COMMITTING)
        self.c.heal("inventory")
        self.assert_settled("c-1", committed=True)
        h.eventually(lambda: self.coord.GetTransaction(
            pb.GetTransactionRequest(txn_id=txn_id), timeout=5).state == pb.TXN_STATE_COMMITTED,
            timeout=20, what="the transaction reads COMMITTED")

    def test_blackhole_during_commit_commits_after_healing(self):
        self.check_partition_during_commit("blackhole")

    def test_reset_during_commit_commits_after_healing(self):
        self.check_partition_during_commit("reset")


class FrozenCoordinator(unittest.TestCase):
    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e):
            print(self.c.logs())
        self.c.stop()

    def test_sigstop_in_the_in_doubt_window_agents_wait_then_commit(self):
        self.c = shop.start_shop(reconcile_ms=200)
        self.c.coordinator.kill()
        self.c.coordinator.start(failpoints="coord.after_decision_log=delay(1500)")
        coord = self.c.coordinator_stub()
        stock0 = shop.stock(self.c)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            out=coord.Run(shop.order_request("s-1", wait=True), timeout=60)))
        t.start()
        h.eventually(lambda: len(shop.prepared(self.c)) == 2, what="both branches prepared")
        self.c.coordinator.pause()
        # Far past the agents' reconcile interval and RPC deadlines: they ask, get no answer,
        # and keep the branches prepared.
        time.sleep(4.0)
        self.assertEqual(len(shop.prepared(self.c)), 2)
        self.c.coordinator.resume()
        t.join(timeout=60)
        self.assertEqual(result["out"].state, pb.TXN_STATE_COMMITTED)
        h.eventually(lambda: shop.prepared(self.c) == [], what="nothing left prepared")
        self.assertEqual(shop.orders(self.c), ["s-1"])
        self.assertEqual(shop.stock(self.c), stock0 - 1)

    def test_sigstop_past_the_agents_idle_timeout_aborts_an_interactive_transaction(self):
        self.c = shop.start_shop(reconcile_ms=200, agent_extra=["--idle-timeout-ms", "1000"])
        coord = self.c.coordinator_stub()
        stock0 = shop.stock(self.c)
        txn = coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        req = shop.order_request("s-2")
        for b in req.branches:
            coord.Execute(pb.ExecuteRequest(txn_id=txn, participant=b.participant,
                                            operation=b.operations[0]), timeout=5)
        self.c.coordinator.pause()
        time.sleep(3.0)  # the agents roll back their idle, unprepared branches
        self.c.coordinator.resume()
        out = coord.Commit(pb.CommitRequest(txn_id=txn, wait_for_completion=True), timeout=30)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        h.eventually(lambda: shop.prepared(self.c) == [], what="nothing left prepared")
        self.assertEqual(shop.orders(self.c), [])
        self.assertEqual(shop.stock(self.c), stock0)


if __name__ == "__main__":
    unittest.main()

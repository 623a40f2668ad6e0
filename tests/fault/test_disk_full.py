"""A full disk (and an injected RocksDB write error) under the coordinator's decision log. The full
disk is a small tmpfs mounted in a private mount namespace (a holder process keeps it alive across
coordinator restarts; txcoord runs inside it with nsenter), filled from outside through
/proc/PID/root.

Checked: the decision that cannot be written is never acted on (both branches stay prepared, the
client hears IN_DOUBT, not COMMITTED); the coordinator fails closed (UNAVAILABLE, health
NOT_SERVING, `txctl stats` says so); an operator's resolution cannot be written either while the
disk is full; once space is freed the coordinator accepts again without a restart, and the
operator's `txctl resolve ... commit` finishes the transaction on both databases.
"""
import os
import subprocess
import time
import unittest

import grpc

from tests.harness import cluster as h
from tests.integration import bank_fixture as shop
from tests.fault.test_operations import txctl, txctl_json

pb = h.coordinator_pb2
TMPFS_MB = 8
MIN_FREE_MB = 2


class DiskFull(unittest.TestCase):
    def setUp(self):
        self.c = shop.start_shop(coordinator_extra=["--log-min-free-mb", str(MIN_FREE_MB)])
        # Move the coordinator onto a small tmpfs only it can see.
        self.c.coordinator.kill()
        self.data = os.path.join(self.c.root, "coord-data")
        os.makedirs(self.data, exist_ok=True)
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount -t tmpfs -o size={TMPFS_MB}m tmpfs "$0" && echo mounted && exec sleep 3600',
             self.data], stdout=subprocess.PIPE, text=True)
        self.assertEqual(self.holder.stdout.readline().strip(), "mounted")
        self.c.coordinator.argv = ["nsenter", "-t", str(self.holder.pid), "-m",
                                   *self.c.coordinator.argv]
        self.c.coordinator.start()
        self.coord = self.c.coordinator_stub()
        self.inside = f"/proc/{self.holder.pid}/root{self.data}"
        self.stock0 = shop.stock(self.c)

    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e):
            print(self.c.logs())
        self.c.stop()
        self.holder.kill()
        self.holder.wait()

    def free_bytes(self):
        st = os.statvfs(self.inside)
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes):
        with open(os.path.join(self.inside, "filler"), "wb") as f:
            f.write(b"\0" * max(0, self.free_bytes() - leave_bytes))

    def serving(self):
        """grpc.health.v1 Check for the whole server, by hand (Debian has no grpc_health module):
        an empty request; the answer's field 1 is 1 for SERVING, 2 for NOT_SERVING."""
        with grpc.insecure_channel(f"127.0.0.1:{self.c.coordinator.port}") as ch:
            check = ch.unary_unary("/grpc.health.v1.Health/Check")
            return {b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(
                check(b"", timeout=5), "?")

    def test_full_disk_fails_closed_and_an_operator_resolves_after_space_is_freed(self):
        self.assertEqual(self.coord.Run(shop.order_request("d-1"), timeout=10).state,
                         pb.TXN_STATE_COMMITTED)
        self.fill(leave_bytes=MIN_FREE_MB * 1024 * 1024 // 2)

        out = self.coord.Run(shop.order_request("d-2", wait=False), timeout=10)
        self.assertEqual(out.state, pb.TXN_STATE_IN_DOUBT, out)
        self.assertIn("KiB free", out.reason)
        # Nothing acted on the unwritten decision.
        self.assertEqual(len(shop.prepared(self.c)), 2)
        self.assertEqual(shop.orders(self.c), ["d-1"])
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Run(shop.order_request("d-3"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        h.eventually(lambda: self.serving() == "NOT_SERVING",
                     what="health NOT_SERVING")
        self.assertIn("accepting:          NO", txctl(self.c, "stats").stdout)
        listed = txctl_json(self.c, "list", "--state", "in-doubt")["transactions"]
        self.assertEqual([t["txn_id"] for t in listed], [out.txn_id])
        # The agents ask about their prepared branches and hear UNKNOWN: they keep waiting.
        time.sleep(1.0)
        self.assertEqual(len(shop.prepared(self.c)), 2)

        # Resolving while the disk is still full cannot be written: still in doubt.
        txctl(self.c, "resolve", out.txn_id, "commit")
        time.sleep(0.5)
        self.assertEqual(txctl_json(self.c, "show", out.txn_id)["state"], "TXN_STATE_IN_DOUBT")
        self.assertEqual(len(shop.prepared(self.c)), 2)

        os.remove(os.path.join(self.inside, "filler"))
        h.eventually(lambda: self.serving() == "SERVING",
                     what="accepting again without a restart")
        h.eventually(lambda: txctl(self.c, "resolve", out.txn_id, "commit").returncode == 0,
                     what="resolution accepted")
        h.eventually(lambda: txctl_json(self.c, "show", out.txn_id)["state"] ==
                     "TXN_STATE_COMMITTED", what="resolved transaction committed")
        h.eventually(lambda: shop.prepared(self.c) == [], what="nothing left prepared")
        self.assertEqual(shop.orders(self.c), ["d-1", "d-2"])
        self.assertEqual(shop.stock(self.c), self.stock0 - 2)
        self.assertEqual(self.coord.Run(shop.order_request("d-4"), timeout=10).state,
                         pb.TXN_STATE_COMMITTED)
        # And the decision survives a restart.
        self.c.coordinator.kill()
        self.c.coordinator.start()
        self.coord = self.c.coordinator_stub()
        self.assertEqual(self.coord.GetDecision(pb.GetDecisionRequest(txn_id=out.txn_id),
                                                timeout=5).decision, pb.DECISION_COMMIT)


class InjectedWriteError(unittest.TestCase):
    """A RocksDB write that fails (the `log.write` failpoint returns the error a failed WAL append
    would): the decision is not acted on, the coordinator refuses work until its probe writes
    again, and an operator finishes the transaction."""

    def setUp(self):
        self.c = shop.start_shop()
        self.coord = self.c.coordinator_stub()
        self.stock0 = shop.stock(self.c)

    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e):
            print(self.c.logs())
        self.c.stop()

    def test_failed_decision_write_sends_no_commit(self):
        self.c.coordinator.kill()
        self.c.coordinator.start(failpoints="log.write=error@1")
        out = self.coord.Run(shop.order_request("w-1", wait=False), timeout=10)
        self.assertEqual(out.state, pb.TXN_STATE_IN_DOUBT, out)
        self.assertIn("IO error", out.reason)
        self.assertEqual(len(shop.prepared(self.c)), 2)
        self.assertEqual(shop.orders(self.c), [])
        h.eventually(lambda: "refusing new transactions" in self.c.coordinator.log(),
                     what="fail-closed log line")
        # The probe writes again (the injected error fired once): the operator's resolution is
        # accepted without a restart, and new transactions run.
        h.eventually(lambda: txctl(self.c, "resolve", out.txn_id, "abort").returncode == 0,
                     what="resolution accepted")
        h.eventually(lambda: shop.prepared(self.c) == [], what="nothing left prepared")
        h.eventually(lambda: "decision log writable again" in self.c.coordinator.log(),
                     what="the probe's write succeeded")
        h.eventually(lambda: DiskFull.serving(self) == "SERVING", what="health SERVING")
        self.assertEqual(self.coord.Run(shop.order_request("w-2"), timeout=10).state,
                         pb.TXN_STATE_COMMITTED)
        self.assertEqual(shop.orders(self.c), ["w-2"])
        self.assertEqual(shop.stock(self.c), self.stock0 - 1)
        self.assertEqual(self.coord.GetDecision(pb.GetDecisionRequest(txn_id=out.txn_id),
                                                timeout=5).decision, pb.DECISION_ABORT)


if __name__ == "__main__":
    unittest.main()

"""What an operator sees and does, against real PostgreSQL and our daemons: txctl, circuit
breaking when an agent dies, a manual ROLLBACK PREPARED behind the coordinator's back
(HEURISTIC_MIXED, never forgotten), and a full disk under the decision log (fail closed, then
resolve by hand)."""
import json
import os
import re
import subprocess
import threading
import time
import unittest
import urllib.request

import grpc

from tests.harness import cluster as h
from tests.integration import bank_fixture as shop

pb = h.coordinator_pb2


def txctl(c, *args, expect_rc=0):
    out = subprocess.run([os.path.join(h.BIN, "txctl"), "--coordinator",
                          f"127.0.0.1:{c.coordinator.port}", *args],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != expect_rc:
        raise AssertionError(f"txctl {' '.join(args)} exited {out.returncode}, want {expect_rc}:"
                             f"\n{out.stdout}\n{out.stderr}")
    return out


def txctl_json(c, *args):
    return json.loads(txctl(c, "--json", *args).stdout)


class Operations(unittest.TestCase):
    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e):
            print(self.c.logs())
        self.c.stop()

    def participant(self, name):
        return next(p for p in txctl_json(self.c, "participants")["participants"]
                    if p["name"] == name)

    def test_participants_health_and_circuit_follow_a_dead_agent(self):
        self.c = shop.start_shop(coordinator_extra=["--circuit-failures", "3",
                                                    "--circuit-open-ms", "500"])
        coord = self.c.coordinator_stub()
        h.eventually(lambda: self.participant("inventory")["health"] ==
                     "PARTICIPANT_HEALTH_SERVING", what="inventory probed")
        self.assertEqual(coord.Run(shop.order_request("o-1"), timeout=10).state,
                         pb.TXN_STATE_COMMITTED)
        table = txctl(self.c, "participants").stdout
        self.assertRegex(table, r"inventory\s+127\.0\.0\.1:\d+\s+postgres\s+SERVING\s+CLOSED")

        self.c.agents["inventory"].kill()
        p = h.eventually(lambda: (lambda p: p if p["circuit"] == "CIRCUIT_STATE_OPEN" else None)(
            self.participant("inventory")), what="inventory circuit open")
        self.assertEqual(p["health"], "PARTICIPANT_HEALTH_NOT_SERVING")
        self.assertIn("OPEN until", txctl(self.c, "participants").stdout)
        # New work touching it fails fast instead of waiting out the prepare timeout.
        started = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            coord.Run(shop.order_request("o-2"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("participant inventory is unavailable (circuit open", cm.exception.details())
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertNotIn("o-2", shop.orders(self.c), "nothing ran on the healthy participant")
        self.assertEqual(shop.prepared(self.c), [])

        self.c.agents["inventory"].start()
        h.eventually(lambda: self.participant("inventory")["circuit"] == "CIRCUIT_STATE_CLOSED",
                     what="circuit closed after the agent came back")
        self.assertEqual(coord.Run(shop.order_request("o-3"), timeout=10).state,
                         pb.TXN_STATE_COMMITTED)
        self.assertEqual(shop.orders(self.c), ["o-1", "o-3"])

    def test_manual_rollback_prepared_is_heuristic_mixed_and_never_forgotten(self):
        self.c = shop.start_shop()
        # Hold the commits back for a while after the decision is durable: the operator's window.
        self.c.coordinator.kill()
        self.c.coordinator.start(failpoints="coord.after_decision_log=delay(4000)")
        coord = self.c.coordinator_stub()
        result = {}
        client = threading.Thread(target=lambda: result.update(
            out=coord.Run(shop.order_request("o-h"), timeout=30)))
        client.start()
        h.eventually(lambda: len(shop.prepared(self.c)) == 2, what="both branches prepared")
        gid = self.c.pgs["inventory"].prepared("inventory")[0]
        self.c.pgs["inventory"].sql(f"ROLLBACK PREPARED '{gid}'", db="inventory")
        client.join(timeout=30)
        out = result["out"]
        self.assertEqual(out.state, pb.TXN_STATE_HEURISTIC_MIXED, out)
        by_name = {b.participant: b.state for b in out.branches}
        self.assertEqual(by_name, {"orders": pb.BRANCH_STATE_COMMITTED,
                                   "inventory": pb.BRANCH_STATE_HEURISTIC})
        # What the user sees in the databases: the order is there, the stock was not taken.
        self.assertEqual(shop.orders(self.c), ["o-h"])
        self.assertEqual(shop.stock(self.c), 10)

        shown = txctl(self.c, "show", out.txn_id).stdout
        self.assertIn("state:     HEURISTIC_MIXED", shown)
        self.assertRegex(shown, r"inventory\s+HEURISTIC\s+branch rolled back although the "
                                r"decision was COMMIT")
        # Still there after a restart, in the list and the stats.
        self.c.coordinator.kill()
        self.c.coordinator.start()
        listed = txctl_json(self.c, "list", "--state", "heuristic-mixed")["transactions"]
        self.assertEqual([t["txn_id"] for t in listed], [out.txn_id])
        self.assertEqual(int(txctl_json(self.c, "stats")["heuristic_records"]), 1)
        self.assertIn("<- see txctl list --state heuristic-mixed", txctl(self.c, "stats").stdout)
        # A finished transaction cannot be "resolved".
        err = txctl(self.c, "resolve", out.txn_id, "abort", expect_rc=1).stderr
        self.assertIn("FAILED_PRECONDITION", err)

    def test_metrics_endpoint_counts_what_happened(self):
        port = h.free_port()
        self.c = shop.start_shop(coordinator_extra=["--metrics-listen", f"127.0.0.1:{port}"])
        agent_port = h.free_port()
        agent = self.c.agents["orders"]
        agent.kill()
        agent.argv += ["--metrics-listen", f"127.0.0.1:{agent_port}"]
        agent.start()
        coord = self.c.coordinator_stub()
        self.assertEqual(coord.Run(shop.order_request("m-1"), timeout=10).state,
                         pb.TXN_STATE_COMMITTED)
        self.assertEqual(coord.Run(shop.order_request("m-2", sku="pear"), timeout=10).state,
                         pb.TXN_STATE_ABORTED)

        def scrape(at=port):
            with urllib.request.urlopen(f"http://127.0.0.1:{at}/metrics", timeout=5) as r:
                self.assertEqual(r.headers["Content-Type"],
                                 "text/plain; version=0.0.4; charset=utf-8")
                return r.read().decode()

        def value(text, series):
            m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
            return float(m.group(1)) if m else None

        text = h.eventually(lambda: (lambda t: t if value(
            t, 'txcoord_transactions_total{outcome="aborted",protocol="two_phase"}') == 1
            else None)(scrape()), what="both transactions counted")
        self.assertEqual(
            value(text, 'txcoord_transactions_total{outcome="committed",protocol="two_phase"}'), 1)
        for phase in ("prepare", "decision_log", "commit"):
            self.assertEqual(value(text, f'txcoord_phase_seconds_count{{phase="{phase}"}}'), 1,
                             phase)
        self.assertGreaterEqual(value(text, 'txcoord_log_write_seconds_count{sync="true"}'), 1)
        self.assertGreaterEqual(value(
            text, 'txcoord_participant_rpc_seconds_count{method="Prepare",participant="orders"}'),
            2)
        self.assertEqual(value(text, 'txcoord_participant_up{participant="inventory"}'), 1)
        self.assertEqual(value(text, 'txcoord_participant_circuit_state{participant="inventory",'
                                     'state="closed"}'), 1)
        self.assertEqual(value(text, "txcoord_in_doubt_transactions"), 0)
        self.assertEqual(value(text, "txcoord_accepting"), 1)
        agent_text = scrape(agent_port)
        self.assertEqual(value(agent_text, 'txagent_rpcs_total{code="OK",method="Prepare"}'), 2)
        self.assertGreaterEqual(value(agent_text, 'txagent_rpc_seconds_count{method="Commit"}'), 1)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        self.assertEqual(cm.exception.code, 404)

    def test_txctl_lists_shows_and_refuses_bad_input(self):
        self.c = shop.start_shop()
        coord = self.c.coordinator_stub()
        ok = coord.Run(shop.order_request("o-1"), timeout=10)
        no = coord.Run(shop.order_request("o-2", sku="pear"), timeout=10)  # no stock: NO vote
        self.assertEqual(no.state, pb.TXN_STATE_ABORTED)
        every = txctl_json(self.c, "list")["transactions"]
        self.assertEqual([t["txn_id"] for t in every], [ok.txn_id, no.txn_id])
        aborted = txctl_json(self.c, "list", "--state", "aborted")["transactions"]
        self.assertEqual([t["txn_id"] for t in aborted], [no.txn_id])
        self.assertIn("voted NO", aborted[0]["reason"])
        self.assertEqual(txctl_json(self.c, "list", "--state", "in-doubt")["transactions"], [])
        page = txctl_json(self.c, "list", "--limit", "1")
        self.assertEqual(page["next_page_token"], ok.txn_id)
        table = txctl(self.c, "list", "--state", "committed,aborted").stdout
        self.assertRegex(table, rf"{ok.txn_id}\s+TWO_PHASE\s+COMMITTED")
        shown = txctl_json(self.c, "show", ok.txn_id)
        self.assertEqual(shown["state"], "TXN_STATE_COMMITTED")
        self.assertEqual([b["participant"] for b in shown["branches"]], ["orders", "inventory"])
        stats = txctl_json(self.c, "stats")
        self.assertEqual(stats["finished_by_state"],
                         {"TXN_STATE_COMMITTED": "1", "TXN_STATE_ABORTED": "1"})

        self.assertIn("NOT_FOUND", txctl(self.c, "show", "n1-9-9", expect_rc=1).stderr)
        self.assertIn("INVALID_ARGUMENT", txctl(self.c, "show", "x", expect_rc=1).stderr)
        self.assertIn("NOT_FOUND", txctl(self.c, "resolve", "n1-9-9", "abort", expect_rc=1).stderr)
        self.assertIn("commit or abort", txctl(self.c, "resolve", ok.txn_id, "maybe",
                                               expect_rc=2).stderr)
        self.assertIn("unknown state", txctl(self.c, "list", "--state", "bogus",
                                             expect_rc=2).stderr)
        self.assertIn("unknown command", txctl(self.c, "frobnicate", expect_rc=2).stderr)
        down = subprocess.run([os.path.join(h.BIN, "txctl"), "--coordinator", "127.0.0.1:1",
                               "--timeout-ms", "500", "stats"], capture_output=True, text=True)
        self.assertEqual(down.returncode, 1)
        self.assertIn("txctl: ", down.stderr)


if __name__ == "__main__":
    unittest.main()

"""Three-phase commit end to end over three participants: two PostgreSQL databases ("pg": the
bank's accounts, "audit": an audit log) and one MariaDB database ("my": accounts), a real agent
beside each and a real txcoord. A transfer moves money between pg and my and writes an audit row;
all three commit, or none does.

Checked: commit and abort (a NO vote); what each agent recorded in its txcoord_3pc table; that
nothing is left prepared; and a coordinator killed right after PRE_COMMIT went out, restarted with
only START in its log: it runs a termination round (never presumes abort), and the outcome it
reports is the one every database shows."""
import threading
import time
import unittest

from tests.harness import cluster as h
from tests.harness import fault_proxy
from tests.integration import bank_two_databases as bank

pb = h.coordinator_pb2
AUDIT_SCHEMA = "CREATE TABLE audit (transfer_id text PRIMARY KEY, amount int NOT NULL)"


MEMBERS = ("pg", "my", "audit")


def start_three(reconcile_ms=300, partitionable=False):
    """The three agents know each other (--peer) for termination rounds. With `partitionable`,
    every link (coordinator <-> agent, agent -> agent) goes through a FaultProxy, so that
    cut(name) isolates one agent from everyone, the way a network partition would."""
    c = h.Cluster(reconcile_ms=reconcile_ms)
    try:
        pg = c.add_postgres("bank")
        pg.sql("CREATE DATABASE bank")
        pg.sql(bank.PG_SCHEMA, db="bank")
        pg.sql("CREATE DATABASE audit")
        pg.sql(AUDIT_SCHEMA, db="audit")
        my = c.add_mariadb("ledger")
        my.sql("CREATE DATABASE ledger")
        my.sql(bank.MY_SCHEMA, db="ledger")
        c.make_coordinator(list(MEMBERS), extra=("--termination-timeout-ms", "500"),
                           partitionable=MEMBERS if partitionable else ()).start()
        real = {n: (c.proxies[n][0].target[1] if partitionable else c.agent_ports[n])
                for n in MEMBERS}
        c.peer_proxies = {}
        peers = {}
        for x in MEMBERS:
            peers[x] = []
            for y in MEMBERS:
                if x == y:
                    continue
                port = real[y]
                if partitionable:
                    proxy = fault_proxy.FaultProxy(h.free_port(), real[y])
                    c.peer_proxies[(x, y)] = proxy
                    port = proxy._listener.getsockname()[1]
                peers[x] += ["--peer", f"{y}=127.0.0.1:{port}"]
        common = ("--termination-timeout-ms", "1000")
        c.add_agent("pg", pg.dsn("bank"), extra=(*peers["pg"], *common))
        c.add_agent("my", my.dsn("ledger"), backend="mysql",
                    extra=("--dsn-password-file", my.password_file, *peers["my"], *common))
        c.add_agent("audit", pg.dsn("audit"), extra=(*peers["audit"], *common))
    except Exception:
        c.stop()
        raise
    return c


def cut(c, name):
    """Isolates agent `name` from the coordinator and from the other agents."""
    c.partition(name)
    for (x, y), proxy in c.peer_proxies.items():
        if name in (x, y):
            proxy.blackhole()


def heal(c, name):
    c.heal(name)
    for (x, y), proxy in c.peer_proxies.items():
        if name in (x, y):
            proxy.heal()


def transfer(transfer_id, src, dst, amount):
    req = bank.transfer_request(transfer_id, src, dst, amount)
    req.protocol = pb.PROTOCOL_THREE_PHASE
    req.wait_for_completion = True
    req.branches.append(h.branch("audit", h.sql_op(
        "INSERT INTO audit VALUES ($1, $2)", transfer_id, amount)))
    return req


class ThreePhase(unittest.TestCase):
    def setUp(self):
        self.c = start_three()
        self.coord = self.c.coordinator_stub()

    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e):
            print(self.c.logs())
        self.c.stop()

    def audit(self):
        return {r[0]: int(r[1]) for r in
                self.c.pgs["bank"].sql("SELECT transfer_id, amount FROM audit", db="audit")}

    def prepared(self):
        return bank.prepared(self.c) + self.c.pgs["bank"].prepared("audit")

    def records(self, txn_id):
        """participant -> the state its agent recorded for this transaction's branch."""
        out = {}
        for i, name in enumerate(("pg", "my", "audit")):
            # The agent creates its table on first use: absent, it never recorded anything.
            if name == "my":
                q = ("SELECT state FROM txcoord_3pc WHERE gid = " f"'txc_{txn_id}_{i}'"
                     if self.c.mariadbs["ledger"].sql(
                         "SHOW TABLES LIKE 'txcoord_3pc'", db="ledger") else None)
                rows = self.c.mariadbs["ledger"].sql(q, db="ledger") if q else []
            else:
                db = "bank" if name == "pg" else "audit"
                q = ("SELECT state FROM txcoord_3pc WHERE gid = " f"'txc_{txn_id}_{i}'"
                     if self.c.pgs["bank"].sql("SELECT to_regclass('txcoord_3pc')", db=db)[0][0]
                     else None)
                rows = self.c.pgs["bank"].sql(q, db=db) if q else []
            out[name] = rows[0][0] if rows else None
        return out

    def test_commit_across_three_databases(self):
        before = bank.balances(self.c)
        out = self.coord.Run(transfer("t3-commit", "pg0", "my0", 25), timeout=30)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        after = bank.balances(self.c)
        self.assertEqual(after["pg0"], before["pg0"] - 25)
        self.assertEqual(after["my0"], before["my0"] + 25)
        self.assertEqual(self.audit(), {"t3-commit": 25})
        self.assertEqual(bank.ledger(self.c)["t3-commit"], {"pg0": -25, "my0": 25})
        self.assertEqual(self.prepared(), [])
        self.assertEqual(self.records(out.txn_id), {"pg": "C", "my": "C", "audit": "C"})
        t = self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=out.txn_id), timeout=5)
        self.assertEqual(t.protocol, pb.PROTOCOL_THREE_PHASE)
        self.assertEqual(self.coord.GetDecision(pb.GetDecisionRequest(txn_id=out.txn_id),
                                                timeout=5).decision, pb.DECISION_COMMIT)

    def test_no_vote_aborts_all_three(self):
        before = bank.balances(self.c)
        out = self.coord.Run(transfer("t3-broke", "my1", "pg1", 10**6), timeout=30)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertIn("expected 1 rows affected", out.reason)
        self.assertEqual(bank.balances(self.c), before)
        self.assertEqual(self.audit(), {})
        h.eventually(lambda: self.prepared() == [], what="nothing prepared")
        recs = self.records(out.txn_id)
        self.assertNotIn("C", recs.values())
        self.assertNotIn("PC", recs.values())

    def test_coordinator_killed_after_pre_commit_terminates_on_restart(self):
        before = bank.balances(self.c)
        self.c.coordinator.kill()
        self.c.coordinator.start(failpoints="coord.after_precommit_sent=crash@1")
        coord = self.c.coordinator_stub()
        with self.assertRaises(Exception):
            coord.Run(transfer("t3-crash", "pg2", "my2", 40), timeout=30)
        self.c.coordinator.wait_exit()
        self.assertEqual(len(self.prepared()), 3, "all three voted YES and wait")
        self.c.coordinator.start()
        coord = self.c.coordinator_stub()
        h.eventually(lambda: self.prepared() == [], timeout=30, what="finished after restart")
        after = bank.balances(self.c)
        committed = "t3-crash" in self.audit()
        if committed:
            self.assertEqual(after["pg2"], before["pg2"] - 40)
            self.assertEqual(after["my2"], before["my2"] + 40)
            self.assertEqual(bank.ledger(self.c)["t3-crash"], {"pg2": -40, "my2": 40})
        else:
            self.assertEqual(after, before)
            self.assertNotIn("t3-crash", bank.ledger(self.c))
        self.assertIn("termination round", self.c.coordinator.log())
        # The restarted coordinator reports what the databases show.
        txn_ids = [line.split("txn=")[1].split()[0] for line in
                   self.c.coordinator.log().splitlines() if "recovery: three-phase" in line]
        self.assertEqual(len(txn_ids), 1)
        decision = coord.GetDecision(pb.GetDecisionRequest(txn_id=txn_ids[0]), timeout=5).decision
        self.assertEqual(decision, pb.DECISION_COMMIT if committed else pb.DECISION_ABORT)
        want = "C" if committed else "A"
        h.eventually(lambda: set(self.records(txn_ids[0]).values()) == {want},
                     what="every agent recorded the decision")


class ThreePhaseFaults(unittest.TestCase):
    """Every link cuttable. PRE_COMMIT(B0) is held back on purpose: the coordinator's failpoint
    `coord.after_precommit_sent=delay(3000)@1` sends it to pg, then waits 3 s before the others."""

    def setUp(self):
        self.c = start_three(partitionable=True)
        self.t = ThreePhase("test_commit_across_three_databases")
        self.t.c = self.c

    def tearDown(self):
        if any(e for _, e in getattr(self._outcome, "errors", []) if e):
            print(self.c.logs())
        self.c.stop()

    def restart_coordinator(self, failpoints=None):
        self.c.coordinator.kill()
        self.c.coordinator.start(failpoints=failpoints)
        return self.c.coordinator_stub()

    def run_in_background(self, coord, req):
        result = {}

        def go():
            try:
                result["out"] = coord.Run(req, timeout=120)
            except Exception as e:  # noqa: BLE001 (the test looks at it)
                result["error"] = e
        th = threading.Thread(target=go, daemon=True)
        th.start()
        return th, result

    def txn_id_of(self, transfer_id):
        """The transaction's id, from pg's 3PC table (its branch is branch 0)."""
        def find():
            # Until the agent's first 3PC call the table does not exist (to_regclass is NULL,
            # which psql prints as an empty line, so no row).
            table = self.c.pgs["bank"].sql("SELECT to_regclass('txcoord_3pc')", db="bank")
            rows = self.c.pgs["bank"].sql(
                "SELECT gid FROM txcoord_3pc ORDER BY updated_at DESC LIMIT 1", db="bank") \
                if table and table[0][0] else []
            return rows[0][0][len("txc_"):-len("_0")] if rows else None
        h.eventually(lambda: find() is not None, what=f"{transfer_id} prepared on pg")
        return find()

    def check_all_or_nothing(self, transfer_id, amount, src, dst, before):
        after = bank.balances(self.c)
        committed = transfer_id in self.t.audit()
        if committed:
            self.assertEqual(after[src], before[src] - amount)
            self.assertEqual(after[dst], before[dst] + amount)
            self.assertEqual(bank.ledger(self.c)[transfer_id], {src: -amount, dst: amount})
        else:
            self.assertEqual(after, before)
            self.assertNotIn(transfer_id, bank.ledger(self.c))
        return committed

    def test_agents_terminate_while_the_coordinator_is_down(self):
        before = bank.balances(self.c)
        coord = self.restart_coordinator("coord.after_precommit_sent=crash@1")
        with self.assertRaises(Exception):
            coord.Run(transfer("t3-down", "pg3", "my3", 30), timeout=30)
        self.c.coordinator.wait_exit()
        txn_id = self.txn_id_of("t3-down")
        # No coordinator: the agents' own termination rounds finish it.
        h.eventually(lambda: self.t.prepared() == [], timeout=40,
                     what="the agents finished the transaction without the coordinator")
        committed = self.check_all_or_nothing("t3-down", 30, "pg3", "my3", before)
        want = "C" if committed else "A"
        self.assertEqual(self.t.records(txn_id), {"pg": want, "my": want, "audit": want})
        self.assertIn("without the coordinator", "".join(a.log() for a in self.c.agents.values()))
        # The coordinator comes back and reports the same decision.
        self.c.coordinator.start()
        coord = self.c.coordinator_stub()
        want_decision = pb.DECISION_COMMIT if committed else pb.DECISION_ABORT
        h.eventually(lambda: coord.GetDecision(pb.GetDecisionRequest(txn_id=txn_id),
                                               timeout=5).decision == want_decision,
                     timeout=30, what="the restarted coordinator adopts the agents' decision")

    def test_one_agent_cut_off_during_pre_commit_waits_and_then_follows(self):
        before = bank.balances(self.c)
        coord = self.restart_coordinator("coord.after_precommit_sent=delay(3000)@1")
        req = transfer("t3-minority", "pg4", "my4", 20)
        req.wait_for_completion = False  # the answer comes when COMMIT is durable
        th, result = self.run_in_background(coord, req)
        txn_id = self.txn_id_of("t3-minority")
        h.eventually(lambda: self.t.records(txn_id)["pg"] == "PC", what="pg pre-committed")
        cut(self.c, "audit")
        th.join(timeout=60)
        self.assertEqual(result.get("out").state, pb.TXN_STATE_COMMITTED, result)
        # The majority (pg, my) committed; audit, cut off, waits prepared and decides nothing.
        h.eventually(lambda: self.t.records(txn_id)["my"] == "C", what="my committed")
        time.sleep(3)
        recs = self.t.records(txn_id)
        self.assertEqual((recs["pg"], recs["my"]), ("C", "C"))
        self.assertEqual(recs["audit"], "W", "a minority never decides")
        self.assertEqual(self.c.pgs["bank"].prepared("audit"), [f"txc_{txn_id}_2"])
        heal(self.c, "audit")
        h.eventually(lambda: self.t.prepared() == [], timeout=30, what="audit follows")
        self.assertTrue(self.check_all_or_nothing("t3-minority", 20, "pg4", "my4", before))
        self.assertEqual(self.t.audit().get("t3-minority"), 20)
        self.assertEqual(self.t.records(txn_id), {"pg": "C", "my": "C", "audit": "C"})

    def test_two_agents_cut_off_nobody_decides_until_healing(self):
        before = bank.balances(self.c)
        coord = self.restart_coordinator("coord.after_precommit_sent=delay(3000)@1")
        th, result = self.run_in_background(coord, transfer("t3-split", "pg0", "my0", 15))
        txn_id = self.txn_id_of("t3-split")
        h.eventually(lambda: self.t.records(txn_id)["pg"] == "PC", what="pg pre-committed")
        cut(self.c, "my")
        cut(self.c, "audit")
        time.sleep(6)  # timeouts and termination rounds come and go: no majority anywhere
        recs = self.t.records(txn_id)
        self.assertFalse({"C", "A"} & set(recs.values()), recs)
        self.assertEqual(len(self.t.prepared()), 3, "all three still prepared")
        self.assertEqual(bank.balances(self.c), before)
        self.assertEqual(coord.GetDecision(pb.GetDecisionRequest(txn_id=txn_id),
                                           timeout=5).decision, pb.DECISION_UNKNOWN)
        self.assertTrue(th.is_alive(), "the client is still waiting")
        heal(self.c, "my")
        heal(self.c, "audit")
        h.eventually(lambda: self.t.prepared() == [], timeout=40, what="finished after healing")
        committed = self.check_all_or_nothing("t3-split", 15, "pg0", "my0", before)
        want = "C" if committed else "A"
        h.eventually(lambda: set(self.t.records(txn_id).values()) == {want},
                     what="the same outcome in every record")
        th.join(timeout=60)
        self.assertEqual(result["out"].state,
                         pb.TXN_STATE_COMMITTED if committed else pb.TXN_STATE_ABORTED, result)


if __name__ == "__main__":
    unittest.main()

"""Three-phase commit end to end over three participants: two PostgreSQL databases ("pg": the
bank's accounts, "audit": an audit log) and one MariaDB database ("my": accounts), a real agent
beside each and a real txcoord. A transfer moves money between pg and my and writes an audit row;
all three commit, or none does.

Checked: commit and abort (a NO vote); what each agent recorded in its txcoord_3pc table; that
nothing is left prepared; and a coordinator killed right after PRE_COMMIT went out, restarted with
only START in its log: it runs a termination round (never presumes abort), and the outcome it
reports is the one every database shows."""
import unittest

from tests.harness import cluster as h
from tests.integration import bank_two_databases as bank

pb = h.coordinator_pb2
AUDIT_SCHEMA = "CREATE TABLE audit (transfer_id text PRIMARY KEY, amount int NOT NULL)"


def start_three(reconcile_ms=300):
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
        c.make_coordinator(["pg", "my", "audit"],
                           extra=("--termination-timeout-ms", "500")).start()
        c.add_agent("pg", pg.dsn("bank"))
        c.add_agent("my", my.dsn("ledger"), backend="mysql",
                    extra=("--dsn-password-file", my.password_file))
        c.add_agent("audit", pg.dsn("audit"))
    except Exception:
        c.stop()
        raise
    return c


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


if __name__ == "__main__":
    unittest.main()

"""Bearer tokens, scopes and ownership, from real clients over real sockets: txcoord with
--token-file, an agent with an agent-scoped token, a real PostgreSQL.

What a user would check: a call without a token or with a wrong one is UNAUTHENTICATED, a client
token cannot use the Admin API or the agents' calls, one principal cannot see, drive or end
another's transaction, idempotency keys do not collide across principals, SIGHUP swaps the
tokens, and no token text reaches a log."""
import json
import os
import signal
import subprocess
import unittest

import grpc

from tests.harness import cluster as h

pb = h.coordinator_pb2

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"
ADMIN = "admin-token-0123456789abcdef"
AGENT = "agent-token-0123456789abcdef"
BOB_NEW = "bob-rotated-token-0123456789"
ALL_TOKENS = (ALICE, BOB, ADMIN, AGENT, BOB_NEW)


def auth(token):
    return (("authorization", f"Bearer {token}"),)


class Tokens(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cls.c = h.Cluster()
        try:
            cls.token_file = os.path.join(c.root, "tokens")
            cls.write_tokens(BOB)
            agent_token = os.path.join(c.root, "agent.token")
            with open(agent_token, "w") as f:
                f.write(f"agent {AGENT}\n")
            cls.admin_token_file = os.path.join(c.root, "admin.token")
            with open(cls.admin_token_file, "w") as f:
                f.write(ADMIN + "\n")
            cls.client_token_file = os.path.join(c.root, "client.token")
            with open(cls.client_token_file, "w") as f:
                f.write(ALICE + "\n")
            pg = c.add_postgres("shop")
            pg.sql("CREATE DATABASE shop")
            pg.sql("CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);"
                   "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g;", db="shop")
            c.make_coordinator(["pg"], extra=("--token-file", cls.token_file,
                                              "--log-format", "json")).start()
            c.add_agent("pg", pg.dsn("shop"), extra=("--coordinator-token-file", agent_token))
        except Exception:
            c.stop()
            raise
        cls.coord = c.coordinator_stub()
        cls.admin = c.admin_stub()

    @classmethod
    def write_tokens(cls, bob):
        with open(cls.token_file, "w") as f:
            f.write(f"# scope token name\nclient {ALICE} alice\nclient {bob} bob\n"
                    f"admin {ADMIN} ops\nagent {AGENT} agent-pg\n")

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def update(self, amount=1, key=""):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, idempotency_key=key)
        req.branches.append(h.branch("pg", h.sql_op(
            "UPDATE acct SET bal = bal - $1 WHERE id = 1", amount, expect=1)))
        return req

    def assertCode(self, code, fn, *args, token=None, contains=None):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, timeout=10, metadata=auth(token) if token else None)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        if contains:
            self.assertIn(contains, cm.exception.details())
        return cm.exception.details()

    def test_calls_without_a_valid_token_are_unauthenticated(self):
        U = grpc.StatusCode.UNAUTHENTICATED
        self.assertCode(U, self.coord.Run, self.update(), contains="requires a bearer token")
        self.assertCode(U, self.coord.Run, self.update(), token="wrong-token-0123456789abcd",
                        contains="unknown bearer token")
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Run(self.update(), timeout=10,
                           metadata=(("authorization", f"Basic {ALICE}"),))
        self.assertEqual(cm.exception.code(), U)
        self.assertCode(U, self.admin.ListTransactions, pb.ListTransactionsRequest())

    def test_scopes_decide_who_may_call_what(self):
        D = grpc.StatusCode.PERMISSION_DENIED
        self.assertCode(D, self.admin.ListTransactions, pb.ListTransactionsRequest(), token=ALICE,
                        contains="needs a token with admin scope")
        self.assertCode(D, self.admin.ResolveTransaction, pb.ResolveTransactionRequest(
            txn_id="n1-00000001-1-1", decision=pb.DECISION_COMMIT), token=ALICE)
        # A client cannot pose as an agent: no forged 3PC decision, no decision lookups.
        self.assertCode(D, self.coord.ReportDecision, pb.ReportDecisionRequest(
            txn_id="n1-00000001-1-1", participant="pg", decision=pb.DECISION_COMMIT), token=ALICE)
        self.assertCode(D, self.coord.GetDecision, pb.GetDecisionRequest(txn_id="n1-1-1"),
                        token=BOB)
        # An agent token is for the agents' calls only.
        self.assertCode(D, self.coord.Run, self.update(), token=AGENT)
        out = self.coord.Run(self.update(), timeout=20, metadata=auth(ALICE))
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        d = self.coord.GetDecision(pb.GetDecisionRequest(txn_id=out.txn_id), timeout=5,
                                   metadata=auth(AGENT))
        self.assertEqual(d.decision, pb.DECISION_COMMIT)
        listed = self.admin.ListTransactions(pb.ListTransactionsRequest(), timeout=5,
                                             metadata=auth(ADMIN))
        self.assertIn(out.txn_id, [t.txn_id for t in listed.transactions])

    def test_a_transaction_belongs_to_the_principal_that_began_it(self):
        NF = grpc.StatusCode.NOT_FOUND
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5,
                               metadata=auth(ALICE)).txn_id
        op = h.sql_op("UPDATE acct SET bal = bal + 1 WHERE id = 2", expect=1)
        self.coord.Execute(pb.ExecuteRequest(txn_id=txn, participant="pg", operation=op),
                           timeout=10, metadata=auth(ALICE))
        for call, req in [
                (self.coord.Execute, pb.ExecuteRequest(txn_id=txn, participant="pg", operation=op)),
                (self.coord.Commit, pb.CommitRequest(txn_id=txn)),
                (self.coord.Rollback, pb.RollbackRequest(txn_id=txn)),
                (self.coord.GetTransaction, pb.GetTransactionRequest(txn_id=txn))]:
            self.assertCode(NF, call, req, token=BOB, contains="is not known")
        mine = self.coord.GetTransaction(pb.GetTransactionRequest(txn_id=txn), timeout=5,
                                         metadata=auth(ALICE))
        self.assertEqual((mine.state, mine.owner), (pb.TXN_STATE_ACTIVE, "alice"))
        out = self.coord.Commit(pb.CommitRequest(txn_id=txn, wait_for_completion=True),
                                timeout=10, metadata=auth(ALICE))
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        # Finished, it is still alice's alone.
        self.assertCode(NF, self.coord.GetTransaction, pb.GetTransactionRequest(txn_id=txn),
                        token=BOB)
        self.assertCode(NF, self.coord.Commit, pb.CommitRequest(txn_id=txn), token=BOB)
        self.assertEqual(self.c.pgs["shop"].sql("SELECT bal FROM acct WHERE id = 2", db="shop"),
                         [["101"]])

    def test_idempotency_keys_are_scoped_by_principal(self):
        first = self.coord.Run(self.update(1, key="pay-1"), timeout=20, metadata=auth(ALICE))
        # The same key from bob, with another request: his own transaction, no ALREADY_EXISTS.
        bobs = self.coord.Run(self.update(2, key="pay-1"), timeout=20, metadata=auth(BOB))
        self.assertNotEqual(first.txn_id, bobs.txn_id)
        self.assertEqual(bobs.state, pb.TXN_STATE_COMMITTED)
        again = self.coord.Run(self.update(1, key="pay-1"), timeout=20, metadata=auth(ALICE))
        self.assertEqual(again.txn_id, first.txn_id)
        self.assertCode(grpc.StatusCode.ALREADY_EXISTS, self.coord.Run, self.update(3, key="pay-1"),
                        token=ALICE)

    def test_txctl_sends_its_token(self):
        txctl = os.path.join(h.BIN, "txctl")
        base = [txctl, "--coordinator", f"127.0.0.1:{self.c.coordinator.port}"]
        ok = subprocess.run(base + ["--token-file", self.admin_token_file, "stats"],
                            capture_output=True, text=True, timeout=20)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        denied = subprocess.run(base + ["--token-file", self.client_token_file, "stats"],
                                capture_output=True, text=True, timeout=20)
        self.assertNotEqual(denied.returncode, 0)
        self.assertIn("PERMISSION_DENIED", denied.stderr + denied.stdout)
        none = subprocess.run(base + ["stats"], capture_output=True, text=True, timeout=20)
        self.assertIn("UNAUTHENTICATED", none.stderr + none.stdout)

    def test_sighup_rereads_the_tokens_and_a_bad_file_keeps_the_old_ones(self):
        try:
            self.write_tokens(BOB_NEW)
            self.c.coordinator.proc.send_signal(signal.SIGHUP)
            h.eventually(lambda: "tokens re-read" in self.c.coordinator.log(), what="reload")
            self.assertCode(grpc.StatusCode.UNAUTHENTICATED, self.coord.Run, self.update(),
                            token=BOB)
            out = self.coord.Run(self.update(), timeout=20, metadata=auth(BOB_NEW))
            self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
            with open(self.token_file, "w") as f:
                f.write("client short\n")
            self.c.coordinator.proc.send_signal(signal.SIGHUP)
            h.eventually(lambda: "keeping the tokens loaded before" in self.c.coordinator.log(),
                         what="refused reload")
            out = self.coord.Run(self.update(), timeout=20, metadata=auth(BOB_NEW))
            self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        finally:
            self.write_tokens(BOB)
            self.c.coordinator.proc.send_signal(signal.SIGHUP)

    def test_zz_the_coordinator_logs_json_with_principals(self):
        entries = []
        for line in self.c.coordinator.log().splitlines():
            if not line.startswith("{"):
                # The harness's own "--- start" lines, or gRPC's; never txcoord's text format.
                self.assertNotRegex(line, r"^\d{4}-\d\d-\d\dT[\d:.]+Z [IWE] ")
                continue
            entries.append(json.loads(line))  # each of ours is one JSON object
        self.assertTrue(all({"ts", "level", "msg"} <= e.keys() for e in entries))
        admin = [e for e in entries if e.get("principal") == "ops"]
        self.assertTrue(any("admin ListTransactions" in e["msg"] for e in admin), admin)
        refused = [e for e in entries if e.get("principal") == "alice" and "refused" in e["msg"]]
        self.assertTrue(any("ResolveTransaction" in e["msg"] for e in refused), refused)

    def test_zz_no_token_text_in_any_log(self):
        # Runs last (zz): after every other test has sent and refused tokens.
        logs = self.c.logs() + self.c.coordinator.log()
        for token in ALL_TOKENS:
            self.assertNotIn(token, logs)
        self.assertIn("refused", self.c.coordinator.log())


if __name__ == "__main__":
    unittest.main()

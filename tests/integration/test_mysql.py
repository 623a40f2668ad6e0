"""MariaDB (XA) participants, alone and with PostgreSQL, through txcoord and txagent."""
import concurrent.futures
import subprocess
import time
import unittest

import grpc

from tests.harness import cluster as h
from tests.integration import bank_two_databases as bank

pb = h.coordinator_pb2
ppb = h.participant_pb2


class MariaDbTransfers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = bank.start_bank()
        cls.coord = cls.c.coordinator_stub()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def settle(self):
        h.eventually(lambda: bank.prepared(self.c) == [], timeout=10, what="nothing prepared")

    def test_transfer_postgres_to_mariadb_commits(self):
        before = bank.balances(self.c)
        out = self.coord.Run(bank.transfer_request("t-commit", "pg0", "my0", 10), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        after = bank.balances(self.c)
        self.assertEqual(after["pg0"], before["pg0"] - 10)
        self.assertEqual(after["my0"], before["my0"] + 10)
        self.assertEqual(bank.ledger(self.c)["t-commit"], {"pg0": -10, "my0": 10})
        self.assertEqual(bank.prepared(self.c), [])

    def test_insufficient_funds_in_mariadb_votes_no(self):
        before = bank.balances(self.c)
        out = self.coord.Run(bank.transfer_request("t-broke", "my1", "pg1", 10**6), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        self.assertIn("my voted NO", out.reason)
        self.assertIn("expected 1 rows affected, got 0", out.reason)
        self.assertEqual(bank.balances(self.c), before)
        self.assertNotIn("t-broke", bank.ledger(self.c))
        self.settle()

    def test_sql_error_in_mariadb_aborts_both(self):
        before = bank.balances(self.c)
        req = bank.transfer_request("t-sqlerr", "pg2", "my2", 5)
        req.branches[1].operations[0].sql.text = "UPDATE no_such_table SET x = ? WHERE y = ?"
        out = self.coord.Run(req, timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        self.assertIn("1146", out.reason)  # ER_NO_SUCH_TABLE
        self.assertEqual(bank.balances(self.c), before)
        self.settle()

    def test_params_that_do_not_match_the_placeholders_run_nothing(self):
        # The statement is prepared and executed in one round trip: a wrong number of params
        # must still fail before anything runs, with a message that says so.
        before = bank.balances(self.c)
        for params in (["my2"], [1, "my2", 3]):
            req = bank.transfer_request("t-params", "pg2", "my2", 1)
            del req.branches[1].operations[1:]
            req.branches[1].operations[0].sql.ClearField("params")
            req.branches[1].operations[0].sql.params.extend(str(p) for p in params)
            out = self.coord.Run(req, timeout=20)
            self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
            self.assertIn(f"placeholders do not match the {len(params)} params given", out.reason)
            self.assertEqual(bank.balances(self.c), before)
            self.settle()

    def test_a_reset_connection_still_ends_lock_waits_at_the_lock_timeout(self):
        # The agent's innodb_lock_wait_timeout (--lock-timeout-ms 1000 here) is applied again
        # after each session reset, with the connection's next statement. The waiting branch runs
        # on a connection that served branches before it (so it was reset); its wait on a row
        # held from outside ends at the lock timeout (1205), not at the server's default of 50 s
        # or the call's deadline.
        my = self.c.mariadbs["ledger"]
        with my.holding_rows("ledger", "UPDATE accounts SET balance = balance WHERE id = 'my3'"):
            for i in range(3):
                out = self.coord.Run(bank.transfer_request(f"t-reuse-{i}", "pg4", "my4", 1),
                                     timeout=20)
                self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
            self.settle()
            sessions = {r[0] for r in my.sql("SELECT id FROM information_schema.PROCESSLIST")}
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                run = pool.submit(self.coord.Run,
                                  bank.transfer_request("t-waits", "pg4", "my3", 1), timeout=30)
                waiting = h.eventually(
                    lambda: my.sql("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX "
                                   "WHERE trx_state = 'LOCK WAIT'"), what="the branch waits")
                self.assertIn(waiting[0][0], sessions, "the waiting branch reused a connection")
                out = run.result()
            waited = time.monotonic() - started
            self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
            self.assertIn("1205", out.reason)  # ER_LOCK_WAIT_TIMEOUT
            self.assertLess(waited, 5, "ended by the agent's 1 s lock timeout")
        self.settle()

    def test_ddl_is_refused_before_it_reaches_mariadb(self):
        req = bank.transfer_request("t-ddl", "pg3", "my3", 5)
        req.branches[1].operations[0].sql.text = "CREATE TABLE sneaky (a int)"
        req.branches[1].operations[0].sql.ClearField("params")
        req.branches[1].operations[0].sql.ClearField("expect_rows_affected")
        out = self.coord.Run(req, timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        self.assertIn("commits implicitly", out.reason)
        tables = [r[0] for r in self.c.mariadbs["ledger"].sql("SHOW TABLES", db="ledger")]
        self.assertNotIn("sneaky", tables)
        self.settle()

    def test_single_mariadb_branch_commits_in_one_phase(self):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch("my", *bank.credit("my", "my4", 1, "t-1pc")))
        out = self.coord.Run(req, timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        self.assertEqual(bank.ledger(self.c)["t-1pc"], {"my4": 1})

    def test_read_only_mariadb_branch(self):
        req = bank.transfer_request("t-ro", "pg4", "pg3", 1)
        req.branches.append(h.branch("my", h.sql_op("SELECT balance FROM accounts WHERE id = ?",
                                                     "my0")))
        out = self.coord.Run(req, timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        self.assertEqual(out.branches[1].state, pb.BRANCH_STATE_READ_ONLY)

    def test_interactive_with_null_and_rows(self):
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        r = self.coord.Execute(pb.ExecuteRequest(txn_id=txn, participant="my", operation=h.sql_op(
            "SELECT id, balance, NULL AS nothing FROM accounts WHERE id = ?", "my2")), timeout=5)
        self.assertEqual(list(r.columns), ["id", "balance", "nothing"])
        self.assertEqual(r.rows[0].values[0], "my2")
        self.assertEqual(list(r.rows[0].null_values), [2])
        self.coord.Execute(pb.ExecuteRequest(txn_id=txn, participant="my", operation=h.sql_op(
            "INSERT INTO ledger VALUES (?, ?, ?)", "t-inter", "my2", 0, nulls=[])), timeout=5)
        self.coord.Execute(pb.ExecuteRequest(txn_id=txn, participant="pg", operation=h.sql_op(
            "INSERT INTO ledger VALUES ($1, $2, $3)", "t-inter", "pg2", 0)), timeout=5)
        out = self.coord.Commit(pb.CommitRequest(txn_id=txn, wait_for_completion=True), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED)
        self.assertEqual(bank.ledger(self.c)["t-inter"], {"my2": 0, "pg2": 0})


class MariaDbParticipant(unittest.TestCase):
    """XA edge cases, driven straight at the MariaDB agent (node n9: the coordinator answers
    NOT_FOUND for it, so the agent's reconciler leaves these branches alone)."""

    @classmethod
    def setUpClass(cls):
        cls.c = bank.start_bank()
        cls.my = cls.c.mariadbs["ledger"]

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def setUp(self):
        self.agent = self.c.participant_stub("my")

    def ref(self, seq):
        return ppb.BranchRef(txn_id=f"n9-5-{seq}", branch=0)

    def prepare(self, seq, transfer_id):
        return self.agent.Prepare(ppb.PrepareBranchRequest(
            ref=self.ref(seq), begin=True, operations=bank.credit("my", "my0", 1, transfer_id)),
            timeout=10)

    def test_commit_twice_is_proven_by_the_marker(self):
        self.assertEqual(self.prepare(1, "x-twice").vote, ppb.VOTE_YES)
        self.assertEqual(self.my.prepared(), ["txc_n9-5-1_0"])
        for _ in range(2):
            r = self.agent.Commit(ppb.CommitBranchRequest(ref=self.ref(1)), timeout=10)
            self.assertEqual(r.result, ppb.BRANCH_RESULT_COMMITTED)
        # A fresh agent knows nothing of the branch: the marker still proves the commit.
        self.c.agents["my"].kill()
        self.c.agents["my"].start()
        self.agent = self.c.participant_stub("my")
        r = self.agent.Commit(ppb.CommitBranchRequest(ref=self.ref(1)), timeout=10)
        self.assertEqual(r.result, ppb.BRANCH_RESULT_COMMITTED)

    def test_prepare_after_rollback_votes_no(self):
        self.agent.Rollback(ppb.RollbackBranchRequest(ref=self.ref(2)), timeout=10)
        self.assertEqual(self.prepare(2, "x-late").vote, ppb.VOTE_NO)
        self.assertEqual(self.my.prepared(), [])

    def test_connection_killed_between_prepare_and_commit(self):
        self.assertEqual(self.prepare(3, "x-killed").vote, ppb.VOTE_YES)
        for row in self.my.sql("SELECT id FROM information_schema.processlist WHERE user = 'txc'"):
            try:
                self.my.sql(f"KILL CONNECTION {row[0]}")
            except Exception:
                pass
        self.assertEqual(self.my.prepared(), ["txc_n9-5-3_0"])
        r = self.agent.Commit(ppb.CommitBranchRequest(ref=self.ref(3)), timeout=10)
        self.assertEqual(r.result, ppb.BRANCH_RESULT_COMMITTED)
        self.assertIn("x-killed", bank.ledger(self.c))

    def test_kill_9_mariadbd_with_a_prepared_branch(self):
        self.assertEqual(self.prepare(4, "x-kill9").vote, ppb.VOTE_YES)
        self.my.kill()
        self.my.start()
        self.assertEqual(self.my.prepared(), ["txc_n9-5-4_0"])
        r = self.agent.Commit(ppb.CommitBranchRequest(ref=self.ref(4)), timeout=10)
        self.assertEqual(r.result, ppb.BRANCH_RESULT_COMMITTED)
        self.assertIn("x-kill9", bank.ledger(self.c))

    def test_lost_one_phase_answer_is_proven_by_the_marker(self):
        r = self.agent.CommitOnePhase(ppb.CommitOnePhaseRequest(
            ref=self.ref(6), begin=True, operations=bank.credit("my", "my1", 1, "x-1pc")),
            timeout=10)
        self.assertEqual(r.result, ppb.BRANCH_RESULT_COMMITTED)
        self.c.agents["my"].kill()
        self.c.agents["my"].start()
        self.agent = self.c.participant_stub("my")
        again = self.agent.CommitOnePhase(ppb.CommitOnePhaseRequest(ref=self.ref(6), retry=True),
                                          timeout=10)
        self.assertEqual(again.result, ppb.BRANCH_RESULT_COMMITTED)
        never = self.agent.CommitOnePhase(ppb.CommitOnePhaseRequest(ref=self.ref(7), retry=True),
                                          timeout=10)
        self.assertEqual(never.result, ppb.BRANCH_RESULT_ABORTED)

    def test_manual_xa_rollback_is_reported_not_hidden(self):
        self.assertEqual(self.prepare(5, "x-heur").vote, ppb.VOTE_YES)

        # The agent keeps the branch's connection for its Commit for up to 5 s, and MariaDB
        # refuses to finish the branch from another session until it lets go (XAER_NOTA).
        def manual_rollback():
            try:
                self.my.sql("XA ROLLBACK X'" + "txc_n9-5-5_0".encode().hex() + "',X'',7868")
                return True
            except subprocess.CalledProcessError:
                return False
        h.eventually(manual_rollback, timeout=20, interval=0.5, what="a manual XA ROLLBACK")
        r = self.agent.Commit(ppb.CommitBranchRequest(ref=self.ref(5)), timeout=10)
        self.assertEqual(r.result, ppb.BRANCH_RESULT_ABORTED)
        self.assertIn("marker is absent", r.reason)


if __name__ == "__main__":
    unittest.main()

"""Limits, each named in its error, from real clients over real sockets, with real PostgreSQL and
MariaDB behind the agents.

What a user would check:
- a statement ends in the database by its call's deadline even when the agent that sent it is
  killed mid-statement (statement_timeout / max_statement_time set from the time the call had
  left): its row lock is free within seconds, not when pg_sleep(60) would have ended;
- an agent's branches hold at most --max-db-connections database connections, also while
  interactive clients think between calls: one more waits for a free one, and past its wait is
  RESOURCE_EXHAUSTED naming the flag, with nothing prepared;
- one principal cannot take every transaction slot (--max-active-per-principal) or every
  idempotency key (--idempotency-keys-per-principal) from the others.
"""
import concurrent.futures
import os
import time
import unittest

import grpc

from tests.harness import cluster as h

pb = h.coordinator_pb2
ppb = h.participant_pb2

ALICE = "alice-token-limits-0123456789"
BOB = "bob-token-limits-0123456789ab"
AGENT = "agent-token-limits-012345678"


def auth(token):
    return (("authorization", f"Bearer {token}"),)


class Limits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cls.c = h.Cluster()
        try:
            tokens = os.path.join(c.root, "tokens")
            with open(tokens, "w") as f:
                f.write(f"client {ALICE} alice\nclient {BOB} bob\nagent {AGENT} agents\n")
            agent_token = os.path.join(c.root, "agent.token")
            with open(agent_token, "w") as f:
                f.write(AGENT + "\n")
            pg = c.add_postgres("shop")
            pg.sql("CREATE DATABASE shop")
            pg.sql("CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);"
                   "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g;", db="shop")
            my = c.add_mariadb("ledger")
            my.sql("CREATE DATABASE ledger")
            my.sql("CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);"
                   "INSERT INTO acct VALUES (1, 100), (2, 100);", db="ledger")
            c.make_coordinator(["pg", "my", "capped"], extra=(
                "--token-file", tokens, "--max-active-per-principal", "2",
                "--idempotency-keys-per-principal", "3")).start()
            token = ("--coordinator-token-file", agent_token)
            c.add_agent("pg", pg.dsn("shop"), extra=token)
            c.add_agent("my", my.dsn("ledger"), backend="mysql",
                        extra=token + ("--dsn-password-file", my.password_file))
            c.add_agent("capped", pg.dsn("shop"), extra=token + (
                "--max-db-connections", "2", "--db-connection-wait-ms", "1000"))
        except Exception:
            c.stop()
            raise
        cls.coord = c.coordinator_stub()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def begin(self, token=ALICE):
        return self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE, timeout_ms=60000),
                                timeout=10, metadata=auth(token)).txn_id

    def execute(self, txn_id, participant, text, token=ALICE, timeout=10):
        return self.coord.Execute(pb.ExecuteRequest(txn_id=txn_id, participant=participant,
                                                    operation=h.sql_op(text)),
                                  timeout=timeout, metadata=auth(token))

    def rollback(self, txn_id, token=ALICE):
        self.coord.Rollback(pb.RollbackRequest(txn_id=txn_id), timeout=10, metadata=auth(token))

    def nothing_prepared(self):
        return not self.c.pgs["shop"].prepared("shop") and not self.c.mariadbs["ledger"].prepared()

    # --- statement timeouts from the call's deadline -------------------------------------------

    def pg_row_free(self):
        try:
            self.c.pgs["shop"].sql("SET lock_timeout = '100ms'; "
                                   "UPDATE acct SET bal = bal WHERE id = 1", db="shop")
            return True
        except Exception:
            return False

    def my_row_free(self):
        try:
            self.c.mariadbs["ledger"].sql("SET SESSION innodb_lock_wait_timeout = 1; "
                                          "UPDATE acct SET bal = bal WHERE id = 1", db="ledger")
            return True
        except Exception:
            return False

    def check_statement_ends_with_its_deadline(self, agent, sleep_sql, sleeping, row_free,
                                               txn_id):
        stub = self.c.participant_stub(agent)
        call = stub.Execute.future(ppb.ExecuteBranchRequest(
            ref=ppb.BranchRef(txn_id=txn_id), begin=True,
            operations=[h.sql_op("UPDATE acct SET bal = bal - 1 WHERE id = 1", expect=1),
                        h.sql_op(sleep_sql)]), timeout=3)
        h.eventually(sleeping, timeout=10, what="the statement running")
        started = time.monotonic()
        # The agent dies mid-statement: nobody is left to cancel it.
        self.c.agents[agent].kill()
        try:
            h.eventually(row_free, timeout=8, what="the row lock released")
            self.assertLess(time.monotonic() - started, 8)
            self.assertFalse(sleeping())
        finally:
            self.c.agents[agent].start()
        with self.assertRaises(grpc.RpcError):
            call.result()
        self.assertTrue(self.nothing_prepared())

    def test_a_postgres_statement_ends_at_its_deadline_even_when_the_agent_is_killed(self):
        def sleeping():
            return self.c.pgs["shop"].sql(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' "
                "AND state = 'active'")[0][0] != "0"
        self.check_statement_ends_with_its_deadline("pg", "SELECT pg_sleep(60)", sleeping,
                                                    self.pg_row_free, "n1-1-97001")

    def mariadb_busy(self):
        return any("BENCHMARK(" in " ".join(r) for r in self.c.mariadbs["ledger"].sql(
            "SELECT info FROM information_schema.PROCESSLIST WHERE info LIKE '%BENCHMARK(%' "
            "AND info NOT LIKE '%PROCESSLIST%'"))

    def test_a_mariadb_statement_ends_at_its_deadline_even_when_the_agent_is_killed(self):
        # SLEEP() notices a vanished client by itself; a statement busy computing does not.
        self.check_statement_ends_with_its_deadline(
            "my", "SELECT BENCHMARK(5000000000, MD5('x'))", self.mariadb_busy, self.my_row_free,
            "n1-1-97002")

    def test_a_mariadb_statement_that_is_not_a_select_ends_at_its_deadline_too(self):
        self.check_statement_ends_with_its_deadline(
            "my", "DO BENCHMARK(5000000000, MD5('x'))", self.mariadb_busy, self.my_row_free,
            "n1-1-97003")

    def hold_marker_table(self, seconds):
        """Another session holds the agent's commit-marker table for `seconds` (less than the
        harness's --lock-timeout-ms of 1 s): the marker insert of a one-phase commit waits."""
        pg = self.c.pgs["shop"]
        pool = concurrent.futures.ThreadPoolExecutor(1)
        held = pool.submit(pg.sql, "BEGIN; LOCK TABLE txcoord_markers IN SHARE MODE; "
                           f"SELECT pg_sleep({seconds}); COMMIT;", db="shop")
        pool.shutdown(wait=False)
        for _ in range(100):
            if pg.sql("SELECT 1 FROM pg_locks WHERE granted AND mode = 'ShareLock' AND "
                      "relation = 'txcoord_markers'::regclass", db="shop"):
                return held
            time.sleep(0.02)
        self.fail("the marker table was never locked")

    def test_the_agents_own_statements_have_the_calls_time_not_the_last_executes(self):
        # The Execute had 0.3 s and set its statement's timeout from that; the one-phase commit
        # after it has 10 s, and its marker insert waits 0.7 s for a lock.
        pg = self.c.pgs["shop"]
        stub = self.c.participant_stub("pg")
        ref = ppb.BranchRef(txn_id="n1-1-98001")
        stub.Execute(ppb.ExecuteBranchRequest(ref=ref, begin=True, operations=[
            h.sql_op("UPDATE acct SET bal = bal + 1 WHERE id = 7", expect=1)]), timeout=0.3)
        held = self.hold_marker_table(0.7)
        done = stub.CommitOnePhase(ppb.CommitOnePhaseRequest(ref=ref), timeout=10)
        self.assertEqual(done.result, ppb.BRANCH_RESULT_COMMITTED, done.reason)
        held.result()
        self.assertEqual(pg.sql("SELECT bal FROM acct WHERE id = 7", db="shop"), [["101"]])
        # A commit with less time than the wait is still stopped by its own deadline, and
        # nothing of it lands.
        ref = ppb.BranchRef(txn_id="n1-1-98002")
        stub.Execute(ppb.ExecuteBranchRequest(ref=ref, begin=True, operations=[
            h.sql_op("UPDATE acct SET bal = bal + 1 WHERE id = 7", expect=1)]), timeout=10)
        held = self.hold_marker_table(0.7)
        try:
            done = stub.CommitOnePhase(ppb.CommitOnePhaseRequest(ref=ref), timeout=0.3)
            self.assertNotEqual(done.result, ppb.BRANCH_RESULT_COMMITTED)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        held.result()
        time.sleep(0.5)
        self.assertEqual(pg.sql("SELECT bal FROM acct WHERE id = 7", db="shop"), [["101"]])
        self.assertEqual(pg.prepared("shop"), [])

    # --- results read row by row ------------------------------------------------------------

    def peak_rss_mb(self, agent):
        with open(f"/proc/{self.c.agents[agent].proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def check_huge_result_is_never_in_memory(self, participant, huge_sql):
        before = self.peak_rss_mb(participant)
        out = self.coord.Run(pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, branches=[
            h.branch(participant, h.sql_op("UPDATE acct SET bal = bal WHERE id = 2", expect=1),
                     h.sql_op(huge_sql))]), timeout=60, metadata=auth(ALICE))
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertIn("--max-result-bytes", out.reason)
        # 200 MB were asked for; reading stopped at the 1 MiB limit.
        self.assertLess(self.peak_rss_mb(participant) - before, 60,
                        "the agent held the huge result in memory")
        h.eventually(self.nothing_prepared, what="nothing left prepared")

    def test_a_huge_postgres_result_is_stopped_at_the_limit_without_being_read_whole(self):
        self.check_huge_result_is_never_in_memory(
            "pg", "SELECT repeat('x', 1000000) FROM generate_series(1, 200)")

    def test_a_huge_mariadb_result_is_stopped_at_the_limit_without_being_read_whole(self):
        self.check_huge_result_is_never_in_memory(
            "my", "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 200) "
                  "SELECT REPEAT('x', 1000000) FROM t")

    def test_too_many_parameters_are_refused_before_the_database(self):
        params = [1] * 70000
        op = h.sql_op("SELECT " + ", ".join(f"${i + 1}" for i in range(len(params))), *params)
        out = self.coord.Run(pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, branches=[
            h.branch("pg", op), h.branch("my", h.sql_op("SELECT 1"))]),
            timeout=30, metadata=auth(ALICE))
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertIn("70000 parameters is over the limit of 65535", out.reason)
        self.assertTrue(self.nothing_prepared())

    # --- the agent's connection cap --------------------------------------------------------------

    def agent_connections(self):
        # Every connection of the capped agent's branches is to database shop from txagent;
        # the other agent on it ("pg") is idle in this test.
        return int(self.c.pgs["shop"].sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' "
            "AND application_name = 'txagent' AND state LIKE 'idle in transaction%'")[0][0])

    def test_branches_hold_at_most_max_db_connections_and_one_more_waits_then_is_refused(self):
        a, b = self.begin(ALICE), self.begin(BOB)
        self.execute(a, "capped", "SELECT bal FROM acct WHERE id = 3", token=ALICE)
        self.execute(b, "capped", "SELECT bal FROM acct WHERE id = 4", token=BOB)
        self.assertEqual(self.agent_connections(), 2)
        # A third branch waits for a connection: it gets the one a finished branch gives back.
        c = self.begin(BOB)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(self.execute, c, "capped", "SELECT bal FROM acct WHERE id = 5",
                                  BOB)
            time.sleep(0.3)
            self.assertFalse(waiting.done(), "the third branch did not wait for a connection")
            self.rollback(a, ALICE)
            self.assertEqual(waiting.result(timeout=10).rows[0].values, ["100"])
        self.assertLessEqual(self.agent_connections(), 2)
        # Both held again (b and c): one more waits 1 s and is refused, naming the limit.
        d = self.begin(ALICE)
        started = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            self.execute(d, "capped", "SELECT 1", token=ALICE)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         cm.exception.details())
        self.assertIn("--max-db-connections", cm.exception.details())
        for txn, token in ((b, BOB), (c, BOB), (d, ALICE)):
            self.rollback(txn, token)
        h.eventually(lambda: self.agent_connections() == 0, what="the branches' sessions closed")
        self.assertTrue(self.nothing_prepared())

    # --- per principal -------------------------------------------------------------------------

    def test_one_principal_cannot_take_every_transaction_slot(self):
        first, second = self.begin(ALICE), self.begin(ALICE)
        with self.assertRaises(grpc.RpcError) as cm:
            self.begin(ALICE)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("--max-active-per-principal", cm.exception.details())
        self.assertIn("alice", cm.exception.details())
        # A Run of alice's is refused as well; bob is not held back.
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Run(pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, branches=[
                h.branch("pg", h.sql_op("SELECT 1"))]), timeout=10, metadata=auth(ALICE))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        bobs = self.begin(BOB)
        # A finished transaction gives its slot back.
        self.rollback(first, ALICE)
        third = h.eventually(lambda: self.try_begin(ALICE), what="alice's slot freed")
        for txn, token in ((second, ALICE), (third, ALICE), (bobs, BOB)):
            self.rollback(txn, token)

    def try_begin(self, token):
        try:
            return self.begin(token)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            return None

    def test_one_principal_cannot_take_every_idempotency_key(self):
        def keyed(key, token):
            return self.coord.Run(pb.RunRequest(
                protocol=pb.PROTOCOL_TWO_PHASE, idempotency_key=key, wait_for_completion=True,
                branches=[h.branch("pg", h.sql_op("SELECT bal FROM acct WHERE id = 6"))]),
                timeout=10, metadata=auth(token))
        ran = [keyed(f"flood-{i}", ALICE) for i in range(3)]
        self.assertTrue(all(o.state == pb.TXN_STATE_COMMITTED for o in ran), ran)
        with self.assertRaises(grpc.RpcError) as cm:
            keyed("flood-3", ALICE)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("--idempotency-keys-per-principal", cm.exception.details())
        # Alice's retries still find their transactions, and bob's new keys still run.
        self.assertEqual(keyed("flood-0", ALICE).txn_id, ran[0].txn_id)
        self.assertEqual(keyed("pay-1", BOB).state, pb.TXN_STATE_COMMITTED)


if __name__ == "__main__":
    unittest.main()

"""The agent's execution model against real PostgreSQL: no database work on gRPC's threads.

Branches waiting for a row lock must not delay the Commit that releases it; a call the
coordinator cancels (its deadline passed, or the transaction was rolled back) must stop its
statement and free its worker; a full work lane answers RESOURCE_EXHAUSTED naming the limit.
"""
import concurrent.futures
import time
import unittest

import grpc

from tests.harness import cluster as h

pb = h.coordinator_pb2
ppb = h.participant_pb2
cpb = h.common_pb2


def ref(txn_id, branch=0):
    return ppb.BranchRef(txn_id=txn_id, branch=branch)


class AgentLanes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster()
        try:
            for name in ("a", "b"):
                pg = cls.c.add_postgres(name, max_prepared=64)
                pg.sql("CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)")
                pg.sql("INSERT INTO counter VALUES (1, 0), (2, 0)")
                pg.sql("CREATE TABLE hits (id int PRIMARY KEY)")
            # Branches may wait for a lock far longer than the harness's usual prepare timeout.
            cls.c.make_coordinator(["a", "b", "small"],
                                   extra=["--prepare-timeout-ms", "60000"]).start()
            # A long lock timeout: a Commit that waited behind lock waiters would show.
            for name in ("a", "b"):
                cls.c.add_agent(name, cls.c.pgs[name].dsn(), extra=["--lock-timeout-ms", "20000"])
            cls.c.add_agent("small", cls.c.pgs["b"].dsn(),
                            extra=["--max-connections", "1", "--max-queued-calls", "0"])
            cls.coord = cls.c.coordinator_stub()
        except Exception:
            cls.c.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def lock_waiters(self, db):
        return int(self.c.pgs[db].sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND application_name = 'txagent'")[0][0])

    def sleepers(self, db):
        return int(self.c.pgs[db].sql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' "
            "AND state = 'active'")[0][0])

    def test_commit_is_not_delayed_by_branches_waiting_for_its_lock(self):
        holder = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE,
                                                  timeout_ms=60000), timeout=10).txn_id
        self.coord.Execute(pb.ExecuteRequest(
            txn_id=holder, participant="a",
            operation=h.sql_op("UPDATE counter SET n = n + 1 WHERE id = 1", expect=1)),
            timeout=10)
        waiters = 24  # more than gRPC's callback threads on this machine
        # Each waiter's other branch touches a row of its own: the waiters queue on one lock in
        # "a" and nowhere else (no cross-database deadlock among themselves).
        reqs = [pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, timeout_ms=60000, branches=[
            h.branch("a", h.sql_op("UPDATE counter SET n = n + 1 WHERE id = 1", expect=1)),
            h.branch("b", h.sql_op("INSERT INTO hits VALUES ($1)", i, expect=1))])
            for i in range(waiters)]
        with concurrent.futures.ThreadPoolExecutor(waiters) as pool:
            runs = [pool.submit(self.coord.Run, r, timeout=90) for r in reqs]
            h.eventually(lambda: self.lock_waiters("a") >= waiters, timeout=20,
                         what=f"{waiters} branches waiting for the row lock")
            started = time.monotonic()
            out = self.coord.Commit(pb.CommitRequest(txn_id=holder), timeout=30)
            took = time.monotonic() - started
            self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
            self.assertLess(took, 3.0, f"the Commit releasing the lock took {took:.1f} s")
            outs = [f.result() for f in runs]
            states = [o.state for o in outs]
        self.assertEqual(states, [pb.TXN_STATE_COMMITTED] * waiters, [o.reason for o in outs])
        self.assertEqual(states, [pb.TXN_STATE_COMMITTED] * waiters)
        self.assertEqual(self.c.pgs["a"].sql("SELECT n FROM counter WHERE id = 1"),
                         [[str(waiters + 1)]])
        h.eventually(lambda: self.c.pgs["b"].sql("SELECT count(*) FROM hits")
                     == [[str(waiters)]], what="every b branch committed")
        h.eventually(lambda: not self.c.pgs["a"].prepared() and not self.c.pgs["b"].prepared(),
                     what="nothing left prepared")

    def test_a_transaction_that_times_out_stops_its_statement_and_frees_its_worker(self):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, timeout_ms=1500, branches=[
            h.branch("a", h.sql_op("SELECT pg_sleep(60)")),
            h.branch("b", h.sql_op("UPDATE counter SET n = n + 1 WHERE id = 2", expect=1))])
        started = time.monotonic()
        out = self.coord.Run(req, timeout=30)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertLess(time.monotonic() - started, 10)
        # The statement was cancelled in PostgreSQL, not left running for its 60 s.
        h.eventually(lambda: self.sleepers("a") == 0, timeout=5, what="pg_sleep cancelled")
        h.eventually(lambda: not self.c.pgs["a"].prepared() and not self.c.pgs["b"].prepared(),
                     what="nothing left prepared")

    def test_a_full_work_lane_is_resource_exhausted_and_a_cancelled_call_frees_it(self):
        agent = self.c.participant_stub("small")
        busy = agent.Execute.future(ppb.ExecuteBranchRequest(
            ref=ref("n1-1-900001"), begin=True, operations=[h.sql_op("SELECT pg_sleep(30)")]),
            timeout=60)
        h.eventually(lambda: self.sleepers("b") == 1, timeout=10, what="the sleeper running")
        with self.assertRaises(grpc.RpcError) as cm:
            agent.Execute(ppb.ExecuteBranchRequest(
                ref=ref("n1-1-900002"), begin=True, operations=[h.sql_op("SELECT 1")]),
                timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         cm.exception.details())
        self.assertIn("--max-connections=1", cm.exception.details())
        # The client gives up: the agent cancels the statement and the worker is free again.
        busy.cancel()
        h.eventually(lambda: self.sleepers("b") == 0, timeout=5, what="pg_sleep cancelled")

        def free_again():
            try:
                agent.Execute(ppb.ExecuteBranchRequest(
                    ref=ref("n1-1-900003"), begin=True, operations=[h.sql_op("SELECT 1")]),
                    timeout=5)
                return True
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                return False
        h.eventually(free_again, timeout=5, what="the worker free again")
        agent.Rollback(ppb.RollbackBranchRequest(ref=ref("n1-1-900003")), timeout=10)
        agent.Rollback(ppb.RollbackBranchRequest(ref=ref("n1-1-900001")), timeout=10)


if __name__ == "__main__":
    unittest.main()

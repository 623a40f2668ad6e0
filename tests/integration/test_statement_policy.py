"""The statement policy and session isolation, end to end: real clients of txcoord, real
PostgreSQL and MariaDB servers, agents whose database users are superusers (as on many first
installs and in the local cluster).

What a user would check: a refused statement ran nothing (no file written, no setting kept,
nothing prepared), the next client's transaction sees none of the previous client's session
state, a run-as role limits what client statements reach, limits are named, and an agent takes
no branch that no coordinator would resolve."""
import os
import subprocess
import unittest
import urllib.request

import grpc

from tests.harness import cluster as h

pb = h.coordinator_pb2

PG_SCHEMA = ("CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);"
             "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g;"
             "CREATE TABLE secret (v text); INSERT INTO secret VALUES ('payroll');"
             "CREATE SEQUENCE seq;"
             "CREATE ROLE txc_client NOLOGIN;"
             "GRANT SELECT, UPDATE ON acct TO txc_client;"
             "GRANT USAGE ON SEQUENCE seq TO txc_client;"
             # A careless default: every new table, the agent's own included, for the role.
             "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO txc_client;")
MY_SCHEMA = ("CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL) ENGINE=InnoDB;"
             "INSERT INTO acct VALUES (1, 100), (2, 100), (3, 100);")


class StatementPolicy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cls.c = h.Cluster()
        try:
            pg = c.add_postgres("shop")
            pg.sql("CREATE DATABASE shop")
            pg.sql(PG_SCHEMA, db="shop")
            my = c.add_mariadb("ledger")
            my.sql("CREATE DATABASE ledger")
            my.sql(MY_SCHEMA, db="ledger")
            c.make_coordinator(["pg", "pgrole", "my", "pglist"]).start()
            cls.metrics = {n: h.free_port() for n in ("pg", "pgrole", "my", "pglist")}

            def agent_flags(name):
                # One database connection per agent: consecutive transactions share its
                # session, which is what a leak needs.
                return ("--max-connections", "1", "--metrics-listen",
                        f"127.0.0.1:{cls.metrics[name]}")
            c.add_agent("pg", pg.dsn("shop"),
                        extra=agent_flags("pg") + ("--coordinator-node-id", "n1"))
            c.add_agent("pgrole", pg.dsn("shop"),
                        extra=agent_flags("pgrole") + ("--run-as-role", "txc_client",
                                                       "--coordinator-node-id", "n1"))
            allow_list = os.path.join(c.root, "statements.yaml")
            with open(allow_list, "w") as f:
                f.write("debit:\n  sql: UPDATE acct SET bal = bal - $1 WHERE id = $2\n"
                        "  params: 2\n")
            c.add_agent("pglist", pg.dsn("shop"),
                        extra=agent_flags("pglist") + ("--statements", allow_list,
                                                       "--coordinator-node-id", "n1"))
            c.add_agent("my", my.dsn("ledger"), backend="mysql",
                        extra=agent_flags("my") + ("--dsn-password-file", my.password_file))
        except Exception:
            c.stop()
            raise
        cls.coord = c.coordinator_stub()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    # helpers

    def run_one(self, participant, text, *params):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch(participant, h.sql_op(text, *params)))
        return self.coord.Run(req, timeout=20)

    def assertRefused(self, participant, text):
        """The coordinator refuses what every dialect refuses (INVALID_ARGUMENT); the agent the
        rest, as a NO vote. Either way nothing ran. Returns the refusal's text."""
        try:
            out = self.run_one(participant, text)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT, text)
            self.assertIn("statement refused", e.details(), text)
            return e.details()
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, (text, out))
        self.assertIn("statement refused", out.reason, text)
        return out.reason

    def interactive(self, participant, *texts):
        """Runs `texts` in one interactive transaction and commits; the rows of each."""
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        rows = []
        for text in texts:
            got = self.coord.Execute(pb.ExecuteRequest(txn_id=txn, participant=participant,
                                                       operation=h.sql_op(text)), timeout=10)
            rows.append([list(r.values) for r in got.rows])
        out = self.coord.Commit(pb.CommitRequest(txn_id=txn, wait_for_completion=True),
                                timeout=10)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        return rows

    def execute_fails(self, txn, participant, text, code=None):
        """Executes `text` in `txn`, which must fail (with `code`, if given), then rolls `txn`
        back; the error's text."""
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Execute(pb.ExecuteRequest(txn_id=txn, participant=participant,
                                                 operation=h.sql_op(text)), timeout=10)
        if code is not None:
            self.assertEqual(cm.exception.code(), code, cm.exception.details())
        self.coord.Rollback(pb.RollbackRequest(txn_id=txn), timeout=10)
        return cm.exception.details()

    def pg_balances(self):
        return {int(r[0]): int(r[1])
                for r in self.c.pgs["shop"].sql("SELECT id, bal FROM acct", db="shop")}

    def my_balances(self):
        return {int(r[0]): int(r[1])
                for r in self.c.mariadbs["ledger"].sql("SELECT id, bal FROM acct", db="ledger")}

    def assertNothingPrepared(self):
        self.assertEqual(self.c.pgs["shop"].prepared("shop"), [])
        self.assertEqual(self.c.mariadbs["ledger"].prepared(), [])

    def metric(self, agent, name):
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics[agent]}/metrics",
                                      timeout=5).read().decode()
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    # tests

    def test_copy_to_program_is_refused_and_runs_nothing(self):
        target = os.path.join(self.c.root, "owned")
        why = self.assertRefused("pg", f"COPY (SELECT 1) TO PROGRAM 'id > {target}'")
        self.assertIn("COPY reads and writes server files and runs programs", why)
        self.assertFalse(os.path.exists(target))
        self.assertNothingPrepared()

    def test_postgres_bypasses_are_refused_and_the_session_stays_usable(self):
        before = self.pg_balances()
        for text in ["SET search_path = pg_catalog",
                     "SELECT set_config('search_path', 'pg_catalog', false)",
                     "DO $$BEGIN PERFORM 1; END$$",
                     "SELECT pg_read_file('/etc/passwd')",
                     "SELECT E'\\'', pg_read_file('/etc/passwd'), ''",
                     "SELECT dblink_exec('dbname=shop', 'DROP TABLE acct')",
                     "SET LOCAL ROLE postgres",
                     "LOCK TABLE acct IN ACCESS EXCLUSIVE MODE",
                     "SELECT pg_advisory_lock(1)",
                     "PREPARE p AS SELECT 1"]:
            self.assertRefused("pg", text)
        self.assertEqual(self.pg_balances(), before)
        # The next client's ordinary transaction finds its tables where they were.
        out = self.run_one("pg", "UPDATE acct SET bal = bal - 1 WHERE id = $1", 1)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assertEqual(self.pg_balances()[1], before[1] - 1)
        self.assertNothingPrepared()

    def test_mariadb_bypasses_are_refused(self):
        before = self.my_balances()
        outfile = os.path.join(self.c.root, "outfile")
        for text in ["/*!COMMIT*/ WORK",
                     "SET @@session.autocommit=1",
                     "SET @a=1, autocommit=1",
                     "SET SESSION transaction_isolation='READ-UNCOMMITTED'",
                     "SELECT LOAD_FILE('/etc/passwd')",
                     f"SELECT 1 INTO OUTFILE '{outfile}'",
                     "SELECT 1 --1, LOAD_FILE('/etc/passwd')",
                     "SELECT * FROM mysql.user",
                     "SELECT GET_LOCK('x', 0)",
                     "CALL p()"]:
            self.assertRefused("my", text)
        self.assertFalse(os.path.exists(outfile))
        self.assertEqual(self.my_balances(), before)
        out = self.run_one("my", "UPDATE acct SET bal = bal + 1 WHERE id = ?", 1)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assertNothingPrepared()

    def test_postgres_session_state_does_not_reach_the_next_client(self):
        # The agent's background passes borrow pooled connections too, so the next client gets
        # the same session most of the time, not always: try until it does.
        for _ in range(20):
            first = self.interactive("pg", "SELECT pg_backend_pid()", "SELECT nextval('seq')",
                                     "UPDATE acct SET bal = bal + 0 WHERE id = 2")
            txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE),
                                   timeout=5).txn_id
            got = self.coord.Execute(pb.ExecuteRequest(
                txn_id=txn, participant="pg",
                operation=h.sql_op("SELECT pg_backend_pid(), current_setting('lock_timeout')")),
                timeout=10)
            if got.rows[0].values[0] != first[0][0][0]:
                self.coord.Rollback(pb.RollbackRequest(txn_id=txn), timeout=10)
                continue
            # Same backend, yet its sequence state is gone: DISCARD ALL ran. The agent's own
            # setting is the session's default, so the reset keeps it.
            self.assertEqual(got.rows[0].values[1], "1s")
            self.assertIn("not yet defined in this session",
                          self.execute_fails(txn, "pg", "SELECT currval('seq')"))
            self.assertNothingPrepared()
            return
        self.fail("the second transaction never got the first one's session")

    def test_mariadb_session_state_does_not_reach_the_next_client(self):
        for _ in range(20):
            first = self.interactive("my", "SELECT CONNECTION_ID()", "SELECT LAST_INSERT_ID(42)",
                                     "UPDATE acct SET bal = bal + 0 WHERE id = 2")
            self.assertEqual(first[1][0][0], "42")
            second = self.interactive("my", "SELECT CONNECTION_ID(), LAST_INSERT_ID(), "
                                            "@@innodb_lock_wait_timeout")
            row = second[0][0]
            if row[0] != first[0][0][0]:
                continue  # another connection (see the PostgreSQL test): try again
            self.assertEqual(row[1], "0")  # reset by mysql_reset_connection
            self.assertEqual(row[2], "1")  # the agent's --lock-timeout-ms applied again
            self.assertNothingPrepared()
            return
        self.fail("the second transaction never got the first one's session")

    def test_run_as_role_limits_what_client_statements_reach(self):
        rows = self.interactive("pgrole", "SELECT current_user, session_user")
        self.assertEqual(rows[0][0], ["txc_client", "postgres"])
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        self.assertIn("permission denied", self.execute_fails(txn, "pgrole", "SELECT v FROM secret"))
        before = self.pg_balances()
        # One branch: one-phase commit, whose marker the agent writes as its own user.
        out = self.run_one("pgrole", "UPDATE acct SET bal = bal - 1 WHERE id = $1", 3)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        # Two branches: prepared as the agent's user, so the agent can finish it.
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch("pgrole", h.sql_op(
            "UPDATE acct SET bal = bal - 1 WHERE id = $1", 4, expect=1)))
        req.branches.append(h.branch("my", h.sql_op(
            "UPDATE acct SET bal = bal + 1 WHERE id = ?", 3, expect=1)))
        out = self.coord.Run(req, timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        after = self.pg_balances()
        self.assertEqual((after[3], after[4]), (before[3] - 1, before[4] - 1))
        self.assertNothingPrepared()
        # The agent's commit markers prove outcomes: the role cannot reach them, whatever the
        # default privileges gave it, and no client statement may name them.
        self.assertEqual(self.c.pgs["shop"].sql(
            "SELECT has_table_privilege('txc_client', 'txcoord_markers', 'INSERT')", db="shop"),
            [["f"]])
        self.assertRefused("pgrole", "INSERT INTO txcoord_markers (gid) VALUES ('txc_x')")

    def test_agents_warn_when_their_database_user_is_a_superuser(self):
        self.assertIn("user postgres is a PostgreSQL superuser", self.c.agents["pg"].log())
        self.assertIn("client statements run as role txc_client", self.c.agents["pgrole"].log())
        self.assertIn("has SUPER", self.c.agents["my"].log().replace("FILE,SUPER", "SUPER"))
        for agent in ("pg", "pgrole", "my", "pglist"):
            self.assertEqual(self.metric(agent, "txagent_database_superuser"), 1.0, agent)

    def test_limits_are_named_and_leave_nothing_behind(self):
        # Rows and bytes of one result (agents' --max-result-rows 10000, --max-result-bytes 1 MiB).
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        with self.assertRaises(grpc.RpcError) as cm:
            self.coord.Execute(pb.ExecuteRequest(
                txn_id=txn, participant="pg",
                operation=h.sql_op("SELECT g FROM generate_series(1, 20000) g")), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        # Reading stopped at the limit: the agent never read the other 9,999 rows.
        self.assertIn("more than 10000 rows, the limit (--max-result-rows)",
                      cm.exception.details())
        out = self.coord.Commit(pb.CommitRequest(txn_id=txn), timeout=10)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED)
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch("my", h.sql_op("SELECT REPEAT('x', 2000000)")))
        req.branches.append(h.branch("pg", h.sql_op("UPDATE acct SET bal = bal WHERE id = 5")))
        out = self.coord.Run(req, timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
        self.assertIn("(--max-result-bytes)", out.reason)
        # A statement over 1 MiB, and a request over the 4 MiB message limit.
        for size, code, why in [(2 << 20, grpc.StatusCode.INVALID_ARGUMENT, "bytes per statement"),
                                (5 << 20, grpc.StatusCode.RESOURCE_EXHAUSTED, "")]:
            with self.assertRaises(grpc.RpcError) as cm:
                self.run_one("pg", "SELECT '" + "x" * size + "'")
            self.assertEqual(cm.exception.code(), code)
            self.assertIn(why, cm.exception.details())
        self.assertNothingPrepared()

    def test_no_branch_for_another_coordinator_node(self):
        agent = self.c.participant_stub("pg")
        ppb = h.participant_pb2
        with self.assertRaises(grpc.RpcError) as cm:
            agent.Prepare(ppb.PrepareBranchRequest(
                ref=ppb.BranchRef(txn_id="n9-00000001-1-1", branch=0), begin=True,
                operations=[h.sql_op("UPDATE acct SET bal = bal WHERE id = 6")]), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("belongs to coordinator node 'n9'", cm.exception.details())
        self.assertNothingPrepared()
        # One prepared by hand under our prefix for node n9: reported, and left alone.
        pg = self.c.pgs["shop"]
        pg.sql("BEGIN; UPDATE acct SET bal = bal WHERE id = 7; "
               "PREPARE TRANSACTION 'txc_n9-00000001-1-2_0'", db="shop")
        try:
            h.eventually(lambda: self.metric("pg", "txagent_foreign_prepared_branches") == 1,
                         what="the foreign branch reported")
            self.assertIn("is prepared for coordinator node 'n9'", self.c.agents["pg"].log())
            # The operator sees it through txcoord: which agent, which node, for how long.
            admin = self.c.admin_stub()
            # Every agent of this database with --coordinator-node-id n1 sees it.
            listed = h.eventually(lambda: (lambda b: b if len(b) == 3 else None)(
                admin.ListForeignBranches(pb.ListForeignBranchesRequest(), timeout=5).branches),
                what="listed by txcoord for the three agents")
            self.assertEqual(sorted((b.participant, b.branch.gid, b.branch.node_id)
                                    for b in listed),
                             [(agent, "txc_n9-00000001-1-2_0", "n9")
                              for agent in ("pg", "pglist", "pgrole")])
            out = subprocess.run([os.path.join(h.BIN, "txctl"), "--coordinator",
                                  f"127.0.0.1:{self.c.coordinator.port}", "foreign"],
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
            self.assertIn("txc_n9-00000001-1-2_0", out)
            self.assertIn("n9", out)
            # Several reconcile passes (300 ms each) later it is still prepared.
            import time
            time.sleep(1)
            self.assertEqual(pg.prepared("shop"), ["txc_n9-00000001-1-2_0"])
            self.assertGreater(admin.ListForeignBranches(
                pb.ListForeignBranchesRequest(), timeout=5).branches[0].branch.seen_ms, 900)
        finally:
            pg.sql("ROLLBACK PREPARED 'txc_n9-00000001-1-2_0'", db="shop")
        h.eventually(lambda: self.metric("pg", "txagent_foreign_prepared_branches") == 0,
                     what="the report cleared")
        h.eventually(lambda: not self.c.admin_stub().ListForeignBranches(
            pb.ListForeignBranchesRequest(), timeout=5).branches, what="txcoord's list cleared")

    def named(self, participant, name, *params):
        op = h.sql_op("", *params, expect=1)
        op.sql.ClearField("text")
        op.sql.name = name
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch(participant, op))
        return req

    def test_an_allow_list_runs_named_statements_only(self):
        before = self.pg_balances()
        out = self.coord.Run(self.named("pglist", "debit", 2, 8), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assertEqual(self.pg_balances()[8], before[8] - 2)
        for req, why in [
                (self.named("pglist", "drop_everything"), "is not in this agent's allow-list"),
                (self.named("pglist", "debit", 1), "takes 2 parameters, got 1"),
                (self.named("pg", "debit", 1, 8), "has no allow-list"),
        ]:
            out = self.coord.Run(req, timeout=20)
            self.assertEqual(out.state, pb.TXN_STATE_ABORTED, out)
            self.assertIn(why, out.reason)
        txn = self.coord.Begin(pb.BeginRequest(protocol=pb.PROTOCOL_TWO_PHASE), timeout=5).txn_id
        self.assertIn("raw SQL is refused",
                      self.execute_fails(txn, "pglist", "UPDATE acct SET bal = 0 WHERE id = 8",
                                         code=grpc.StatusCode.PERMISSION_DENIED))
        self.assertEqual(self.pg_balances()[8], before[8] - 2)
        self.assertNothingPrepared()

    def test_an_unusable_run_as_role_stops_the_agent_at_start(self):
        pg = self.c.pgs["shop"]
        port = h.free_port()
        # A role that reaches the agent's table through another role it belongs to: the REVOKE
        # does not take that away, and the agent must not serve with it.
        # The same through a privilege on one column only, which has_table_privilege misses.
        pg.sql("CREATE ROLE marker_readers NOLOGIN; GRANT SELECT ON txcoord_markers TO "
               "marker_readers; CREATE ROLE leaky NOLOGIN; GRANT marker_readers TO leaky; "
               "GRANT leaky TO postgres; "
               "CREATE ROLE marker_column_writers NOLOGIN; "
               "GRANT INSERT (gid) ON txcoord_markers TO marker_column_writers; "
               "CREATE ROLE column_leaky NOLOGIN; GRANT marker_column_writers TO column_leaky; "
               "GRANT column_leaky TO postgres", db="shop")
        for role, why in [("nobody_here", "no such role"), ("postgres", "is a superuser"),
                          ("Bad-Name", "plain role name"), ("leaky", "still has privileges"),
                          ("column_leaky", "still has privileges")]:
            p = h.Process(self.c.root, f"agent-badrole-{port}",
                          [os.path.join(h.BIN, "txagent"), "--listen", f"127.0.0.1:{port}",
                           "--name", "pg", "--backend", "postgres", "--dsn", pg.dsn("shop"),
                           "--coordinator", f"127.0.0.1:{self.c.coordinator.port}",
                           "--run-as-role", role], port)
            p.start(wait=False)
            self.assertEqual(p.wait_exit(), 2, role)
            self.assertIn(why, p.log(), role)


if __name__ == "__main__":
    unittest.main()

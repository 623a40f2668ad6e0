"""txbench works against real PostgreSQL and MariaDB: a short run of every workload, through
txcoord and --direct, each checked as its user would (JSON keys, transactions committed, no
errors, total balance unchanged, no fsync for one-phase and read-only). A smoke test only:
benchmarks are run by hand (see the README's Performance section), never timed here."""
import json
import os
import subprocess
import unittest

from tests.harness import cluster as h

KEYS = {"tps", "committed", "aborted", "errors", "p50_ms", "p90_ms", "p99_ms", "p999_ms"}


class TxbenchSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = h.Cluster()
        try:
            pg = cls.c.add_postgres("orders", max_prepared=64)
            pg.sql("CREATE DATABASE orders")
            my = cls.c.add_mariadb("ledger")
            my.sql("CREATE DATABASE ledger")
            cls.metrics_port = h.free_port()
            cls.c.make_coordinator(["orders", "ledger", "n1", "n2"],
                                   extra=["--metrics-listen",
                                          f"127.0.0.1:{cls.metrics_port}"]).start()
            cls.c.add_agent("orders", pg.dsn("orders"))
            cls.c.add_agent("ledger", my.dsn("ledger"), backend="mysql",
                            extra=("--dsn-password-file", my.password_file))
            for n in ("n1", "n2"):
                cls.c.add_agent(n, "unused", backend="noop")
            cls.pg_dsn = pg.dsn("orders")
            cls.my_dsn = my.dsn("ledger")
            cls.my_password = my.password_file
        except Exception:
            cls.c.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def txbench(self, *args, expect_rc=0):
        argv = [os.path.join(h.BIN, "txbench"), "--json", "--duration", "2", "--warmup", "0.3",
                *args]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, expect_rc, r.stderr + r.stdout)
        if expect_rc != 0:
            return r
        out = json.loads(r.stdout)
        self.assertLessEqual(KEYS, set(out), out)
        return out

    def db_flags(self):
        return ["--pg-dsn", self.pg_dsn, "--mysql-dsn", self.my_dsn,
                "--mysql-password-file", self.my_password]

    def coordinator_flags(self):
        return ["--coordinator", f"127.0.0.1:{self.c.coordinator.port}",
                "--coordinator-metrics", f"127.0.0.1:{self.metrics_port}",
                "--pg-participant", "orders", "--mysql-participant", "ledger"]

    def assertClean(self, out):
        self.assertGreater(out["committed"], 0, out)
        self.assertEqual(out["errors"], 0, out)

    def test_1_setup_and_direct_transfer(self):
        out = self.txbench("--direct", "--setup", "--accounts", "200", "--clients", "4",
                           *self.db_flags())
        self.assertClean(out)
        self.assertTrue(out["balance_ok"], out)
        self.assertEqual(out["mode"], "direct")

    def test_2_transfer_through_txcoord_keeps_the_total(self):
        out = self.txbench("--workload", "transfer", "--accounts", "200", "--clients", "4",
                           "--abort-ratio", "0.1", *self.coordinator_flags(), *self.db_flags())
        self.assertClean(out)
        self.assertGreater(out["aborted"], 0, out)  # --abort-ratio: NO votes abort both sides
        self.assertTrue(out["balance_checked"], out)
        self.assertTrue(out["balance_ok"], out)
        self.assertGreater(out["log_fsyncs"], 0, out)

    def test_3_mix_and_open_loop(self):
        out = self.txbench("--workload", "mix", "--accounts", "200", "--clients", "4",
                           "--rate", "200", *self.coordinator_flags(), *self.db_flags())
        self.assertClean(out)
        self.assertTrue(out["balance_ok"], out)
        # 90% of mix commits in one phase: far fewer fsyncs than transactions.
        self.assertLess(out["log_fsyncs"], 0.5 * (out["committed"] + out["aborted"]), out)

    def test_4_readonly_costs_no_fsync(self):
        out = self.txbench("--workload", "readonly", "--accounts", "200", "--clients", "4",
                           *self.coordinator_flags(), *self.db_flags())
        self.assertClean(out)
        self.assertEqual(out["log_fsyncs"], 0, out)

    def test_5_empty_on_noop_agents(self):
        out = self.txbench("--workload", "empty", "--participant", "n1", "--participant", "n2",
                           "--clients", "8", *self.coordinator_flags())
        self.assertClean(out)
        self.assertGreater(out["log_fsyncs"], 0, out)

    def test_6_a_changed_total_fails_loudly(self):
        # Money appears outside any transaction: the next run's check sees the total move...
        # only if it changes during the run, so change it from a concurrent session mid-run.
        pg = self.c.pgs["orders"]
        proc = subprocess.Popen(
            [os.path.join(h.BIN, "txbench"), "--json", "--duration", "3", "--warmup", "0",
             "--workload", "transfer", "--accounts", "200", "--clients", "2",
             *self.coordinator_flags(), *self.db_flags()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        h.eventually(lambda: pg.sql("SELECT count(*) FROM pg_stat_activity WHERE "
                                    "application_name = 'txagent'")[0][0] != "0",
                     what="the run under way")
        pg.sql("UPDATE acct SET bal = bal + 1 WHERE id = 1", db="orders")
        _, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 1, err)
        self.assertIn("TOTAL BALANCE CHANGED", err)
        pg.sql("UPDATE acct SET bal = bal - 1 WHERE id = 1", db="orders")

    def test_7_bad_flags_are_one_clear_line(self):
        r = self.txbench("--workload", "nosuch", expect_rc=2)
        self.assertIn("--workload 'nosuch'", r.stderr)
        r = self.txbench("--direct", expect_rc=2)
        self.assertIn("--direct needs --pg-dsn and --mysql-dsn", r.stderr)

    def test_8_the_design_command_runs_and_says_the_balance_was_not_checked(self):
        # DESIGN.md's command line, without the DSNs: it runs, and says so loudly.
        argv = [os.path.join(h.BIN, "txbench"), "--coordinator",
                f"127.0.0.1:{self.c.coordinator.port}", "--workload", "transfer",
                "--pg-participant", "orders", "--mysql-participant", "ledger", "--clients", "2",
                "--duration", "1", "--warmup", "0", "--json"]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("will NOT be checked", r.stderr)
        out = json.loads(r.stdout)
        self.assertFalse(out["balance_checked"], out)
        self.assertGreater(out["committed"], 0, out)


if __name__ == "__main__":
    unittest.main()

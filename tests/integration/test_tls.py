"""Mutual TLS from real clients over real sockets: txcoord and an agent with --tls-cert,
--tls-key and --tls-ca (certificates from deploy/make-certs.sh), a real PostgreSQL.

What a user would check: a transaction commits with TLS everywhere (coordinator -> agent, agent
-> coordinator); a plaintext client, a client without a certificate, one whose certificate comes
from another CA or has expired, and one expecting the wrong server are refused; a client's
certificate cannot call an agent (no COMMIT PREPARED behind the coordinator's back) nor the
agents' calls on txcoord."""
import os
import subprocess
import unittest

import grpc

from tests.harness import cluster as h

pb = h.coordinator_pb2
ppb = h.participant_pb2
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(path, "rb") as f:
        return f.read()


class MutualTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cls.c = h.Cluster()
        try:
            certs = cls.certs = os.path.join(c.root, "certs")
            make = os.path.join(ROOT, "deploy", "make-certs.sh")
            subprocess.run(["bash", make, certs, "coordinator", "pg", "client"], check=True,
                           capture_output=True)
            # Another CA, and an expired certificate from the right one.
            subprocess.run(["bash", make, os.path.join(c.root, "other"), "client"], check=True,
                           capture_output=True)
            cls.expired = os.path.join(c.root, "expired")
            os.makedirs(cls.expired)
            e = os.path.join(cls.expired, "client")
            subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", e + ".key",
                            "-out", e + ".csr", "-subj", "/CN=client"], check=True,
                           capture_output=True)
            with open(e + ".ext", "w") as f:
                f.write("subjectAltName=DNS:client\nextendedKeyUsage=clientAuth\n")
            subprocess.run(["openssl", "x509", "-req", "-in", e + ".csr", "-CA",
                            os.path.join(certs, "ca.pem"), "-CAkey", os.path.join(certs, "ca.key"),
                            "-CAcreateserial", "-out", e + ".pem", "-days", "-1", "-extfile",
                            e + ".ext"], check=True, capture_output=True)

            def tls(name):
                return ("--tls-cert", os.path.join(certs, f"{name}.pem"), "--tls-key",
                        os.path.join(certs, f"{name}.key"), "--tls-ca",
                        os.path.join(certs, "ca.pem"))
            pg = c.add_postgres("shop")
            pg.sql("CREATE DATABASE shop")
            pg.sql("CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);"
                   "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g;", db="shop")
            c.make_coordinator(["pg"], extra=tls("coordinator")).start()
            c.add_agent("pg", pg.dsn("shop"), extra=tls("pg") + ("--coordinator-node-id", "n1"))
        except Exception:
            c.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def channel(self, port, server="coordinator", cert_dir=None, name="client", plaintext=False,
                with_cert=True):
        if plaintext:
            ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        else:
            cert_dir = cert_dir or self.certs
            creds = grpc.ssl_channel_credentials(
                root_certificates=read(os.path.join(self.certs, "ca.pem")),
                private_key=read(os.path.join(cert_dir, f"{name}.key")) if with_cert else None,
                certificate_chain=read(os.path.join(cert_dir, f"{name}.pem")) if with_cert
                else None)
            ch = grpc.secure_channel(f"127.0.0.1:{port}", creds,
                                     options=[("grpc.ssl_target_name_override", server),
                                              ("grpc.use_local_subchannel_pool", 1)])
        self.addCleanup(ch.close)
        return ch

    def coord(self, **kw):
        return h.coordinator_pb2_grpc.CoordinatorStub(self.channel(self.c.coordinator.port, **kw))

    def update(self, row):
        req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
        req.branches.append(h.branch("pg", h.sql_op(
            "UPDATE acct SET bal = bal - 1 WHERE id = $1", row, expect=1)))
        return req

    def bal(self, row):
        return int(self.c.pgs["shop"].sql(f"SELECT bal FROM acct WHERE id = {row}", db="shop")[0][0])

    def assertRefused(self, code, fn, *args):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args, timeout=5)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception.details()

    def test_a_transaction_commits_with_mutual_tls_everywhere(self):
        out = self.coord().Run(self.update(1), timeout=20)
        self.assertEqual(out.state, pb.TXN_STATE_COMMITTED, out)
        self.assertEqual(self.bal(1), 99)
        self.assertEqual(self.c.pgs["shop"].prepared("shop"), [])

    def test_clients_that_cannot_prove_who_they_are_are_refused(self):
        U = grpc.StatusCode.UNAVAILABLE
        for kw in [dict(plaintext=True),
                   dict(with_cert=False),
                   dict(cert_dir=os.path.join(self.c.root, "other")),
                   dict(cert_dir=self.expired),
                   dict(server="pg")]:  # expects another server: the name check fails
            self.assertRefused(U, self.coord(**kw).Run, self.update(2))
        self.assertEqual(self.bal(2), 100)

    def test_a_client_certificate_cannot_call_an_agent(self):
        agent = h.participant_pb2_grpc.ParticipantStub(
            self.channel(self.c.agents["pg"].port, server="pg"))
        ref = ppb.BranchRef(txn_id="n1-00000001-1-1", branch=0)
        D = grpc.StatusCode.PERMISSION_DENIED
        why = self.assertRefused(D, agent.Commit, ppb.CommitBranchRequest(ref=ref))
        self.assertIn("is for the coordinator ('coordinator')", why)
        self.assertIn("'client'", why)
        self.assertRefused(D, agent.ListInDoubt, ppb.ListInDoubtRequest())
        self.assertRefused(D, agent.Prepare, ppb.PrepareBranchRequest(ref=ref, begin=True))
        self.assertRefused(D, agent.Describe, ppb.DescribeRequest())
        self.assertIn("refused Commit from 'client'", self.c.agents["pg"].log())
        # A plaintext client does not get as far as a refusal.
        plain = h.participant_pb2_grpc.ParticipantStub(
            self.channel(self.c.agents["pg"].port, plaintext=True))
        self.assertRefused(grpc.StatusCode.UNAVAILABLE, plain.ListInDoubt, ppb.ListInDoubtRequest())

    def test_a_client_certificate_cannot_make_the_agents_calls(self):
        D = grpc.StatusCode.PERMISSION_DENIED
        coord = self.coord()
        why = self.assertRefused(D, coord.ReportDecision, pb.ReportDecisionRequest(
            txn_id="n1-00000001-1-1", participant="pg", decision=pb.DECISION_COMMIT))
        self.assertIn("must name a configured participant", why)
        self.assertRefused(D, coord.GetDecision, pb.GetDecisionRequest(txn_id="n1-00000001-1-1"))

    def test_an_agent_reports_decisions_for_itself_only(self):
        as_pg = self.coord(name="pg")
        why = self.assertRefused(grpc.StatusCode.PERMISSION_DENIED, as_pg.ReportDecision,
                                 pb.ReportDecisionRequest(txn_id="n1-00000001-1-1",
                                                          participant="inventory",
                                                          decision=pb.DECISION_COMMIT))
        self.assertIn("does not name it", why)
        # For itself it gets the driver's answer (no such 3PC transaction here).
        self.assertRefused(grpc.StatusCode.NOT_FOUND, as_pg.ReportDecision,
                           pb.ReportDecisionRequest(txn_id="n1-00000001-1-1", participant="pg",
                                                    decision=pb.DECISION_COMMIT))

    def test_the_agent_asks_the_coordinator_over_tls(self):
        # A branch prepared by a caller with the coordinator's certificate for a transaction the
        # coordinator never decided: the agent's reconciler asks (GetDecision, with its own
        # certificate) and rolls it back (presumed abort).
        agent = h.participant_pb2_grpc.ParticipantStub(
            self.channel(self.c.agents["pg"].port, server="pg", name="coordinator"))
        stats = h.coordinator_pb2_grpc.AdminStub(self.channel(self.c.coordinator.port)).GetStats(
            pb.GetStatsRequest(), timeout=5)
        txn_id = f"{stats.node_id}-{stats.incarnation}-1-900001"
        vote = agent.Prepare(ppb.PrepareBranchRequest(
            ref=ppb.BranchRef(txn_id=txn_id, branch=0), begin=True,
            operations=[h.sql_op("UPDATE acct SET bal = bal - 1 WHERE id = 3")]), timeout=10)
        self.assertEqual(vote.vote, ppb.VOTE_YES)
        h.eventually(lambda: self.c.pgs["shop"].prepared("shop") == [], timeout=15,
                     what="the in-doubt branch rolled back")
        self.assertEqual(self.bal(3), 100)
        self.assertIn("rolled back (coordinator said ABORT)", self.c.agents["pg"].log())


if __name__ == "__main__":
    unittest.main()

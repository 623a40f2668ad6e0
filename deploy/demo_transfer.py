#!/usr/bin/env python3
"""The demo: an order row in "orders" and a stock decrement in "inventory" (two PostgreSQL
databases), atomically; then money from alice's wallet in PostgreSQL to bob's in MariaDB.

One order commits; one asks for a pear (stock 0): the inventory statement expects 1 row
affected, gets 0, votes NO, and neither database changes. One transfer of 30 commits; one of
1,000,000 finds alice short (her update matches no row), so it aborts on both sides. Last, a
client tries to run a program on the database host (COPY ... TO PROGRAM): the agent's statement
policy refuses it before it reaches PostgreSQL, and the transaction aborts. With TLS and tokens
configured (the local cluster), a plaintext client and a client without a token are refused too.

usage: demo_transfer.py [COORDINATOR_ADDRESS] [--token-file FILE]
                        [--tls-cert FILE --tls-key FILE --tls-ca FILE [--tls-server-name NAME]]
  COORDINATOR_ADDRESS  default 127.0.0.1:7700
  --token-file FILE    a client token for a txcoord with --token-file (the local cluster's is
                       .cluster/client.token); sent as `authorization: Bearer TOKEN`
  --tls-*              mutual TLS (the local cluster's: .cluster/certs/client.pem, client.key,
                       ca.pem); the coordinator's certificate must name --tls-server-name
                       (default coordinator)
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools", "python"))
import txn_stubs  # noqa: E402,F401
import grpc  # noqa: E402
from txn.v1 import common_pb2 as common  # noqa: E402
from txn.v1 import coordinator_pb2 as pb  # noqa: E402
from txn.v1 import coordinator_pb2_grpc as rpc  # noqa: E402


def sql(text, *params, expect=None):
    op = common.Operation()
    op.sql.text = text
    op.sql.params.extend(str(p) for p in params)
    if expect is not None:
        op.sql.expect_rows_affected = expect
    return op


def order(order_id, sku, qty):
    return pb.RunRequest(
        protocol=pb.PROTOCOL_TWO_PHASE,
        wait_for_completion=True,
        branches=[
            pb.Branch(participant="orders", operations=[
                sql("INSERT INTO orders (id, sku, qty) VALUES ($1, $2, $3)", order_id, sku, qty)]),
            pb.Branch(participant="inventory", operations=[
                sql("UPDATE stock SET qty = qty - $1 WHERE sku = $2 AND qty >= $1", qty, sku,
                    expect=1)]),
        ])


def transfer(amount):
    """alice (PostgreSQL, $n placeholders) -> bob (MariaDB, ? placeholders)."""
    return pb.RunRequest(
        protocol=pb.PROTOCOL_TWO_PHASE,
        wait_for_completion=True,
        branches=[
            pb.Branch(participant="orders", operations=[
                sql("UPDATE wallets SET balance = balance - $1 WHERE id = 'alice' AND balance >= $1",
                    amount, expect=1)]),
            pb.Branch(participant="ledger", operations=[
                sql("UPDATE wallets SET balance = balance + ? WHERE id = 'bob'", amount, expect=1)]),
        ])


def show(title, outcome):
    print(f"{title}: {outcome.txn_id} {pb.TxnState.Name(outcome.state)}"
          + (f" ({outcome.reason})" if outcome.reason else ""))
    for b in outcome.branches:
        print(f"    {b.participant:<10} {pb.BranchState.Name(b.state)}"
              + (f"  {b.reason}" if b.reason else ""))


def read_token(path):
    """The token in `path`: its first line that is not blank or a comment."""
    with open(path) as f:
        for line in f:
            fields = line.split()
            if fields and not fields[0].startswith("#"):
                return fields[1] if len(fields) >= 2 else fields[0]
    sys.exit(f"{path} holds no token")


def channel(opts):
    """Plaintext, or mutual TLS when the --tls-* files are given."""
    files = (opts.tls_cert, opts.tls_key, opts.tls_ca)
    if not any(files):
        return grpc.insecure_channel(opts.address)
    if not all(files):
        sys.exit("--tls-cert, --tls-key and --tls-ca go together")
    cert, key, ca = (open(f, "rb").read() for f in files)
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                         certificate_chain=cert)
    return grpc.secure_channel(opts.address, creds,
                               options=[("grpc.ssl_target_name_override", opts.tls_server_name)])


def main():
    args = argparse.ArgumentParser(description="the txcoord demo transfer")
    args.add_argument("address", nargs="?", default="127.0.0.1:7700")
    args.add_argument("--token-file")
    args.add_argument("--tls-cert")
    args.add_argument("--tls-key")
    args.add_argument("--tls-ca")
    args.add_argument("--tls-server-name", default="coordinator")
    opts = args.parse_args()
    metadata = ((("authorization", f"Bearer {read_token(opts.token_file)}"),)
                if opts.token_file else None)
    stub = rpc.CoordinatorStub(channel(opts))

    def run(req):
        return stub.Run(req, timeout=30, metadata=metadata)

    stamp = int(time.time() * 1000)
    ok = run(order(f"order-{stamp}-apple", "apple", 2))
    show("order of 2 apples", ok)
    no = run(order(f"order-{stamp}-pear", "pear", 1))
    show("order of 1 pear (none in stock)", no)
    moved = run(transfer(30))
    show("alice (PostgreSQL) pays bob (MariaDB) 30", moved)
    broke = run(transfer(1_000_000))
    show("alice pays bob 1000000", broke)
    sneaky = run(pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE, branches=[
        pb.Branch(participant="orders", operations=[
            sql("COPY (SELECT 1) TO PROGRAM 'id > /tmp/txcoord-demo-owned'")])]))
    show("a program on the database host (COPY ... TO PROGRAM)", sneaky)
    states = (ok.state, no.state, moved.state, broke.state, sneaky.state)
    expected = (pb.TXN_STATE_COMMITTED, pb.TXN_STATE_ABORTED) * 2 + (pb.TXN_STATE_ABORTED,)
    refused_as_expected = True
    # Who may not call at all: a client without TLS, and one without a token.
    probes = []
    if opts.tls_cert:
        probes.append(("a plaintext client", rpc.CoordinatorStub(grpc.insecure_channel(opts.address)),
                       metadata, grpc.StatusCode.UNAVAILABLE))
    if metadata:
        probes.append(("a client without a token", stub, None, grpc.StatusCode.UNAUTHENTICATED))
    for title, probe, probe_metadata, want in probes:
        try:
            out = probe.Run(transfer(1), timeout=5, metadata=probe_metadata)
            print(f"{title}: NOT refused: {out.txn_id} {pb.TxnState.Name(out.state)}")
            refused_as_expected = False
        except grpc.RpcError as e:
            print(f"{title}: refused, {e.code().name}"
                  + (f" ({e.details()})" if e.code() != grpc.StatusCode.UNAVAILABLE else
                     " (no TLS, no connection)"))
            refused_as_expected = refused_as_expected and e.code() == want
    return 0 if states == expected and refused_as_expected else 1


if __name__ == "__main__":
    sys.exit(main())

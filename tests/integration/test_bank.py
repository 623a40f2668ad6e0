"""The bank, in the style of Jepsen's bank test: concurrent random transfers between accounts
spread over PostgreSQL and MariaDB. Afterwards the total is unchanged, every transfer is in both
databases' ledgers or in neither, every transfer a client saw COMMITTED is there, every one it
saw ABORTED is not, and no prepared transaction remains. TXCOORD_BANK_SECONDS sets the length."""
import os
import random
import threading
import time
import unittest

import grpc

from tests.harness import cluster as h
from tests.integration import bank_two_databases as bank

pb = h.coordinator_pb2


class Bank(unittest.TestCase):
    def setUp(self):
        self.c = bank.start_bank()
        self.seed = int(os.environ.get("TXCOORD_SEED", time.time_ns() % 1_000_000))
        print(f"\nbank: seed {self.seed}", flush=True)
        self.outcomes = {}
        self.lock = threading.Lock()

    def tearDown(self):
        self.c.stop()

    def client(self, n, deadline):
        rng = random.Random(self.seed * 10 + n)
        stub = self.c.coordinator_stub()
        accounts = [f"pg{i}" for i in range(bank.ACCOUNTS)] + [f"my{i}" for i in range(bank.ACCOUNTS)]
        seq = 0
        while time.time() < deadline:
            seq += 1
            src, dst = rng.sample(accounts, 2)
            tid = f"c{n}-{seq}"
            try:
                out = stub.Run(bank.transfer_request(tid, src, dst, rng.randint(1, 300)),
                               timeout=20)
                state = out.state
                if state not in (pb.TXN_STATE_COMMITTED, pb.TXN_STATE_ABORTED):
                    print(f"bank: {tid} {pb.TxnState.Name(state)}: {out.reason}", flush=True)
            except grpc.RpcError as e:
                state = e.code()
                print(f"bank: {tid} {e.code()}: {e.details()}", flush=True)
            with self.lock:
                self.outcomes[tid] = state

    def test_money_is_conserved_and_outcomes_are_true(self):
        seconds = float(os.environ.get("TXCOORD_BANK_SECONDS", "8"))
        deadline = time.time() + seconds
        threads = [threading.Thread(target=self.client, args=(n, deadline)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        h.eventually(lambda: bank.prepared(self.c) == [], timeout=20, what="nothing prepared")
        balances = bank.balances(self.c)
        self.assertEqual(sum(balances.values()), 2 * bank.ACCOUNTS * bank.INITIAL, balances)
        self.assertTrue(all(b >= 0 for b in balances.values()), balances)
        ledger = bank.ledger(self.c)
        for tid, rows in ledger.items():
            self.assertEqual(len(rows), 2, f"{tid} is in one database's ledger only: {rows}")
            self.assertEqual(sum(rows.values()), 0, f"{tid} does not balance: {rows}")
        committed = [t for t, s in self.outcomes.items() if s == pb.TXN_STATE_COMMITTED]
        aborted = [t for t, s in self.outcomes.items() if s == pb.TXN_STATE_ABORTED]
        self.assertEqual([t for t in committed if t not in ledger], [])
        self.assertEqual([t for t in aborted if t in ledger], [])
        others = {s for s in self.outcomes.values()} - {pb.TXN_STATE_COMMITTED, pb.TXN_STATE_ABORTED}
        self.assertEqual(others, set(), "no other outcome is expected without faults")
        # Per account, the ledger explains the balance.
        for account, balance in balances.items():
            moved = sum(rows.get(account, 0) for rows in ledger.values())
            self.assertEqual(balance, bank.INITIAL + moved, account)
        print(f"bank: {len(committed)} committed, {len(aborted)} aborted", flush=True)
        self.assertGreater(len(committed), 10)


if __name__ == "__main__":
    unittest.main()

"""SIGKILL at random moments: transfers run from two client threads while a random process
(txcoord, an agent, or a PostgreSQL server with `-m immediate`) is killed and restarted, round
after round. Afterwards: stock + ordered quantity adds up to the initial stock, every order a
client was told COMMITTED exists, every order told ABORTED does not, and no prepared transaction
is left. TXCOORD_KILL_ROUNDS sets the number of rounds (default 6); the seed is printed.
"""
import os
import random
import threading
import time
import unittest

import grpc

from tests.harness import cluster as h
from tests.integration import bank_fixture as shop

pb = h.coordinator_pb2
INITIAL_STOCK = 10_000


class RandomKills(unittest.TestCase):
    def setUp(self):
        self.seed = int(os.environ.get("TXCOORD_SEED", time.time_ns() % 1_000_000))
        print(f"\nrandom kills: seed {self.seed}", flush=True)
        self.rng = random.Random(self.seed)
        self.c = shop.start_shop(reconcile_ms=200)
        self.c.pgs["inventory"].sql(f"UPDATE stock SET qty = {INITIAL_STOCK} WHERE sku = 'apple'",
                                    db="inventory")
        self.outcomes = {}  # order id -> state the client was told, or None (RPC failed)
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def tearDown(self):
        self.stop.set()
        if getattr(self, "_failed", False):
            print(self.c.logs())
        self.c.stop()

    def client(self, n):
        stub, seq = self.c.coordinator_stub(), 0
        while not self.stop.is_set():
            seq += 1
            order_id = f"k{n}-{seq}"
            try:
                out = stub.Run(shop.order_request(order_id, wait=False), timeout=5)
                state = out.state
            except grpc.RpcError:
                state = None
                stub = self.c.coordinator_stub()
                time.sleep(0.05)
            with self.lock:
                self.outcomes[order_id] = state

    def kill_one(self):
        victim = self.rng.choice(["coordinator", "orders", "inventory", "pg-orders",
                                  "pg-inventory"])
        if victim == "coordinator":
            self.c.coordinator.kill()
            time.sleep(self.rng.uniform(0, 0.5))
            self.c.coordinator.start()
        elif victim.startswith("pg-"):
            pg = self.c.pgs[victim[3:]]
            pg.stop("immediate")
            time.sleep(self.rng.uniform(0, 0.5))
            pg.start()
        else:
            agent = self.c.agents[victim]
            agent.kill()
            time.sleep(self.rng.uniform(0, 0.5))
            agent.start()
        return victim

    def test_invariants_hold_after_random_kills(self):
        rounds = int(os.environ.get("TXCOORD_KILL_ROUNDS", "6"))
        clients = [threading.Thread(target=self.client, args=(n,)) for n in range(2)]
        for t in clients:
            t.start()
        victims = []
        try:
            for _ in range(rounds):
                time.sleep(self.rng.uniform(0.2, 1.0))
                victims.append(self.kill_one())
            time.sleep(0.5)
        finally:
            self.stop.set()
            for t in clients:
                t.join()
        print(f"random kills: killed {victims}; {len(self.outcomes)} transfers", flush=True)
        self._failed = True
        h.eventually(lambda: shop.prepared(self.c) == [], timeout=30,
                     what="every prepared transaction resolved")
        rows = self.c.pgs["orders"].sql("SELECT id, qty FROM orders", db="orders")
        ordered = {r[0]: int(r[1]) for r in rows}
        stock = shop.stock(self.c)
        self.assertEqual(stock + sum(ordered.values()), INITIAL_STOCK,
                         "an order and its stock decrement did not land together")
        committed = [o for o, s in self.outcomes.items() if s == pb.TXN_STATE_COMMITTED]
        aborted = [o for o, s in self.outcomes.items() if s == pb.TXN_STATE_ABORTED]
        self.assertEqual([o for o in committed if o not in ordered], [],
                         "told COMMITTED but not there")
        self.assertEqual([o for o in aborted if o in ordered], [], "told ABORTED but there")
        self.assertGreater(len(committed), 0)
        self._failed = False


if __name__ == "__main__":
    unittest.main()

"""The soak: transfers run from two client threads while, round after round, a random fault
strikes: txcoord, an agent or a PostgreSQL server (`-m immediate`) is SIGKILLed and restarted, the
links between txcoord and one agent are cut (packets dropped, or connections reset) for a while,
or txcoord is frozen with SIGSTOP for a while. Afterwards: stock + ordered quantity adds up to the
initial stock, every order a client was told COMMITTED exists, every order told ABORTED does not,
and no prepared transaction is left.

TXCOORD_SOAK_ROUNDS sets the number of rounds (default 8, what CI runs; e.g. 500 by hand for a
long soak); TXCOORD_SEED replays a run (the seed is printed).
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


class Soak(unittest.TestCase):
    def setUp(self):
        self.seed = int(os.environ.get("TXCOORD_SEED", time.time_ns() % 1_000_000))
        print(f"\nsoak: seed {self.seed}", flush=True)
        self.rng = random.Random(self.seed)
        self.c = shop.start_shop(reconcile_ms=200, partitionable=["orders", "inventory"])
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

    def strike(self):
        """One random fault, healed before it returns. Returns its name."""
        fault = self.rng.choice(["kill-coordinator", "kill-agent", "restart-postgres",
                                 "partition-drop", "partition-reset", "sigstop-coordinator"])
        outage = self.rng.uniform(0, 0.5)
        agent = self.rng.choice(["orders", "inventory"])
        if fault == "kill-coordinator":
            self.c.coordinator.kill()
            time.sleep(outage)
            self.c.coordinator.start()
        elif fault == "kill-agent":
            self.c.agents[agent].kill()
            time.sleep(outage)
            self.c.agents[agent].start()
        elif fault == "restart-postgres":
            self.c.pgs[agent].stop("immediate")
            time.sleep(outage)
            self.c.pgs[agent].start()
        elif fault.startswith("partition-"):
            self.c.partition(agent, "blackhole" if fault == "partition-drop" else "reset")
            time.sleep(outage * 4)
            self.c.heal(agent)
        else:
            self.c.coordinator.pause()
            time.sleep(outage * 4)
            self.c.coordinator.resume()
        return fault if fault.endswith("coordinator") else f"{fault}:{agent}"

    def test_invariants_hold_after_random_faults(self):
        rounds = int(os.environ.get("TXCOORD_SOAK_ROUNDS",
                                    os.environ.get("TXCOORD_KILL_ROUNDS", "8")))
        clients = [threading.Thread(target=self.client, args=(n,)) for n in range(2)]
        for t in clients:
            t.start()
        victims = []
        try:
            for _ in range(rounds):
                time.sleep(self.rng.uniform(0.2, 1.0))
                victims.append(self.strike())
            time.sleep(0.5)
        finally:
            self.stop.set()
            for t in clients:
                t.join()
        print(f"soak: faults {victims}; {len(self.outcomes)} transfers", flush=True)
        self._failed = True
        h.eventually(lambda: shop.prepared(self.c) == [], timeout=60,
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

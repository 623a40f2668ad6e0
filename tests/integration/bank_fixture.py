"""The seed scenario: an "orders" database and an "inventory" database, each its own PostgreSQL
cluster, an agent beside each, and a coordinator."""
from tests.harness import cluster as h

ORDERS_SCHEMA = "CREATE TABLE orders (id text PRIMARY KEY, sku text NOT NULL, qty int NOT NULL)"
STOCK_SCHEMA = ("CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0));"
                "INSERT INTO stock VALUES ('apple', 10), ('pear', 0)")


def start_shop(reconcile_ms=300, coordinator_extra=(), partitionable=(), agent_extra=()):
    c = h.Cluster(reconcile_ms=reconcile_ms)
    try:
        for name, schema in (("orders", ORDERS_SCHEMA), ("inventory", STOCK_SCHEMA)):
            pg = c.add_postgres(name)
            pg.sql(f"CREATE DATABASE {name}")
            pg.sql(schema, db=name)
        c.make_coordinator(["orders", "inventory"], extra=coordinator_extra,
                           partitionable=partitionable).start()
        for name in ("orders", "inventory"):
            c.add_agent(name, c.pgs[name].dsn(name), extra=agent_extra)
    except Exception:
        c.stop()
        raise
    return c


def order_request(order_id, sku="apple", qty=1, wait=True):
    req = h.coordinator_pb2.RunRequest(protocol=h.coordinator_pb2.PROTOCOL_TWO_PHASE,
                                       wait_for_completion=wait)
    req.branches.append(h.branch("orders", h.sql_op(
        "INSERT INTO orders (id, sku, qty) VALUES ($1, $2, $3)", order_id, sku, qty)))
    req.branches.append(h.branch("inventory", h.sql_op(
        "UPDATE stock SET qty = qty - $1 WHERE sku = $2 AND qty >= $1", qty, sku, expect=1)))
    return req


def orders(c):
    return [r[0] for r in c.pgs["orders"].sql("SELECT id FROM orders ORDER BY id", db="orders")]


def stock(c, sku="apple"):
    return int(c.pgs["inventory"].sql(f"SELECT qty FROM stock WHERE sku = '{sku}'",
                                      db="inventory")[0][0])


def prepared(c):
    return c.pgs["orders"].prepared("orders") + c.pgs["inventory"].prepared("inventory")

"""The bank across two databases: accounts in PostgreSQL ("pg", database bank) and in MariaDB
("my", database ledger), a ledger table in each, an agent beside each, and a coordinator."""
from tests.harness import cluster as h

pb = h.coordinator_pb2
ACCOUNTS = 5
INITIAL = 1000
PG_SCHEMA = ("CREATE TABLE accounts (id text PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));"
             "CREATE TABLE ledger (transfer_id text NOT NULL, account text NOT NULL, delta int NOT NULL,"
             " PRIMARY KEY (transfer_id, account));"
             + "".join(f"INSERT INTO accounts VALUES ('pg{i}', {INITIAL});" for i in range(ACCOUNTS)))
MY_SCHEMA = ("CREATE TABLE accounts (id varchar(16) PRIMARY KEY, balance int NOT NULL) ENGINE=InnoDB;"
             "CREATE TABLE ledger (transfer_id varchar(64) NOT NULL, account varchar(16) NOT NULL,"
             " delta int NOT NULL, PRIMARY KEY (transfer_id, account)) ENGINE=InnoDB;"
             + "".join(f"INSERT INTO accounts VALUES ('my{i}', {INITIAL});" for i in range(ACCOUNTS)))


def start_bank(reconcile_ms=300):
    c = h.Cluster(reconcile_ms=reconcile_ms)
    try:
        pg = c.add_postgres("bank")
        pg.sql("CREATE DATABASE bank")
        pg.sql(PG_SCHEMA, db="bank")
        my = c.add_mariadb("ledger")
        my.sql("CREATE DATABASE ledger")
        my.sql(MY_SCHEMA, db="ledger")
        c.make_coordinator(["pg", "my"]).start()
        c.add_agent("pg", pg.dsn("bank"))
        c.add_agent("my", my.dsn("ledger"), backend="mysql",
                    extra=("--dsn-password-file", my.password_file))
    except Exception:
        c.stop()
        raise
    return c


def debit(participant, account, amount, transfer_id):
    """Statements taking `amount` from `account` (NO vote if the balance is short)."""
    if participant == "pg":
        return [h.sql_op("UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1",
                         amount, account, expect=1),
                h.sql_op("INSERT INTO ledger VALUES ($1, $2, $3)", transfer_id, account, -amount)]
    return [h.sql_op("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                     amount, account, amount, expect=1),
            h.sql_op("INSERT INTO ledger VALUES (?, ?, ?)", transfer_id, account, -amount)]


def credit(participant, account, amount, transfer_id):
    if participant == "pg":
        return [h.sql_op("UPDATE accounts SET balance = balance + $1 WHERE id = $2", amount, account,
                         expect=1),
                h.sql_op("INSERT INTO ledger VALUES ($1, $2, $3)", transfer_id, account, amount)]
    return [h.sql_op("UPDATE accounts SET balance = balance + ? WHERE id = ?", amount, account,
                     expect=1),
            h.sql_op("INSERT INTO ledger VALUES (?, ?, ?)", transfer_id, account, amount)]


def participant_of(account):
    return "pg" if account.startswith("pg") else "my"


def transfer_request(transfer_id, src, dst, amount):
    ops = {}
    ops.setdefault(participant_of(src), []).extend(debit(participant_of(src), src, amount, transfer_id))
    ops.setdefault(participant_of(dst), []).extend(credit(participant_of(dst), dst, amount, transfer_id))
    req = pb.RunRequest(protocol=pb.PROTOCOL_TWO_PHASE)
    for participant, operations in ops.items():
        req.branches.append(h.branch(participant, *operations))
    return req


def balances(c):
    pg = {r[0]: int(r[1]) for r in c.pgs["bank"].sql("SELECT id, balance FROM accounts", db="bank")}
    my = {r[0]: int(r[1]) for r in c.mariadbs["ledger"].sql("SELECT id, balance FROM accounts",
                                                            db="ledger")}
    return {**pg, **my}


def ledger(c):
    """transfer id -> {account: delta} over both databases."""
    out = {}
    for r in c.pgs["bank"].sql("SELECT transfer_id, account, delta FROM ledger", db="bank"):
        out.setdefault(r[0], {})[r[1]] = int(r[2])
    for r in c.mariadbs["ledger"].sql("SELECT transfer_id, account, delta FROM ledger", db="ledger"):
        out.setdefault(r[0], {})[r[1]] = int(r[2])
    return out


def prepared(c):
    return c.pgs["bank"].prepared("bank") + c.mariadbs["ledger"].prepared()

#!/usr/bin/env python3
"""Runs the README's hot-row (deadlock) table on the local cluster and prints it as Markdown.

Transfers over few accounts make cross-database deadlocks common: txcoord runs a transaction's
PostgreSQL debit and MariaDB credit at once, so two transfers that share both rows can each hold
one and wait for the other. For each of --accounts and --clients it runs, interleaved on the same
servers: txcoord with deadlock detection (the default), txcoord with --no-deadlock-detection (the
agents' lock timeout, 5 s, ends every deadlock), and `txbench --direct`, which locks PostgreSQL
before MariaDB and so never deadlocks. From txcoord's /metrics it reads the deadlocks broken and
the time from each cycle's last wait to its victim's abort.

Needs `bash deploy/local-cluster.sh up` first; restarts the cluster's txcoord (and leaves it with
detection on).

  /usr/bin/python3 deploy/deadlock_benchmark.py [--duration 8] [--accounts 10,100] [--clients 8,32]
"""
import argparse
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark import COORD, DB, restart_coordinator, txbench  # noqa: E402


def cycle_ages():
    """(deadlocks broken, cumulative cycle-age buckets {le: count}) from txcoord's /metrics."""
    text = urllib.request.urlopen("http://127.0.0.1:9700/metrics", timeout=5).read().decode()
    broken = 0
    buckets = {}
    for line in text.splitlines():
        if line.startswith("txcoord_deadlocks_broken_total"):
            broken = int(float(line.split()[-1]))
        m = re.match(r'txcoord_deadlock_cycle_age_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            buckets[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = int(
                float(m.group(2)))
    return broken, buckets


def quantile(before, after, q):
    """Upper bound (ms) of the bucket holding quantile q of the observations between two scrapes."""
    delta = {le: after.get(le, 0) - before.get(le, 0) for le in after}
    total = delta.get(float("inf"), 0)
    if total == 0:
        return None
    for le in sorted(delta):
        if delta[le] >= q * total:
            return le * 1000
    return None


def fmt_ms(v):
    return "-" if v is None else ("> 5000" if v == float("inf") else f"<= {v:.0f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--accounts", default="10,100")
    ap.add_argument("--clients", default="8,32")
    opts = ap.parse_args()
    d = opts.duration
    accounts = [int(a) for a in opts.accounts.split(",")]
    clients = [int(c) for c in opts.clients.split(",")]
    txbench(["--direct", "--setup", *DB, "--clients", "1"], 1)
    results = {}
    for mode, extra in (("detection", []), ("lock timeout only", ["--no-deadlock-detection"])):
        restart_coordinator(extra)
        for a in accounts:
            for c in clients:
                args = ["--accounts", str(a), "--clients", str(c)]
                if mode == "detection":
                    results[("direct", a, c)] = (txbench(["--direct", *DB, *args], d), None)
                b0, h0 = cycle_ages()
                run = txbench([*COORD, *DB, *args], d)
                b1, h1 = cycle_ages()
                results[(mode, a, c)] = (run, (b1 - b0, quantile(h0, h1, 0.5),
                                               quantile(h0, h1, 0.99)))
                print(mode, a, c, run["tps"], run["p99_ms"], run["aborted"], file=sys.stderr)
    restart_coordinator([])
    print("| accounts | clients | run | tps | p50 ms | p99 ms | aborted | deadlocks broken | "
          "cycle -> victim aborted, p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for a in accounts:
        for c in clients:
            for mode in ("detection", "lock timeout only", "direct"):
                run, dl = results[(mode, a, c)]
                name = {"detection": "txcoord", "lock timeout only":
                        "txcoord --no-deadlock-detection", "direct": "txbench --direct"}[mode]
                dl_cells = (f"{dl[0]} | {fmt_ms(dl[1])} / {fmt_ms(dl[2])}" if dl and dl[0]
                            else "0 | -")
                print(f"| {a} | {c} | {name} | {run['tps']:.0f} | {run['p50_ms']:.1f} | "
                      f"{run['p99_ms']:.1f} | {run['aborted']} | {dl_cells} |")


if __name__ == "__main__":
    main()

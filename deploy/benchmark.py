#!/usr/bin/env python3
"""Runs the README's Performance table on the local cluster and prints it as Markdown.

Needs `bash deploy/local-cluster.sh up` first. Every txcoord figure is measured beside
`txbench --direct` in the same run of this script, on the same servers, runs interleaved;
each cell is the median of --repeat runs. It restarts the cluster's txcoord (with
--no-one-phase and --unary-calls for the comparisons, then as it was) and starts a second
txcoord with two noop agents of its own for the `empty` rows.

  /usr/bin/python3 deploy/benchmark.py [--duration 8] [--repeat 3] [--quick]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE = os.environ.get("TXCOORD_CLUSTER_DIR", os.path.join(ROOT, ".cluster"))
BIN = os.path.join(ROOT, "build", "bin")
PG = "host=127.0.0.1 port=55432 user=postgres dbname=orders"
MY = "host=127.0.0.1 port=53306 user=txcoord dbname=ledger"
DB = ["--pg-dsn", PG, "--mysql-dsn", MY, "--mysql-password-file",
      os.path.join(STATE, "ledger.password")]
COORD = ["--coordinator", "127.0.0.1:7700", "--coordinator-metrics", "127.0.0.1:9700",
         "--pg-participant", "orders", "--mysql-participant", "ledger",
         "--token-file", os.path.join(STATE, "client.token"),
         "--tls-cert", os.path.join(STATE, "certs", "client.pem"),
         "--tls-key", os.path.join(STATE, "certs", "client.key"),
         "--tls-ca", os.path.join(STATE, "certs", "ca.pem")]


def txbench(args, duration):
    r = subprocess.run([os.path.join(BIN, "txbench"), "--json", "--duration", str(duration),
                        *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"txbench {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


def restart_coordinator(extra):
    """Restarts the cluster's txcoord with TXCOORD_EXTRA_FLAGS=extra."""
    pid_file = os.path.join(STATE, "pids", "txcoord")
    with open(pid_file) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        try:
            os.kill(pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            break
    env = dict(os.environ, TXCOORD_EXTRA_FLAGS=" ".join(extra))
    subprocess.run(["bash", os.path.join(ROOT, "deploy", "local-cluster.sh"), "up"], env=env,
                   check=True, stdout=subprocess.DEVNULL)


def agent_steps(port):
    """txagent_branch_step_seconds sums and counts by step, from an agent's /metrics."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        for kind in ("sum", "count"):
            prefix = f"txagent_branch_step_seconds_{kind}{{step=\""
            if line.startswith(prefix):
                step = line[len(prefix):line.index('"', len(prefix))]
                out.setdefault(step, {})[kind] = float(line.rsplit(" ", 1)[1])
    return out


def step_costs(before, after):
    """Mean milliseconds per step between two agent_steps() readings."""
    costs = {}
    for step, a in after.items():
        b = before.get(step, {"sum": 0, "count": 0})
        n = a.get("count", 0) - b.get("count", 0)
        if n > 0:
            costs[step] = (a["sum"] - b["sum"]) / n * 1000
    return costs


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def cell(runs):
    return (f"{median(runs, 'tps'):.0f} tps, p50 {median(runs, 'p50_ms'):.2f} ms, "
            f"p99 {median(runs, 'p99_ms'):.2f} ms")


def ratio(a, b):
    return statistics.median(x["tps"] / y["tps"] for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", default="1,8,32")
    opts = ap.parse_args()
    d, n = opts.duration, opts.repeat
    clients = [int(c) for c in opts.clients.split(",")]
    txbench(["--direct", "--setup", *DB, "--clients", "1"], 1)
    rows = []

    print("## transfer: txcoord 2PC vs --direct", file=sys.stderr)
    steps = {}
    for c in clients:
        direct, coord = [], []
        for _ in range(n):
            direct.append(txbench(["--direct", *DB, "--clients", str(c)], d))
            before = {p: agent_steps(p) for p in (9711, 9713)}
            coord.append(txbench([*COORD, *DB, "--clients", str(c)], d))
            if c == 1:
                steps = {p: step_costs(before[p], agent_steps(p)) for p in (9711, 9713)}
        fsyncs = median(coord, "log_fsyncs")
        txns = median(coord, "committed")
        rows.append(f"| transfer | {c} | {cell(coord)} | {cell(direct)} | "
                    f"{ratio(coord, direct):.2f} | {median(coord, 'aborted'):.0f} aborted, "
                    f"{median(coord, 'errors'):.0f} errors |")
        print(rows[-1], file=sys.stderr)

    print("## transfer with one unary RPC per message (--unary-calls)", file=sys.stderr)
    restart_coordinator(["--unary-calls"])
    c = 8 if 8 in clients else clients[-1]
    direct, coord = [], []
    for _ in range(n):
        direct.append(txbench(["--direct", *DB, "--clients", str(c)], d))
        coord.append(txbench([*COORD, *DB, "--clients", str(c)], d))
    rows.append(f"| transfer, txcoord --unary-calls | {c} | {cell(coord)} | {cell(direct)} | "
                f"{ratio(coord, direct):.2f} | |")
    print(rows[-1], file=sys.stderr)

    print("## mix, and mix with one-phase commit off", file=sys.stderr)
    restart_coordinator([])
    mix = [txbench(["--workload", "mix", *COORD, *DB, "--clients", str(c)], d) for _ in range(n)]
    restart_coordinator(["--no-one-phase"])
    mix2 = [txbench(["--workload", "mix", *COORD, *DB, "--clients", str(c)], d)
            for _ in range(n)]
    restart_coordinator([])
    rows.append(f"| mix | {c} | {cell(mix)}; {median(mix, 'log_fsyncs'):.0f} fsyncs for "
                f"{median(mix, 'committed'):.0f} commits | with --no-one-phase: {cell(mix2)}; "
                f"{median(mix2, 'log_fsyncs'):.0f} fsyncs | {ratio(mix, mix2):.2f} | |")
    print(rows[-1], file=sys.stderr)
    ro = [txbench(["--workload", "readonly", *COORD, *DB, "--clients", str(c)], d)
          for _ in range(n)]
    rows.append(f"| readonly | {c} | {cell(ro)}; {median(ro, 'log_fsyncs'):.0f} fsyncs | | | |")
    print(rows[-1], file=sys.stderr)

    print("## empty: 2 noop agents, a txcoord of their own", file=sys.stderr)
    bench_dir = os.path.join(STATE, "bench")
    subprocess.run(["rm", "-rf", bench_dir], check=True)
    os.makedirs(bench_dir)
    procs = []

    def start_empty(extra):
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait()
        procs.clear()
        log = open(os.path.join(bench_dir, "daemons.log"), "a")
        for i, port in ((1, 7821), (2, 7822)):
            procs.append(subprocess.Popen(
                [os.path.join(BIN, "txagent"), "--listen", f"127.0.0.1:{port}", "--name",
                 f"n{i}", "--backend", "noop", "--dsn", "-", "--coordinator", "127.0.0.1:7801"],
                stdout=log, stderr=log))
        procs.append(subprocess.Popen(
            [os.path.join(BIN, "txcoord"), "--listen", "127.0.0.1:7801", "--node-id", "b1",
             "--data-dir", os.path.join(bench_dir, "coord-data"), "--metrics-listen",
             "127.0.0.1:9701", "--participant", "n1=127.0.0.1:7821", "--participant",
             "n2=127.0.0.1:7822", *extra], stdout=log, stderr=log))
        time.sleep(1.5)

    empty_args = ["--coordinator", "127.0.0.1:7801", "--coordinator-metrics", "127.0.0.1:9701",
                  "--workload", "empty", "--participant", "n1", "--participant", "n2",
                  "--clients", "64"]
    try:
        start_empty([])
        empty = [txbench(empty_args, d) for _ in range(n)]
        start_empty(["--unary-calls"])
        empty_unary = [txbench(empty_args, d) for _ in range(n)]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait()
    per_fsync = statistics.median(r["committed"] / max(1, r["log_fsyncs"]) for r in empty)
    rows.append(f"| empty, 2 noop agents | 64 | {cell(empty)}; about {per_fsync:.0f} commits "
                f"per fsync | with --unary-calls: {cell(empty_unary)} | "
                f"{ratio(empty, empty_unary):.2f} | |")
    print(rows[-1], file=sys.stderr)

    for port, name in ((9711, "PostgreSQL agent (orders)"), (9713, "MariaDB agent (ledger)")):
        if steps.get(port):
            print(f"- {name}, transfer at 1 client, mean ms per step: " + ", ".join(
                f"{k} {v:.3f}" for k, v in sorted(steps[port].items())))
    print()
    print("| workload | clients | txcoord | floor or comparison | ratio | notes |")
    print("|---|---:|---|---|---:|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()

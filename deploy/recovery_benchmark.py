#!/usr/bin/env python3
"""How fast a restarted txcoord finishes the transactions it had decided, and what it weighs.

Starts a txcoord of its own with two noop agents (ports 7811, 7831-7832, metrics 9811, 9831-9832;
state under .cluster/recovery), armed with `coord.before_commit_sent=error`: every COMMIT
decision is logged and answered, but no Commit reaches an agent, as if both were unreachable
after their YES votes. `txbench --workload empty` fills it until --transactions are in flight
(--max-active refuses the rest), then this script reads txcoord's RSS, SIGKILLs it, starts it
again on the same data folder without the failpoint, and measures how long until every one of
those transactions is finished (txcoord_active_transactions back to 0: a transaction leaves
memory only once every branch acknowledged its commit). Does not need the local cluster.

  /usr/bin/python3 deploy/recovery_benchmark.py [--transactions 10000] [--json]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE = os.path.join(os.environ.get("TXCOORD_CLUSTER_DIR", os.path.join(ROOT, ".cluster")),
                     "recovery")
BIN = os.environ.get("TXCOORD_BIN", os.path.join(ROOT, "build", "bin"))
COORD_PORT, COORD_METRICS = 7811, 9811
AGENTS = (("r1", 7831, 9831), ("r2", 7832, 9832))


def scrape(port):
    """{name{labels}: value} from a /metrics page, or None while it does not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return None
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def total(metrics, name):
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    sys.exit(f"recovery_benchmark: timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transactions", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args()
    n = opts.transactions

    subprocess.run(["rm", "-rf", STATE], check=True)
    os.makedirs(STATE)
    log = open(os.path.join(STATE, "daemons.log"), "a")
    procs = []

    def start_coordinator(failpoints):
        env = dict(os.environ)
        env.pop("TXN_FAILPOINTS", None)
        if failpoints:
            env["TXN_FAILPOINTS"] = failpoints
        p = subprocess.Popen(
            [os.path.join(BIN, "txcoord"), "--listen", f"127.0.0.1:{COORD_PORT}", "--node-id",
             "rb", "--data-dir", os.path.join(STATE, "coord-data"), "--metrics-listen",
             f"127.0.0.1:{COORD_METRICS}", "--max-active", str(n),
             "--max-active-per-principal", "0",
             *[a for name, port, _ in AGENTS
               for a in ("--participant", f"{name}=127.0.0.1:{port}")]],
            stdout=log, stderr=log, env=env)
        procs.append(p)
        return p

    try:
        for name, port, metrics in AGENTS:
            procs.append(subprocess.Popen(
                [os.path.join(BIN, "txagent"), "--listen", f"127.0.0.1:{port}", "--name", name,
                 "--backend", "noop", "--dsn", "-", "--coordinator",
                 f"127.0.0.1:{COORD_PORT}", "--metrics-listen", f"127.0.0.1:{metrics}",
                 # The branches stay prepared until the restarted coordinator's Commit: the
                 # agents' reconcilers would otherwise ask it and commit them themselves.
                 "--reconcile-interval-ms", "3600000"],
                stdout=log, stderr=log))
        coord = start_coordinator("coord.before_commit_sent=error")
        wait_for(lambda: scrape(COORD_METRICS), 30, "txcoord's metrics")

        # Fill it: every transaction is answered COMMITTED and stays in flight, its commits
        # failing, until --max-active refuses more.
        bench = subprocess.Popen(
            [os.path.join(BIN, "txbench"), "--coordinator", f"127.0.0.1:{COORD_PORT}",
             "--workload", "empty", "--participant", AGENTS[0][0], "--participant",
             AGENTS[1][0], "--clients", str(opts.clients), "--duration", "600", "--warmup", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        wait_for(lambda: total(scrape(COORD_METRICS) or {}, "txcoord_active_transactions") >= n,
                 300, f"{n} transactions in flight")
        fill_s = time.monotonic() - started
        bench.kill()
        bench.wait()
        time.sleep(1)  # commit retries keep running: what it weighs while they do
        rss, hwm = rss_mb(coord.pid)
        in_flight = total(scrape(COORD_METRICS), "txcoord_active_transactions")

        coord.kill()  # SIGKILL: no flush, no goodbye
        coord.wait()
        procs.remove(coord)
        restarted = time.monotonic()
        coord = start_coordinator(None)
        first = wait_for(lambda: scrape(COORD_METRICS), 60, "the restarted txcoord's metrics")
        serving_s = time.monotonic() - restarted
        recovered = total(first, "txcoord_recovered_transactions_total")

        def finished():
            m = scrape(COORD_METRICS)
            if m is None or total(m, "txcoord_active_transactions") > 0:
                return None
            return m

        done = wait_for(finished, 120, "every recovered transaction to finish")
        recovered_all = total(done, "txcoord_recovered_transactions_total")
        if recovered_all < in_flight:
            sys.exit(f"recovery_benchmark: only {recovered_all:.0f} of the {in_flight:.0f} "
                     "transactions in flight were recovered")
        resolved_s = time.monotonic() - restarted
        rss_after, _ = rss_mb(coord.pid)
        result = {
            "transactions_in_flight": int(in_flight),
            "fill_seconds": round(fill_s, 2),
            "rss_mb_in_flight": round(rss, 1),
            "rss_peak_mb": round(hwm, 1),
            "restart_to_serving_seconds": round(serving_s, 2),
            "restart_to_all_finished_seconds": round(resolved_s, 2),
            "recovered_transactions": int(max(recovered, recovered_all)),
            "rss_mb_after_recovery": round(rss_after, 1),
        }
        if opts.json:
            print(json.dumps(result))
        else:
            for k, v in result.items():
                print(f"{k}: {v}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait()


if __name__ == "__main__":
    main()

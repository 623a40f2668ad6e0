"""Test harness: real PostgreSQL servers, txagent and txcoord processes, and gRPC stubs.

Everything runs on 127.0.0.1 in temporary folders and is torn down by stop(). Processes are
started from the build folder named by $TXCOORD_BUILD_DIR (default: ./build).
"""
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TXCOORD_BUILD_DIR", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "bin")


sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
import txn_stubs  # noqa: E402,F401  (compiles proto/ to Python on first use)
from tests.harness import fault_proxy  # noqa: E402
import grpc  # noqa: E402
from txn.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc  # noqa: E402,F401
from txn.v1 import participant_pb2, participant_pb2_grpc  # noqa: E402,F401


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=20.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def _pg_bin(tool):
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    return candidates[-1]


class Postgres:
    """One PostgreSQL cluster in a temporary folder, run as the postgres user."""

    def __init__(self, root, name, max_prepared=20):
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(root, f"pg-{name}")
        os.makedirs(self.dir)
        pg = pwd.getpwnam("postgres")
        os.chown(self.dir, pg.pw_uid, pg.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self._as_pg([_pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                     "--no-sync", "-E", "UTF8"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    f"max_prepared_transactions = {max_prepared}\nfsync = off\n"
                    "shared_buffers = 16MB\nmax_connections = 60\n")
        self.start()

    def _as_pg(self, argv, **kw):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + argv, check=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

    def start(self):
        self._as_pg([_pg_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "log"),
                     "-w", "-t", "30", "start"])

    def stop(self, mode="fast"):
        subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("pg_ctl"), "-D", self.data,
                        "-m", mode, "-w", "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def dsn(self, db="postgres"):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def sql(self, text, db="postgres"):
        """Runs `text` with psql and returns the rows as lists of strings."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                            "-c", text], check=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        return [line.split("|") for line in r.stdout.splitlines() if line]

    def prepared(self, db="postgres"):
        return [r[0] for r in self.sql("SELECT gid FROM pg_prepared_xacts "
                                       f"WHERE database = '{db}' ORDER BY gid")]


class ChildProcess:
    """A server process this harness started (`self.proc`): kill() is kill -9, stop() is SIGTERM,
    then kill -9 after `stop_timeout` seconds; pause()/resume() are SIGSTOP/SIGCONT."""

    proc = None
    stop_timeout = 10

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def pause(self):
        """SIGSTOP: the process is there but does nothing (a long GC pause, a frozen VM)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class MariaDB(ChildProcess):
    """One MariaDB server in a temporary folder (Debian's mariadb-server), run as the mysql user.
    Agents connect over TCP as user `txc` with the password in `password_file`."""

    PASSWORD = "txc-secret"
    stop_timeout = 30

    def __init__(self, root, name):
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(root, f"mariadb-{name}")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        my = pwd.getpwnam("mysql")
        for d in (self.dir, self.data):
            os.chown(d, my.pw_uid, my.pw_gid)
        self.socket = os.path.join(self.dir, "sock")
        self.password_file = os.path.join(root, f"mariadb-{name}.password")
        with open(self.password_file, "w") as f:
            f.write(self.PASSWORD + "\n")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.data}",
                        "--user=mysql", "--auth-root-authentication-method=socket",
                        "--skip-test-db"], check=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
        self.proc = None
        self.start()
        self.sql(f"CREATE USER 'txc'@'%' IDENTIFIED BY '{self.PASSWORD}'; "
                 "GRANT ALL ON *.* TO 'txc'@'%'")

    def start(self):
        log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--user=mysql", "--skip-log-bin",
             "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
             "--innodb-lock-wait-timeout=5", f"--pid-file={self.dir}/pid"],
            stdout=log, stderr=log)
        log.close()
        wait_for_port(self.port, timeout=60, proc=self.proc)

    def dsn(self, db):
        return f"host=127.0.0.1 port={self.port} user=txc dbname={db}"

    def sql(self, text, db=None):
        argv = ["mariadb", "--no-defaults", "-S", self.socket, "-uroot", "-N", "-B", "-e", text]
        if db:
            argv.append(db)
        r = subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        return [line.split("\t") for line in r.stdout.splitlines()]

    @contextlib.contextmanager
    def holding_rows(self, db, update, what="the outside session holds its rows"):
        """A session that is not ours (the mariadb client) runs `update` in an open transaction
        and holds the rows it locked until the block ends, or until the block calls the function
        it is given; then it rolls back."""
        outsider = subprocess.Popen(
            ["mariadb", "--no-defaults", "-S", self.socket, "-uroot", db],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)

        def release():
            if not outsider.stdin.closed:
                outsider.stdin.write("ROLLBACK;\n")
                outsider.stdin.close()

        try:
            outsider.stdin.write(f"BEGIN; {update};\n")
            outsider.stdin.flush()
            eventually(lambda: self.sql("SELECT count(*) FROM information_schema.INNODB_TRX "
                                        "WHERE trx_rows_locked > 0")[0][0] != "0", what=what)
            yield release
        finally:
            release()
            outsider.wait(timeout=10)

    def prepared(self):
        """gids of our prepared XA transactions (XA RECOVER, format 7868)."""
        return sorted(r[3] for r in self.sql("XA RECOVER") if r and r[0] == "7868")


class Process(ChildProcess):
    """A daemon of ours, started from build/bin with its log in a file."""

    def __init__(self, root, name, argv, port, env=None):
        self.name, self.argv, self.port = name, argv, port
        self.log_path = os.path.join(root, f"{name}.log")
        self.env = env
        self.proc = None

    def start(self, failpoints=None, wait=True):
        env = dict(os.environ)
        env.pop("TXN_FAILPOINTS", None)
        if self.env:
            env.update(self.env)
        if failpoints:
            env["TXN_FAILPOINTS"] = failpoints
        with open(self.log_path, "a") as log:
            log.write(f"--- start {' '.join(self.argv)} failpoints={failpoints}\n")
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, env=env)
        if wait:
            wait_for_port(self.port, proc=self.proc)
        return self

    def wait_exit(self, timeout=20):
        return self.proc.wait(timeout=timeout)

    def log(self):
        with open(self.log_path) as f:
            return f.read()


class Cluster:
    """PostgreSQL servers, one agent per database, and a coordinator."""

    def __init__(self, reconcile_ms=300):
        self.root = tempfile.mkdtemp(prefix="txcoord-test-")
        os.chmod(self.root, 0o755)
        self.reconcile_ms = reconcile_ms
        self.pgs, self.mariadbs, self.agents = {}, {}, {}
        self.coordinator = None
        self._channels = []

    def add_postgres(self, name, **kw):
        self.pgs[name] = Postgres(self.root, name, **kw)
        return self.pgs[name]

    def add_mariadb(self, name):
        self.mariadbs[name] = MariaDB(self.root, name)
        return self.mariadbs[name]

    def make_coordinator(self, participants, extra=(), partitionable=()):
        """`participants`: names; their agent ports are reserved now. Each agent named in
        `partitionable` talks to the coordinator, both ways, through FaultProxies (see
        partition() and heal())."""
        port = free_port()
        self.agent_ports = {n: free_port() for n in participants}
        self.proxies = {}
        for n in partitionable:
            real = free_port()
            # coordinator -> agent: the coordinator is told the proxy's port
            to_agent = fault_proxy.FaultProxy(self.agent_ports[n], real)
            # agent -> coordinator (GetDecision)
            to_coord = fault_proxy.FaultProxy(free_port(), port)
            self.proxies[n] = (to_agent, to_coord)
        argv = [os.path.join(BIN, "txcoord"), "--listen", f"127.0.0.1:{port}", "--data-dir",
                os.path.join(self.root, "coord-data"), "--prepare-timeout-ms", "3000",
                "--rpc-timeout-ms", "2000", "--retry-initial-ms", "20", "--retry-max-ms", "300",
                *extra]
        for n, p in self.agent_ports.items():
            argv += ["--participant", f"{n}=127.0.0.1:{p}"]
        self.coordinator = Process(self.root, "coordinator", argv, port)
        return self.coordinator

    def add_agent(self, name, dsn, backend="postgres", start=True, failpoints=None, extra=()):
        """Starts the agent on the port the coordinator was told about."""
        port, coord_port = self.agent_ports[name], self.coordinator.port
        if name in self.proxies:
            to_agent, to_coord = self.proxies[name]
            port, coord_port = to_agent.target[1], to_coord._listener.getsockname()[1]
        argv = [os.path.join(BIN, "txagent"), "--listen", f"127.0.0.1:{port}", "--name", name,
                "--backend", backend, "--dsn", dsn, "--coordinator",
                f"127.0.0.1:{coord_port}", "--reconcile-interval-ms",
                str(self.reconcile_ms), "--lock-timeout-ms", "1000", *extra]
        self.agents[name] = Process(self.root, f"agent-{name}", argv, port)
        if start:
            self.agents[name].start(failpoints=failpoints)
        return self.agents[name]

    def partition(self, name, mode="blackhole"):
        """Cuts the links between the coordinator and agent `name` (made partitionable):
        "blackhole" (packets dropped) or "reset" (connections refused with RST)."""
        for p in self.proxies[name]:
            getattr(p, mode)()

    def heal(self, name):
        for p in self.proxies[name]:
            p.heal()

    @staticmethod
    def _channel(port):
        # A private subchannel pool: a new stub after a restart must not reuse the connection to
        # the process that was killed.
        return grpc.insecure_channel(f"127.0.0.1:{port}",
                                     options=[("grpc.use_local_subchannel_pool", 1)])

    def coordinator_stub(self):
        ch = self._channel(self.coordinator.port)
        self._channels.append(ch)
        return coordinator_pb2_grpc.CoordinatorStub(ch)

    def admin_stub(self):
        ch = self._channel(self.coordinator.port)
        self._channels.append(ch)
        return coordinator_pb2_grpc.AdminStub(ch)

    def txn_id(self, epoch, seq):
        """The id the running coordinator gives its seq-th transaction of `epoch` (its n-th start
        on this data folder): NODE-INCARNATION-EPOCH-SEQ."""
        stats = self.admin_stub().GetStats(coordinator_pb2.GetStatsRequest(), timeout=5)
        return f"{stats.node_id}-{stats.incarnation}-{epoch}-{seq}"

    def participant_stub(self, name):
        ch = self._channel(self.agents[name].port)
        self._channels.append(ch)
        return participant_pb2_grpc.ParticipantStub(ch)

    def stop(self):
        for ch in self._channels:
            ch.close()
        procs = list(self.agents.values()) + ([self.coordinator] if self.coordinator else [])
        for p in procs:
            p.stop()
        for pg in self.pgs.values():
            pg.stop("immediate")
        for my in self.mariadbs.values():
            my.kill()
        for pair in getattr(self, "proxies", {}).values():
            for p in pair:
                p.close()
        for p in getattr(self, "peer_proxies", {}).values():
            p.close()
        if os.environ.get("TXCOORD_KEEP_TEST_DIRS"):
            print(f"kept {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def logs(self):
        procs = list(self.agents.values()) + ([self.coordinator] if self.coordinator else [])
        return "\n".join(f"===== {p.name}\n{p.log()[-4000:]}" for p in procs
                         if os.path.exists(p.log_path))


def sql_op(text, *params, expect=None, nulls=()):
    op = common_pb2.Operation()
    op.sql.text = text
    op.sql.params.extend(str(p) for p in params)
    op.sql.null_params.extend(nulls)
    if expect is not None:
        op.sql.expect_rows_affected = expect
    return op


def branch(participant, *ops):
    b = coordinator_pb2.Branch(participant=participant)
    b.operations.extend(ops)
    return b


def eventually(predicate, timeout=15.0, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")

#!/usr/bin/env bash
# A local txcoord cluster from Debian's packages, all state in one folder (default .cluster/):
# two PostgreSQL servers ("orders" and "inventory"), a MariaDB server ("ledger"), a txagent beside
# each, and txcoord with its RocksDB decision log. Uses the same config files as docker-compose.yml (deploy/config/),
# overriding addresses and folders with flags.
#
#   deploy/local-cluster.sh up       install, build, start everything, run the demo transfer
#   deploy/local-cluster.sh demo     run the demo transfer again
#   deploy/local-cluster.sh status   what is running, and prepared transactions left over
#   deploy/local-cluster.sh down     stop everything (data is kept; `down --wipe` removes it)
#
# Everything speaks mutual TLS: `up` makes a CA and certificates once, in $STATE/certs
# (deploy/make-certs.sh: coordinator, one per agent, client, admin). txcoord also requires
# bearer tokens: `up` makes them once, in $STATE/tokens (txcoord's --token-file) and one file per
# scope, $STATE/{client,admin,agent}.token, for txbench / the demo, txctl, and the agents. The PostgreSQL agents run client statements as role txcoord_client
# (run-as-role in deploy/config/agent-*.yaml), which may touch the application's tables only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${TXCOORD_CLUSTER_DIR:-$ROOT/.cluster}
PG_PORT_orders=${PG_ORDERS_PORT:-55432}
PG_PORT_inventory=${PG_INVENTORY_PORT:-55433}
AGENT_PORT_orders=${AGENT_ORDERS_PORT:-7711}
AGENT_PORT_inventory=${AGENT_INVENTORY_PORT:-7712}
AGENT_PORT_ledger=${AGENT_LEDGER_PORT:-7713}
MARIADB_PORT=${MARIADB_PORT:-53306}
COORD_PORT=${COORD_PORT:-7700}
COORD_METRICS_PORT=${COORD_METRICS_PORT:-9700}
DBS=(orders inventory)
PARTICIPANTS=(orders inventory ledger)

say() { echo "local-cluster: $*"; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }
port_of() { local v="$1_$2"; echo "${!v}"; }

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  say "nothing listens on port $1; see $STATE/logs"; return 1
}

running() { [ -f "$STATE/pids/$1" ] && kill -0 "$(cat "$STATE/pids/$1")" 2>/dev/null; }

start_daemon() {  # name, then the command
  local name=$1; shift
  if running "$name"; then return 0; fi
  "$@" >>"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$STATE/pids/$name"
}

start_postgres() {
  local db=$1 port dir
  port=$(port_of PG_PORT "$db")
  dir="$STATE/pg-$db"
  if [ ! -d "$dir/data" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    as_pg "$(pg_bin)/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_prepared_transactions = 100
CONF
  fi
  if ! as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
  fi
  local psql=(psql -X -q -h 127.0.0.1 -p "$port" -U postgres)
  if [ -z "$("${psql[@]}" -At -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    "${psql[@]}" -c "CREATE DATABASE $db"
  fi
  "${psql[@]}" -d "$db" -v ON_ERROR_STOP=1 -f "$ROOT/deploy/db/$db.sql" >/dev/null
}

mariadb_client() { mariadb --no-defaults -S "$STATE/mariadb-ledger/sock" -uroot "$@"; }

start_mariadb() {
  local dir="$STATE/mariadb-ledger"
  local as_mysql=()
  [ "$(id -u)" -eq 0 ] && as_mysql=(--user=mysql)
  if [ ! -d "$dir/data" ]; then
    mkdir -p "$dir/data"
    [ "$(id -u)" -eq 0 ] && chown -R mysql:mysql "$dir"
    mariadb-install-db --no-defaults --datadir="$dir/data" "${as_mysql[@]}" \
      --auth-root-authentication-method=normal --skip-test-db >/dev/null
  fi
  if ! running mariadb-ledger; then
    mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/sock" --port="$MARIADB_PORT" \
      --bind-address=127.0.0.1 "${as_mysql[@]}" --skip-log-bin --innodb-buffer-pool-size=64M \
      >>"$STATE/logs/mariadb-ledger.log" 2>&1 &
    echo $! >"$STATE/pids/mariadb-ledger"
  fi
  wait_port "$MARIADB_PORT"
  if [ ! -f "$STATE/ledger.password" ]; then
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/ledger.password"
    chmod 600 "$STATE/ledger.password"
  fi
  # Its own database, and PROCESS (XA RECOVER, lock-wait reports): no FILE, no SUPER, no other
  # database, whatever a client's statement tries.
  mariadb_client -e "CREATE DATABASE IF NOT EXISTS ledger;
    CREATE USER IF NOT EXISTS 'txcoord'@'%';
    ALTER USER 'txcoord'@'%' IDENTIFIED BY '$(cat "$STATE/ledger.password")';
    REVOKE ALL PRIVILEGES ON *.* FROM 'txcoord'@'%';
    GRANT ALL ON ledger.* TO 'txcoord'@'%';
    GRANT PROCESS ON *.* TO 'txcoord'@'%'"
  mariadb_client ledger <"$ROOT/deploy/db/ledger.sql"
}

# --tls-cert/--tls-key/--tls-ca for the certificate NAME (paths without spaces).
tls_flags() {
  echo "--tls-cert $STATE/certs/$1.pem --tls-key $STATE/certs/$1.key --tls-ca $STATE/certs/ca.pem"
}

# Random tokens, made once; the files are readable by their owner only.
make_tokens() {
  [ -f "$STATE/tokens" ] && return
  local scope token
  (
    umask 077
    echo "# made by deploy/local-cluster.sh: SCOPE TOKEN NAME (txcoord --token-file)" >"$STATE/tokens"
    for scope in client admin agent; do
      token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
      echo "$token" >"$STATE/$scope.token"
      echo "$scope $token local-$scope" >>"$STATE/tokens"
    done
  )
}

up() {
  bash deploy/install-deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j2 --target txcoord txagent txctl txbench
  mkdir -p "$STATE/logs" "$STATE/pids"
  chmod 755 "$STATE"
  make_tokens
  bash deploy/make-certs.sh "$STATE/certs" coordinator "${PARTICIPANTS[@]}" client admin >/dev/null
  for db in "${DBS[@]}"; do start_postgres "$db"; done
  start_mariadb
  local participants=()
  for p in "${PARTICIPANTS[@]}"; do participants+=(--participant "$p=127.0.0.1:$(port_of AGENT_PORT "$p")"); done
  start_daemon txcoord build/bin/txcoord --config deploy/config/txcoord.yaml $(tls_flags coordinator) \
    --listen "127.0.0.1:$COORD_PORT" --data-dir "$STATE/coord-data" "${participants[@]}" \
    --metrics-listen "127.0.0.1:$COORD_METRICS_PORT" --token-file "$STATE/tokens" \
    ${TXCOORD_EXTRA_FLAGS:-}
  for db in "${DBS[@]}"; do
    start_daemon "agent-$db" build/bin/txagent --config "deploy/config/agent-$db.yaml" $(tls_flags "$db") \
      --listen "127.0.0.1:$(port_of AGENT_PORT "$db")" \
      --dsn "host=127.0.0.1 port=$(port_of PG_PORT "$db") user=postgres dbname=$db" \
      --coordinator "127.0.0.1:$COORD_PORT" --coordinator-token-file "$STATE/agent.token" \
      --metrics-listen "127.0.0.1:$(( $(port_of AGENT_PORT "$db") + 2000 ))"
  done
  start_daemon agent-ledger build/bin/txagent --config deploy/config/agent-ledger.yaml $(tls_flags ledger) \
    --listen "127.0.0.1:$AGENT_PORT_ledger" \
    --dsn "host=127.0.0.1 port=$MARIADB_PORT user=txcoord dbname=ledger" \
    --dsn-password-file "$STATE/ledger.password" --coordinator "127.0.0.1:$COORD_PORT" \
    --coordinator-token-file "$STATE/agent.token" \
    --metrics-listen "127.0.0.1:$((AGENT_PORT_ledger + 2000))"
  wait_port "$COORD_PORT"
  for p in "${PARTICIPANTS[@]}"; do wait_port "$(port_of AGENT_PORT "$p")"; done
  say "up: txcoord on 127.0.0.1:$COORD_PORT; agents orders :$AGENT_PORT_orders, inventory :$AGENT_PORT_inventory, ledger (MariaDB) :$AGENT_PORT_ledger; state and logs in $STATE"
  demo
}

demo() {
  /usr/bin/python3 deploy/demo_transfer.py "127.0.0.1:$COORD_PORT" --token-file "$STATE/client.token" \
    $(tls_flags client)
}

status() {
  for name in txcoord agent-orders agent-inventory agent-ledger mariadb-ledger; do
    if running "$name"; then say "$name running (pid $(cat "$STATE/pids/$name"))"; else say "$name stopped"; fi
  done
  for db in "${DBS[@]}"; do
    local port; port=$(port_of PG_PORT "$db")
    if psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d "$db" -At -c "SELECT 1" >/dev/null 2>&1; then
      say "postgres $db on $port; prepared transactions: $(psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d "$db" -At -c "SELECT count(*) FROM pg_prepared_xacts")"
    else
      say "postgres $db stopped"
    fi
  done
  if running mariadb-ledger; then
    say "mariadb ledger on $MARIADB_PORT; prepared XA transactions: $(mariadb_client -N -e 'XA RECOVER' | wc -l)"
  fi
  if running txcoord; then
    local txctl=("$ROOT/build/bin/txctl" --coordinator "127.0.0.1:$COORD_PORT" --token-file "$STATE/admin.token" $(tls_flags admin))
    "${txctl[@]}" participants || true
    say "in doubt or heuristic (txctl list --state in-doubt,heuristic-mixed):"
    "${txctl[@]}" list --state in-doubt,heuristic-mixed || true
  fi
}

down() {
  for name in agent-orders agent-inventory agent-ledger txcoord mariadb-ledger; do
    if running "$name"; then
      local pid; pid=$(cat "$STATE/pids/$name")
      kill "$pid"
      # Wait for it to exit, so that an `up` right after finds its port free.
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$STATE/pids/$name"
  done
  for db in "${DBS[@]}"; do
    [ -d "$STATE/pg-$db/data" ] && as_pg "$(pg_bin)/pg_ctl" -D "$STATE/pg-$db/data" -m fast -w stop >/dev/null 2>&1 || true
  done
  if [ "${1:-}" = "--wipe" ]; then rm -rf "$STATE"; fi
  say "down"
}

case "${1:-}" in
  up) up ;;
  demo) demo ;;
  status) status ;;
  down) shift; down "${1:-}" ;;
  *) echo "usage: $0 up|demo|status|down [--wipe]" >&2; exit 2 ;;
esac

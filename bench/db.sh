#!/usr/bin/env bash
# The database phase and a blackholed host (see bench/README.md). Needs Debian's postgresql and
# openssl; run as root (initdb then runs as the postgres user) or as a user who may run initdb.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
cargo build --release --quiet --bin elsadoctor --example db_phase
cargo build --release --quiet -p elsadoctor-sim --example sim_serve
work=$(mktemp -d); trap 'runas "$bin/pg_ctl" -D "$work/data" stop -m immediate >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
runas() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
[ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system --user-group postgres; chown postgres "$work"; }
echo "superpw" > "$work/pw"; [ "$(id -u)" = 0 ] && chown postgres "$work/pw"
runas "$bin/initdb" -D "$work/data" -U postgres -A scram-sha-256 --pwfile="$work/pw" --no-sync >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$work/data/server.key" -out "$work/data/server.crt" 2>/dev/null
[ "$(id -u)" = 0 ] && chown postgres "$work/data/server.key" "$work/data/server.crt"
chmod 600 "$work/data/server.key"
cat >> "$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
ssl = on
log_connections = on
CONF
runas "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null
export PGPASSWORD=superpw
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
  -c "CREATE ROLE elsa LOGIN PASSWORD 'elsa-pw'" -c "CREATE DATABASE elsa OWNER elsa"
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d elsa -f tests/fixtures/sql/elsa-3.5.sql
before=$(grep -c "connection authorized: user=elsa" "$work/log" || true)
conn="Host=127.0.0.1;Port=$port;Database=elsa;Username=elsa;Password=elsa-pw;SSL Mode=Require"
phase=$(target/release/examples/db_phase "$conn" 20)
after=$(grep -c "connection authorized: user=elsa" "$work/log" || true)
echo "## Database phase on loopback (connect + TLS + all queries), 20 runs"
echo
echo "$phase" | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"median {r['medianMs']} ms, slowest {r['maxMs']} ms\")"
echo "connections opened: $((after - before)) for 20 runs"

echo
echo "## A blackholed database host: elsadoctor --timeout 2s against psql, same parameters"
# A listener whose tiny accept queue is full: further SYNs get no answer.
python3 - "$work/bh" <<'PY' &
import socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(0)
fill = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(l.getsockname())
    except BlockingIOError: pass
    fill.append(c)
open(sys.argv[1], "w").write(str(l.getsockname()[1]))
time.sleep(120)
PY
bh_pid=$!
while [ ! -s "$work/bh" ]; do sleep 0.1; done
bh=$(cat "$work/bh")
scen="$work/scenario"; mkdir -p "$scen"
cp tests/fixtures/scenarios/healthy/manifests.yaml "$scen/"
{ cat tests/fixtures/scenarios/healthy/sim.yaml
  echo "portForwards:"
  echo "  - {pod: postgres-5b8f4c9d7-tq2zl, port: 5432, to: \"127.0.0.1:$bh\"}"; } > "$scen/sim.yaml"
t0=$(date +%s.%N)
target/release/examples/sim_serve "$scen" -- target/release/elsadoctor --json --timeout 2s >/dev/null 2>&1 || true
t1=$(date +%s.%N)
t2=$(date +%s.%N)
timeout 30 psql -X "host=127.0.0.1 port=$bh user=elsa dbname=elsa" -c 'select 1' >/dev/null 2>&1 || true
t3=$(date +%s.%N)
kill "$bh_pid" 2>/dev/null || true
python3 - "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:])
print(f"elsadoctor (whole run, --timeout 2s): {t1 - t0:.2f} s")
psql = t3 - t2
print(f"psql (no connect_timeout): {psql:.2f} s" + (" — still waiting when stopped at 30 s" if psql >= 29.5 else ""))
PY

#!/usr/bin/env bash
# Reproduces the Sync API benchmarks of docs/BENCHMARKS.md with one command:
# builds the release binaries, and for each repetition starts a fresh
# `seedling serve --demo` on SQLite, then on PostgreSQL, then a fresh
# pouchdb-server (LevelDB), each on a free port of 127.0.0.1; runs push10k,
# pull10k, burst and bootstrap (pouchdb-server: the first three); stops the
# server; finally prints the table of medians and spreads.
#
#   bench/run.sh [--reps 3] [--backends sqlite,postgres,pouchdb] [--out DIR]
#
# PostgreSQL: PGHOST/PGUSER (default 127.0.0.1 / postgres) must accept
# `CREATE DATABASE`; each repetition uses a new database, dropped afterwards.
# Everything has a timeout; the servers are stopped on exit, even on failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
REPS=3
BACKENDS="sqlite,postgres,pouchdb"
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS="$2"; shift 2 ;;
    --backends) BACKENDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "usage: bench/run.sh [--reps N] [--backends sqlite,postgres,pouchdb] [--out DIR]" >&2; exit 64 ;;
  esac
done
PGHOST="${PGHOST:-127.0.0.1}"
PGUSER="${PGUSER:-postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${OUT:-$BENCH/results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
SEEDLING="$CARGO_TARGET_DIR/release/seedling"
CLIENT="$CARGO_TARGET_DIR/release/seedling-bench"
export SEEDLING_JWT_SECRET="${SEEDLING_JWT_SECRET:-seedling-benchmark-secret-not-for-production-0123456789}"

log() { echo "run.sh: $*" >&2; }

SERVER_PID=""
WORKDIR=""
PGDB=""
cleanup() {
  stop_server
  if [ -n "$PGDB" ]; then drop_pg; fi
}
trap cleanup EXIT

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
  if [ -n "$WORKDIR" ]; then rm -rf "$WORKDIR"; WORKDIR=""; fi
}

drop_pg() {
  psql -h "$PGHOST" -U "$PGUSER" -d postgres -qc "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null 2>&1 || true
  PGDB=""
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do
    if curl -sf -o /dev/null "$1"; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then log "server exited; see $OUT"; return 1; fi
    sleep 0.1
  done
  log "no answer from $1 after $2 s"; return 1
}

record() { # backend rep line
  local json="$3"
  echo "$json" | node -e '
    const [b, r] = process.argv.slice(1);
    const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
    o.backend = b; o.rep = Number(r);
    process.stdout.write(JSON.stringify(o) + "\n");' "$1" "$2" >> "$RESULTS"
}

start_seedling() { # backend rep
  WORKDIR="$(mktemp -d -t seedling-bench.XXXXXX)"
  PORT="$(free_port)"
  if [ "$1" = postgres ]; then
    PGDB="seedling_bench_$$_$2"
    psql -h "$PGHOST" -U "$PGUSER" -d postgres -qc "CREATE DATABASE $PGDB" >/dev/null
    export DATABASE_URL="postgres://$PGUSER@$PGHOST:5432/$PGDB"
  else
    unset DATABASE_URL
  fi
  (cd "$WORKDIR" && exec "$SEEDLING" serve --demo --bind "127.0.0.1:$PORT") \
    > "$OUT/seedling-$1-$2.log" 2>&1 &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$PORT/readyz" 300
  URL="http://127.0.0.1:$PORT"
}

run_seedling() { # backend rep
  start_seedling "$1" "$2"
  log "$1 rep $2: server pid $SERVER_PID on $URL ($(uptime | sed 's/.*load/load/'))"
  for scenario in push10k pull10k burst bootstrap; do
    local extra=()
    [ "$scenario" = burst ] && extra=(--server-pid "$SERVER_PID")
    local line
    line="$(timeout 900 "$CLIENT" --server "$URL" --scenario "$scenario" --label "$1" "${extra[@]}" \
      2>>"$OUT/client-$1-$2.log" | tail -n 1)"
    log "$1 rep $2 $scenario: $line"
    record "$1" "$2" "$line"
  done
  stop_server
  if [ "$1" = postgres ]; then drop_pg; unset DATABASE_URL; fi
}

run_pouchdb() { # rep
  WORKDIR="$(mktemp -d -t pouchdb-bench.XXXXXX)"
  PORT="$(free_port)"
  (cd "$WORKDIR" && exec node "$BENCH/node_modules/pouchdb-server/bin/pouchdb-server" \
    --host 127.0.0.1 --port "$PORT" --dir "$WORKDIR" --no-stdout-logs) \
    > "$OUT/pouchdb-$1.log" 2>&1 &
  SERVER_PID=$!
  URL="http://127.0.0.1:$PORT"
  wait_http "$URL/" 120
  log "pouchdb rep $1: server pid $SERVER_PID on $URL ($(uptime | sed 's/.*load/load/'))"
  for scenario in push10k pull10k burst; do
    local extra=()
    [ "$scenario" = burst ] && extra=(--server-pid "$SERVER_PID")
    local line
    line="$(timeout 900 node "$BENCH/pouch.js" --server "$URL" --scenario "$scenario" --label pouchdb "${extra[@]}" \
      2>>"$OUT/client-pouchdb-$1.log" | tail -n 1)"
    log "pouchdb rep $1 $scenario: $line"
    record pouchdb "$1" "$line"
  done
  stop_server
}

log "building release binaries into $CARGO_TARGET_DIR"
# Two invocations, so each package keeps its own feature set (one build of
# both would unify features and rebuild the database drivers).
(cd "$ROOT" && cargo build --release -p seedling-server --bin seedling)
(cd "$ROOT" && cargo build --release -p seedling-client --bin seedling-bench)
if [ ! -d "$BENCH/node_modules/pouchdb-server" ]; then
  log "installing pouchdb-server and pouchdb (npm ci)"
  (cd "$BENCH" && npm ci --no-audit --no-fund)
fi

log "machine: $(nproc) cores, $(free -m | awk '/Mem:/ {print $2 " MiB"}'), $(uname -sr)" | tee "$OUT/machine.txt"
for rep in $(seq 1 "$REPS"); do
  for backend in ${BACKENDS//,/ }; do
    case "$backend" in
      sqlite|postgres) run_seedling "$backend" "$rep" ;;
      pouchdb) run_pouchdb "$rep" ;;
      *) log "unknown backend $backend"; exit 64 ;;
    esac
  done
done
uptime | tee -a "$OUT/machine.txt" >&2
node "$BENCH/summarize.js" "$RESULTS" | tee "$OUT/table.md"

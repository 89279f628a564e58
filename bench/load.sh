#!/usr/bin/env bash
# The load campaign of docs/RELIABILITY.md: the fleet simulator at ten times
# the district (3,270 phones: ten per demo director) with network faults on,
# against `seedling serve --demo` on a fresh PostgreSQL database. Builds the
# release binaries, starts the server on a free port of 127.0.0.1, samples
# its memory and the machine's load average while `seedling-sim` runs, and
# prints one JSON line: the simulator's summary plus the server's peak RSS
# and the load averages.
#
#   bench/load.sh [--devices 3270] [--visits 6] [--days 3] [--seed 7]
#                 [--deadline-secs 1500] [--out DIR]
#
# PostgreSQL: PGHOST/PGUSER (default 127.0.0.1 / postgres) must accept
# `CREATE DATABASE`; the database is dropped afterwards. Everything has a
# timeout; the server is stopped on exit, even on failure. The exit code is
# the simulator's (0 only when nothing was lost, doubled or diverged).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICES=3270
VISITS=6
DAYS=3
SEED=7
DEADLINE=1500
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) DEVICES="$2"; shift 2 ;;
    --visits) VISITS="$2"; shift 2 ;;
    --days) DAYS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --deadline-secs) DEADLINE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "usage: bench/load.sh [--devices N] [--visits M] [--days D] [--seed S] [--deadline-secs T] [--out DIR]" >&2; exit 64 ;;
  esac
done
PGHOST="${PGHOST:-127.0.0.1}"
PGUSER="${PGUSER:-postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${OUT:-$ROOT/bench/results/load-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
SEEDLING="$CARGO_TARGET_DIR/release/seedling"
SIM="$CARGO_TARGET_DIR/release/seedling-sim"
export SEEDLING_JWT_SECRET="${SEEDLING_JWT_SECRET:-seedling-load-secret-not-for-production-0123456789}"
# The simulated phones sign in once and never refresh: their access tokens
# must outlive the run.
export SEEDLING_ACCESS_TOKEN_TTL_SECS=$(( DEADLINE + 3600 ))
# Scraped once at the end: every answer by route and status, and the sync
# requests turned away.
export SEEDLING_METRICS_ON_PUBLIC_PORT=true

log() { echo "load.sh: $*" >&2; }

SERVER_PID=""
SAMPLER_PID=""
WORKDIR=""
PGDB=""
cleanup() {
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$WORKDIR" ]; then rm -rf "$WORKDIR"; fi
  if [ -n "$PGDB" ]; then
    psql -h "$PGHOST" -U "$PGUSER" -d postgres -qc "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

log "building release binaries into $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release --locked -p seedling-server -p seedling-client)

WORKDIR="$(mktemp -d -t seedling-load.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
PGDB="seedling_load_$$"
psql -h "$PGHOST" -U "$PGUSER" -d postgres -qc "CREATE DATABASE $PGDB" >/dev/null
export DATABASE_URL="postgres://$PGUSER@$PGHOST:5432/$PGDB"
(cd "$WORKDIR" && exec "$SEEDLING" serve --demo --bind "127.0.0.1:$PORT") > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 3000); do
  curl -sf -o /dev/null "$URL/readyz" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { log "the server exited; see $OUT/server.log"; exit 1; }
  sleep 0.1
done
curl -sf -o /dev/null "$URL/readyz" || { log "no answer from $URL/readyz"; exit 1; }
log "server pid $SERVER_PID on $URL; $(nproc) cores; $(uptime | sed 's/.*load/load/')"

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

status=0
started="$(date +%s.%N)"
timeout $(( DEADLINE + 300 )) "$SIM" --server "$URL" --devices "$DEVICES" --visits "$VISITS" \
  --days "$DAYS" --faults --seed "$SEED" --deadline-secs "$DEADLINE" \
  > "$OUT/sim.out" 2> "$OUT/sim.err" &
SIM_PID=$!
# Every second: the server's resident memory (kB), the 1-minute load
# average, and the CPU seconds the simulator and the server have used.
(
  while kill -0 "$SIM_PID" 2>/dev/null; do
    rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)"
    # The simulator runs under `timeout`: its child.
    sim="$(pgrep -P "$SIM_PID" | head -n 1)"
    echo "$(date +%s) ${rss:-0} $(cut -d' ' -f1 /proc/loadavg) $(cpu_secs "${sim:-$SIM_PID}") $(cpu_secs "$SERVER_PID")"
    sleep 1
  done
) > "$OUT/samples.txt" &
SAMPLER_PID=$!
wait "$SIM_PID" || status=$?
ended="$(date +%s.%N)"
hwm_kb="$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)"
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
curl -sf "$URL/metrics" > "$OUT/metrics.txt" || log "no /metrics scrape"

summary="$(tail -n 1 "$OUT/sim.out")"
python3 - "$summary" "$OUT/samples.txt" "$hwm_kb" "$status" "$OUT/metrics.txt" "$started" "$ended" <<'EOF' | tee "$OUT/result.json"
import json, re, sys
summary, samples, hwm_kb, status = sys.argv[1], sys.argv[2], int(sys.argv[3] or 0), int(sys.argv[4])
metrics_file, started, ended = sys.argv[5], float(sys.argv[6]), float(sys.argv[7])
try:
    result = json.loads(summary)
except ValueError:
    result = {"error": "no summary line from seedling-sim", "last_line": summary}
rows = [line.split() for line in open(samples) if len(line.split()) == 5]
rss = [int(r[1]) for r in rows]
load = [float(r[2]) for r in rows]
wall = max(ended - started, 1e-9)
# The simulator's own CPU: it must not be what limits the run.
sim_cpu = max((float(r[3]) for r in rows), default=0.0)
server_cpu = float(rows[-1][4]) - float(rows[0][4]) if rows else 0.0
result["simulator_cpu_secs"] = round(sim_cpu, 1)
result["simulator_cores_used"] = round(sim_cpu / wall, 2)
result["server_cpu_secs"] = round(server_cpu, 1)
result["server_cores_used"] = round(server_cpu / wall, 2)
result["wall_secs"] = round(wall, 1)
# Every answer by status, from the server's own counters.
statuses, turned_away = {}, 0
try:
    for line in open(metrics_file):
        m = re.match(r'seedling_http_requests_total\{([^}]*)\} (\S+)', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            key = labels.get("status", "?")
            statuses[key] = statuses.get(key, 0) + int(float(m.group(2)))
        elif line.startswith("seedling_sync_turned_away_total "):
            turned_away = int(float(line.split()[1]))
except OSError:
    pass
answered = sum(statuses.values())
result["server_answers_by_status"] = dict(sorted(statuses.items()))
result["server_answers"] = answered
result["server_requests_per_sec"] = round(answered / wall, 1)
result["sync_turned_away"] = turned_away
result["sync_turned_away_share"] = round(turned_away / answered, 4) if answered else 0
result["server_5xx_other_than_503"] = sum(n for s, n in statuses.items() if s.startswith("5") and s != "503")
result["server_rss_peak_mib"] = round(max(rss, default=0) / 1024, 1)
result["server_vmhwm_mib"] = round(hwm_kb / 1024, 1)
result["load_average_1m"] = {
    "min": min(load, default=0),
    "mean": round(sum(load) / len(load), 2) if load else 0,
    "max": max(load, default=0),
}
result["exit_code"] = status
print(json.dumps(result))
EOF
log "results in $OUT; problems (if any) in $OUT/sim.err"
exit "$status"

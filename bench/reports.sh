#!/usr/bin/env bash
# Report and visit-log timings over a generated province on PostgreSQL
# (docs/BENCHMARKS.md, "Reports over a province").
#
#   bench/reports.sh                 # generate (once) and measure
#   bench/reports.sh --reps 7        # more repetitions per line
#   bench/reports.sh --regenerate    # drop and generate the province again
#
# Needs PostgreSQL at $PGURL (default postgres://postgres@127.0.0.1:5432)
# and psql. Builds the release server, generates the province into the
# database `seedling_province` with `seedling seed-province`, serves it on
# 127.0.0.1:18091, and times each report over HTTP as a town supervisor, a
# district admin and the provincial account (the median of --reps runs,
# after one warm-up), then the visit-log queries with EXPLAIN ANALYZE.
set -euo pipefail

REPS=5
REGENERATE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS="$2"; shift 2 ;;
    --regenerate) REGENERATE=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
PGURL="${PGURL:-postgres://postgres@127.0.0.1:5432}"
DB=seedling_province
ADDR=127.0.0.1:18091
BASE="http://$ADDR"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -p seedling-server --bin seedling
BIN="$TARGET/release/seedling"
export DATABASE_URL="$PGURL/$DB"
export SEEDLING_JWT_SECRET="bench-secret-bench-secret-bench-secret-00"
export RUST_LOG=warn

exists=$(psql "$PGURL/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'")
if [ "$REGENERATE" = 1 ] && [ "$exists" = 1 ]; then
  psql "$PGURL/postgres" -qc "DROP DATABASE $DB"
  exists=""
fi
if [ "$exists" != 1 ]; then
  psql "$PGURL/postgres" -qc "CREATE DATABASE $DB"
  "$BIN" migrate
  /usr/bin/time -f "seed-province: %e s, %M KiB max RSS" "$BIN" seed-province
fi
psql "$DATABASE_URL" -Atc "SELECT 'children ' || count(*) FROM children UNION ALL
  SELECT 'visits ' || count(*) FROM visits UNION ALL
  SELECT 'villages ' || count(*) FROM org_units WHERE kind = 'village'"

"$BIN" serve --bind "$ADDR" >/tmp/seedling-province-bench.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done

token() {
  curl -fs "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"seedling-bench\",\"device_id\":\"$(cat /proc/sys/kernel/random/uuid)\",\"device_name\":\"bench\"}" |
    python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])'
}
SUPERVISOR=$(token p000-s00)
ADMIN=$(token p000-admin)
PROVINCE=$(token province-integration)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

time_report() { # name token path
  local name=$1 tok=$2 path=$3 times
  curl -fs -o /dev/null "$BASE$path" -H "authorization: Bearer $tok"
  times=$(for _ in $(seq 1 "$REPS"); do
    curl -fs -o /dev/null -w '%{time_total}\n' "$BASE$path" -H "authorization: Bearer $tok"
  done | median)
  printf '%-34s %8.0f ms\n' "$name" "$(echo "$times * 1000" | bc -l)"
}

echo "== reports over HTTP (median of $REPS)"
for who in "town:$SUPERVISOR" "district:$ADMIN" "province:$PROVINCE"; do
  scope=${who%%:*}; tok=${who#*:}
  time_report "overdue ($scope)" "$tok" "/api/v1/reports/overdue"
  time_report "coverage ($scope)" "$tok" "/api/v1/reports/coverage"
  time_report "visits-by-month ($scope)" "$tok" "/api/v1/reports/visits-by-month"
  time_report "dashboard ($scope)" "$tok" "/api/v1/reports/dashboard"
done
time_report "overdue csv (district)" "$ADMIN" "/api/v1/reports/overdue?format=csv"
time_report "coverage xlsx (province)" "$PROVINCE" "/api/v1/reports/coverage?format=xlsx"

echo "== the filtered visit log (EXPLAIN ANALYZE, $REPS runs, median execution time)"
TOWN=$(psql "$DATABASE_URL" -Atc "SELECT id FROM org_units WHERE code = '330000000'")
DISTRICT=$(psql "$DATABASE_URL" -Atc "SELECT id FROM org_units WHERE code = '330000'")
FROM=$(date -u -d '-90 days' +%F)
visit_log() { # villages-subquery extra-filter
  cat <<SQL
SELECT visits.id, visits.version, visits.child_id, visits.kind, visits.visited_at, visits.review_status
FROM visits JOIN children ON children.id = visits.child_id
WHERE children.village_id IN ($1) AND visits.deleted = false
  AND visits.visited_at >= '$FROM'::date - interval '8 hours' $2
ORDER BY visits.visited_at DESC, visits.id LIMIT 50;
SELECT count(*) FROM visits JOIN children ON children.id = visits.child_id
WHERE children.village_id IN ($1) AND visits.deleted = false
  AND visits.visited_at >= '$FROM'::date - interval '8 hours' $2;
SQL
}
TOWN_VILLAGES="SELECT id FROM org_units WHERE parent_id = '$TOWN'"
DISTRICT_VILLAGES="SELECT v.id FROM org_units v JOIN org_units t ON v.parent_id = t.id WHERE t.parent_id = '$DISTRICT'"
time_sql() { # name sql
  local name=$1 sql=$2 ms
  ms=$(for _ in $(seq 1 "$REPS"); do
    echo "$sql" | sed 's/^SELECT/EXPLAIN (ANALYZE, FORMAT JSON) SELECT/' |
      psql "$DATABASE_URL" -At | python3 -c '
import sys, json
text = sys.stdin.read()
total, depth, start = 0.0, 0, None
for i, ch in enumerate(text):
    if ch == "[" and depth == 0: start = i
    depth += (ch == "[") - (ch == "]")
    if ch == "]" and depth == 0:
        total += json.loads(text[start:i+1])[0]["Execution Time"]
print(total)'
  done | median)
  printf '%-34s %8.1f ms (page + count)\n' "$name" "$ms"
}
time_sql "visit log, town, 90 days" "$(visit_log "$TOWN_VILLAGES" "")"
time_sql "visit log, town, submitted" "$(visit_log "$TOWN_VILLAGES" "AND visits.review_status = 'submitted'")"
time_sql "visit log, district, 90 days" "$(visit_log "$DISTRICT_VILLAGES" "")"
time_sql "visit log, district, risk flags" "$(visit_log "$DISTRICT_VILLAGES" "AND CAST(visits.risk_flags AS TEXT) <> '[]'")"
if curl -fs -o /dev/null "$BASE/api/v1/visits?limit=1" -H "authorization: Bearer $SUPERVISOR"; then
  echo "== the visit-log API over HTTP (median of $REPS)"
  time_report "GET /api/v1/visits (town)" "$SUPERVISOR" "/api/v1/visits?from=$FROM&limit=50"
  time_report "GET /api/v1/visits (district)" "$ADMIN" "/api/v1/visits?from=$FROM&limit=50"
fi

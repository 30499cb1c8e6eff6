#!/usr/bin/env bash
# Benchmark: export 1,000,000 claims as one streamed CSV from MariaDB.
#
# What it does
#   1. builds target/release/giftcodes, ensures the MariaDB login, creates a throw-away
#      database giftcodes_bench_export_<random>, starts the service and loads CLAIMS codes into
#      one campaign (one text upload);
#   2. marks every code issued straight in SQL (a bench shortcut: one UPDATE gives each code a
#      user, a claim id, today's UTC day and instant, as the claim path would, in ~20 s instead
#      of a minute of claims), and waits for InnoDB's purge of that UPDATE to finish;
#   3. resets the service's VmHWM (/proc/<pid>/clear_refs), then GET
#      /v1/admin/campaigns/{id}/claims.csv?from=<today>&to=<today> with curl into a file, and
#      reads the service's VmHWM afterwards (peak RSS during the export) and curl's total time;
#   4. checks the file: a header and CLAIMS lines, every code once; prints a table and writes
#      bench/results/<UTC stamp>-<git short hash>-export-1m.json.
#   Targets (issue): peak RSS <= 60 MB, wall <= 15 s.
#
# How to run (needs the local MariaDB answering as root on its socket, curl, jq, the mariadb
# client):
#   bash bench/export-1m.sh
# Knobs: CLAIMS=1000000  BENCH_SKIP_BUILD=1
# Exit status: non-zero when the export or a check fails; missing a target is printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLAIMS=${CLAIMS:-1000000}
TARGET_PEAK_RSS_MB=60
TARGET_WALL_SECONDS=15
BIN="$ROOT/target/release/giftcodes"
DB_USER=giftcodes DB_PASS=giftcodes DB_HOST=127.0.0.1 DB_PORT=3306

log() { printf '[export-1m] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
for tool in cargo curl jq mariadb awk seq ss; do command -v "$tool" >/dev/null || die "needs '$tool'"; done
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-bench-export.XXXXXX")
DB_NAME="giftcodes_bench_export_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
SERVICE_PID="" DB_CREATED=0
cleanup() {
  local status=$?
  set +e
  if [ -n "$SERVICE_PID" ]; then kill "$SERVICE_PID"; wait "$SERVICE_PID" 2>/dev/null; fi
  [ "$DB_CREATED" = 1 ] && sql -e "DROP DATABASE IF EXISTS \`$DB_NAME\`"
  [ "$status" != 0 ] && [ -s "$WORK/service.log" ] && tail -n 20 "$WORK/service.log" >&2
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binary"
  (cd "$ROOT" && cargo build --release --locked --quiet -p giftcodes)
fi
bash "$ROOT/scripts/mariadb-test-login.sh"
sql -e "CREATE DATABASE \`$DB_NAME\`"; DB_CREATED=1

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ADMIN_TOKEN=$(bench_token bench-admin)
GIFTCODES_LISTEN="127.0.0.1:$PORT" DATABASE_URL="mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$DB_NAME" \
  GIFTCODES_ADMIN_TOKEN="$ADMIN_TOKEN" GIFTCODES_CLIENT_TOKENS="$(bench_token bench-client)" \
  RUST_LOG=warn "$BIN" serve >"$WORK/service.log" 2>&1 &
SERVICE_PID=$!
for i in $(seq 300); do
  curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null && break
  kill -0 "$SERVICE_PID" 2>/dev/null || die "the service exited during start-up"
  [ "$i" = 300 ] && die "the service did not start"
  sleep 0.1
done
admin() { curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$@"; }

CAMPAIGN=$(admin -X POST "$BASE/v1/admin/campaigns" -H 'content-type: application/json' \
  -d '{"name":"bench export"}' | jq -er .id)
seq -f 'EXP-%010.0f' 1 "$CLAIMS" >"$WORK/codes.txt"
log "loading $CLAIMS codes"
admin -X POST -T "$WORK/codes.txt" -H 'content-type: text/plain' -H 'Expect:' \
  "$BASE/v1/admin/campaigns/$CAMPAIGN/batches" >/dev/null || die "upload"
rm -f "$WORK/codes.txt"
log "marking them issued (SQL)"
CAMPAIGN_HEX="UNHEX(REPLACE('$CAMPAIGN', '-', ''))"
sql "$DB_NAME" -e "UPDATE codes SET status = 1, issued_to = CONCAT('user-', id),
  issued_at = UTC_TIMESTAMP(), issue_day = UTC_DATE(), claim_id = UNHEX(REPLACE(UUID(), '-', ''))
  WHERE campaign_id = $CAMPAIGN_HEX"
DAY=$(sql "$DB_NAME" -e "SELECT MIN(issue_day) FROM codes WHERE campaign_id = $CAMPAIGN_HEX")
# The UPDATE left ~1M old row versions for InnoDB's purge; wait (up to 120 s) until purge is
# done so that the export is not measured against the bench's own setup. (Claims made one by
# one leave the same work spread over their day.)
history() { mariadb -uroot -e 'SHOW ENGINE INNODB STATUS\G' 2>/dev/null | awk '/History list length/ { print $4 }'; }
for _ in $(seq 120); do
  h=$(history); [ -z "$h" ] && break; [ "$h" -lt 1000 ] && break
  sleep 1
done
log "InnoDB history list length before the export: $(history)"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
IDLE_RSS_KB=$(kb "$SERVICE_PID" VmRSS)
echo 5 >"/proc/$SERVICE_PID/clear_refs" 2>/dev/null || true
MARIADB_PID=$(pgrep -xo mariadbd || pgrep -xo mysqld || true)
SERVICE_CPU_BEFORE=$(cpu_seconds "$SERVICE_PID"); MARIADB_CPU_BEFORE=$(cpu_seconds "$MARIADB_PID")
log "exporting day $DAY"
CURL_OUT=$(curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" -o "$WORK/export.csv" \
  -w '%{http_code} %{time_total} %{time_starttransfer} %{size_download}' \
  "$BASE/v1/admin/campaigns/$CAMPAIGN/claims.csv?from=$DAY&to=$DAY")
PEAK_RSS_KB=$(kb "$SERVICE_PID" VmHWM)
SERVICE_CPU=$(awk -v a="$(cpu_seconds "$SERVICE_PID")" -v b="$SERVICE_CPU_BEFORE" 'BEGIN { printf "%.2f", a - b }')
MARIADB_CPU=$(awk -v a="$(cpu_seconds "$MARIADB_PID")" -v b="$MARIADB_CPU_BEFORE" 'BEGIN { printf "%.2f", a - b }')
read -r HTTP_CODE WALL TTFB BYTES <<<"$CURL_OUT"
[ "$HTTP_CODE" = 200 ] || die "HTTP $HTTP_CODE: $(head -c 500 "$WORK/export.csv")"
LINES=$(wc -l <"$WORK/export.csv")
[ "$LINES" = $(( CLAIMS + 1 )) ] || die "$LINES lines, expected $(( CLAIMS + 1 ))"
[ "$(head -1 "$WORK/export.csv")" = "claim_id,campaign_id,user_id,code,issued_at,day" ] || die "header"
DISTINCT=$(tail -n +2 "$WORK/export.csv" | cut -d, -f4 | sort -u | wc -l)
[ "$DISTINCT" = "$CLAIMS" ] || die "$DISTINCT distinct codes, expected $CLAIMS"

mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
PEAK_RSS_MB=$(mb "$PEAK_RSS_KB"); IDLE_RSS_MB=$(mb "$IDLE_RSS_KB")
WALL=$(awk -v s="$WALL" 'BEGIN { printf "%.2f", s }')
RSS_OK=$(awk -v a="$PEAK_RSS_MB" -v t="$TARGET_PEAK_RSS_MB" 'BEGIN { print (a <= t) ? "true" : "false" }')
WALL_OK=$(awk -v a="$WALL" -v t="$TARGET_WALL_SECONDS" 'BEGIN { print (a <= t) ? "true" : "false" }')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=false; [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && DIRTY=true
verdict() { [ "$1" = true ] && echo ok || echo MISSED; }
printf '\n%-36s %12s %10s %8s\n' "CSV export of $CLAIMS claims" measured target verdict
printf '%-36s %12s %10s %8s\n' "wall time (s)" "$WALL" "<= $TARGET_WALL_SECONDS" "$(verdict "$WALL_OK")"
printf '%-36s %12s %10s %8s\n' "service peak RSS during it (MB)" "$PEAK_RSS_MB" "<= $TARGET_PEAK_RSS_MB" "$(verdict "$RSS_OK")"
printf '%-36s %12s\n' "service idle RSS before (MB)" "$IDLE_RSS_MB"
printf '%-36s %12s\n' "time to first byte (s)" "$TTFB"
printf '%-36s %12s\n' "service CPU during it (s)" "$SERVICE_CPU"
printf '%-36s %12s\n' "mariadbd CPU, all clients (s)" "$MARIADB_CPU"
printf '%-36s %12s\n' "load average before" "$LOAD_BEFORE"
printf '%-36s %12s\n' "bytes" "$BYTES"
printf '%-36s %12s\n' "commit" "$COMMIT$([ "$DIRTY" = true ] && echo ' (dirty)')"
mkdir -p "$ROOT/bench/results"
RESULT="$ROOT/bench/results/$(date -u +%Y%m%d-%H%M%S)-$COMMIT-export-1m.json"
jq -n --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --argjson claims "$CLAIMS" --argjson wall "$WALL" --argjson ttfb "$TTFB" --argjson bytes "$BYTES" \
  --argjson peak "$PEAK_RSS_MB" --argjson idle "$IDLE_RSS_MB" --argjson cpus "$(nproc)" \
  --argjson t_rss "$TARGET_PEAK_RSS_MB" --argjson t_wall "$TARGET_WALL_SECONDS" \
  --argjson rss_ok "$RSS_OK" --argjson wall_ok "$WALL_OK" \
  --argjson svc_cpu "$SERVICE_CPU" --argjson db_cpu "$MARIADB_CPU" --arg load "$LOAD_BEFORE" \
  '{commit: $commit, dirty: $dirty, date: $date, claims: $claims, wall_seconds: $wall,
    time_to_first_byte_seconds: $ttfb, bytes: $bytes, peak_rss_mb: $peak, idle_rss_mb: $idle,
    target_peak_rss_mb: $t_rss, target_wall_seconds: $t_wall,
    service_cpu_seconds: $svc_cpu, mariadbd_cpu_seconds: $db_cpu, load_average_before: $load,
    pass: ($rss_ok and $wall_ok), host_cpus: $cpus}' >"$RESULT"
printf '\nresult: %s\n' "${RESULT#"$ROOT"/}"

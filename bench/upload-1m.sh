#!/usr/bin/env bash
# Benchmark: load 1,000,000 codes as one text/plain upload into MariaDB.
#
# What it measures
#   * wall time of the single `POST /v1/admin/campaigns/{id}/batches` request that streams a
#     1,000,000-line text/plain body (13-character codes GC-0000000001 .. GC-0001000000,
#     about 14 MB), as seen by curl (`%{time_total}`);
#   * the service's peak RSS: `VmHWM` of the giftcodes process read from /proc after the upload
#     (the kernel's high-water mark over the whole process life, start-up included), next to its
#     idle `VmRSS` just before the upload. An RSS sampler (every 0.2 s) also records the RSS
#     curve of the service and of mariadbd during the upload, as a cross-check;
#   * CPU seconds (user + system, from /proc/<pid>/stat) the service and mariadbd spent during
#     the upload, to tell which side the time goes to (mariadbd's figure counts every client of
#     that server, so other load on the shared MariaDB shows up there and in the wall time).
#   Targets (acceptance criterion): wall <= 30 s and peak RSS <= 150 MB.
#
# How to run (from anywhere; needs the local MariaDB answering as root on its socket, plus
# curl, jq, and the mariadb client):
#   bash bench/upload-1m.sh
# It builds `target/release/giftcodes` (cargo build --release --locked), ensures the
# giftcodes/giftcodes login (scripts/mariadb-test-login.sh), creates a throw-away database
# giftcodes_bench_upload_<random>, starts the service on a free port, uploads, checks the
# answer (HTTP 201, inserted == 1000000) and the row count in the database, prints a table and
# writes bench/results/<UTC YYYYmmdd-HHMMSS>-<git short hash>-upload-1m.json.
# Everything it made (service, database, temp files) is removed on exit.
#
# Exit status: non-zero when the upload or the checks fail. Missing the targets is not a
# failure: the comparison is printed and recorded as "pass": false.
#
# Environment knobs (optional):
#   BENCH_CODES   number of codes (default 1000000; other counts write ...-upload-<N>.json)
#   BENCH_SKIP_BUILD=1  use the existing target/release/giftcodes as is
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CODES=${BENCH_CODES:-1000000}
TARGET_WALL_SECONDS=30
TARGET_PEAK_RSS_MB=150
BIN="$ROOT/target/release/giftcodes"
DB_USER=giftcodes
DB_PASS=giftcodes
DB_HOST=127.0.0.1
DB_PORT=3306

log() { printf '[upload-1m] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

for tool in curl jq mariadb awk seq ss; do
  command -v "$tool" >/dev/null || die "needs '$tool' on PATH"
done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# --- cleanup --------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-bench-upload.XXXXXX")
DB_NAME="giftcodes_bench_upload_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
SERVICE_PID=""
SAMPLER_PID=""
DB_CREATED=0

cleanup() {
  local status=$?
  set +e
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; fi
  if [ -n "$SERVICE_PID" ]; then
    kill "$SERVICE_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVICE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVICE_PID" 2>/dev/null
    wait "$SERVICE_PID" 2>/dev/null
  fi
  if [ "$DB_CREATED" = 1 ]; then sql -e "DROP DATABASE IF EXISTS \`$DB_NAME\`"; fi
  finish_cleanup "$status"
}
set_cleanup_traps

# --- build, login, database -----------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binary"
  (cd "$ROOT" && cargo build --release --locked --quiet)
fi
[ -x "$BIN" ] || die "no binary at $BIN"

log "ensuring the MariaDB login"
bash "$ROOT/scripts/mariadb-test-login.sh"
sql -e "CREATE DATABASE \`$DB_NAME\`"
DB_CREATED=1

# --- service ---------------------------------------------------------------------------------
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ADMIN_TOKEN=$(bench_token bench-admin)
CLIENT_TOKEN=$(bench_token bench-client)

log "starting the service on $BASE (database $DB_NAME)"
GIFTCODES_LISTEN="127.0.0.1:$PORT" \
DATABASE_URL="mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$DB_NAME" \
GIFTCODES_ADMIN_TOKEN="$ADMIN_TOKEN" \
GIFTCODES_CLIENT_TOKENS="$CLIENT_TOKEN" \
  "$BIN" serve >"$WORK/service.log" 2>&1 &
SERVICE_PID=$!

for i in $(seq 300); do
  if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then break; fi
  kill -0 "$SERVICE_PID" 2>/dev/null || die "the service exited during start-up"
  [ "$i" = 300 ] && die "the service did not answer /healthz within 30 s"
  sleep 0.1
done

# --- codes -----------------------------------------------------------------------------------
CODES_FILE="$WORK/codes.txt"
seq -f 'GC-%010.0f' 1 "$CODES" >"$CODES_FILE"
[ "$(wc -l <"$CODES_FILE")" -eq "$CODES" ] || die "code generation went wrong"
BODY_BYTES=$(stat -c %s "$CODES_FILE")
log "generated $CODES codes ($BODY_BYTES bytes)"

# --- campaign --------------------------------------------------------------------------------
CAMPAIGN=$(curl -fsS -X POST "$BASE/v1/admin/campaigns" \
  -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
  -d '{"name":"bench"}') || die "could not create the campaign"
CAMPAIGN_ID=$(jq -er .id <<<"$CAMPAIGN") || die "no campaign id in: $CAMPAIGN"

# --- upload ----------------------------------------------------------------------------------
rss_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
IDLE_RSS_KB=$(rss_kb "$SERVICE_PID" VmRSS)
HWM_BEFORE_KB=$(rss_kb "$SERVICE_PID" VmHWM)
MARIADB_PID=$(pgrep -xo mariadbd || pgrep -xo mysqld || true)
SERVICE_CPU_BEFORE=$(cpu_seconds "$SERVICE_PID")
MARIADB_CPU_BEFORE=$(cpu_seconds "$MARIADB_PID")

# Background RSS samples: "<seconds since start> <service RSS kB> <mariadbd RSS kB>".
(
  start=$(date +%s.%N)
  while kill -0 "$SERVICE_PID" 2>/dev/null; do
    svc=$(rss_kb "$SERVICE_PID" VmRSS 2>/dev/null || echo 0)
    db=0; [ -n "$MARIADB_PID" ] && db=$(rss_kb "$MARIADB_PID" VmRSS 2>/dev/null || echo 0)
    awk -v now="$(date +%s.%N)" -v t0="$start" -v s="$svc" -v d="$db" \
      'BEGIN { printf "%.1f %s %s\n", now - t0, s, d }'
    sleep 0.2
  done
) >"$WORK/rss.txt" 2>/dev/null &
SAMPLER_PID=$!

log "uploading (curl -T, streamed)"
# -T streams the file (curl never holds it whole); -X POST because -T defaults to PUT; an empty
# `Expect:` skips the 100-continue round trip.
set +e
CURL_OUT=$(curl -sS -X POST -T "$CODES_FILE" \
  "$BASE/v1/admin/campaigns/$CAMPAIGN_ID/batches?label=bench-1m" \
  -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: text/plain' -H 'Expect:' \
  -o "$WORK/response.json" -w '%{http_code} %{time_total} %{time_starttransfer} %{speed_upload}')
CURL_STATUS=$?
set -e
kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""

PEAK_RSS_KB=$(rss_kb "$SERVICE_PID" VmHWM)
SERVICE_CPU=$(awk -v a="$(cpu_seconds "$SERVICE_PID")" -v b="$SERVICE_CPU_BEFORE" 'BEGIN { printf "%.2f", a - b }')
MARIADB_CPU=$(awk -v a="$(cpu_seconds "$MARIADB_PID")" -v b="$MARIADB_CPU_BEFORE" 'BEGIN { printf "%.2f", a - b }')
AFTER_RSS_KB=$(rss_kb "$SERVICE_PID" VmRSS)
read -r HTTP_CODE WALL_SECONDS TTFB_SECONDS SPEED_UPLOAD <<<"$CURL_OUT"

[ "$CURL_STATUS" = 0 ] || die "curl failed (exit $CURL_STATUS): $CURL_OUT"
[ "$HTTP_CODE" = 201 ] || die "HTTP $HTTP_CODE: $(head -c 2000 "$WORK/response.json")"
INSERTED=$(jq -er .inserted "$WORK/response.json") || die "no 'inserted' in the answer"
[ "$INSERTED" = "$CODES" ] || die "inserted $INSERTED, expected $CODES"

# --- the rows in the database ----------------------------------------------------------------
# Ids are stored as binary(16) on MySQL/MariaDB; match the text form too in case that changes.
ROWS=$(sql "$DB_NAME" -e "SELECT COUNT(*) FROM codes WHERE campaign_id IN
  (UNHEX(REPLACE('$CAMPAIGN_ID', '-', '')), '$CAMPAIGN_ID')")
[ "$ROWS" = "$CODES" ] || die "the codes table holds $ROWS rows for the campaign, expected $CODES"

# --- report ----------------------------------------------------------------------------------
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
PEAK_RSS_MB=$(mb "$PEAK_RSS_KB")
IDLE_RSS_MB=$(mb "$IDLE_RSS_KB")
AFTER_RSS_MB=$(mb "$AFTER_RSS_KB")
HWM_BEFORE_MB=$(mb "$HWM_BEFORE_KB")
SAMPLED_PEAK_MB=$(awk '$2 > m { m = $2 } END { printf "%.1f", m / 1024 }' "$WORK/rss.txt")
MARIADB_PEAK_MB=$(awk '$3 > m { m = $3 } END { printf "%.1f", m / 1024 }' "$WORK/rss.txt")
WALL_SECONDS=$(awk -v s="$WALL_SECONDS" 'BEGIN { printf "%.2f", s }')
CODES_PER_SECOND=$(awk -v n="$CODES" -v s="$WALL_SECONDS" 'BEGIN { printf "%.0f", n / s }')
WALL_OK=$(awk -v a="$WALL_SECONDS" -v t="$TARGET_WALL_SECONDS" 'BEGIN { print (a <= t) ? "true" : "false" }')
RSS_OK=$(awk -v a="$PEAK_RSS_MB" -v t="$TARGET_PEAK_RSS_MB" 'BEGIN { print (a <= t) ? "true" : "false" }')
PASS=false; [ "$WALL_OK" = true ] && [ "$RSS_OK" = true ] && PASS=true

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=false; [ -n "$(git -C "$ROOT" status --porcelain -- src entity migration Cargo.toml Cargo.lock 2>/dev/null)" ] && DIRTY=true
STAMP=$(date -u +%Y%m%d-%H%M%S)
DATE_ISO=$(date -u +%Y-%m-%dT%H:%M:%SZ)

verdict() { [ "$1" = true ] && echo ok || echo MISSED; }
printf '\n'
printf '%-34s %14s %10s %8s\n' "upload of $CODES codes" measured target verdict
printf '%-34s %14s %10s %8s\n' "wall time (s)" "$WALL_SECONDS" "<= $TARGET_WALL_SECONDS" "$(verdict "$WALL_OK")"
printf '%-34s %14s %10s %8s\n' "service peak RSS, VmHWM (MB)" "$PEAK_RSS_MB" "<= $TARGET_PEAK_RSS_MB" "$(verdict "$RSS_OK")"
printf '%-34s %14s\n' "service idle RSS before (MB)" "$IDLE_RSS_MB"
printf '%-34s %14s\n' "service VmHWM before upload (MB)" "$HWM_BEFORE_MB"
printf '%-34s %14s\n' "service RSS after upload (MB)" "$AFTER_RSS_MB"
printf '%-34s %14s\n' "service peak RSS, sampled (MB)" "$SAMPLED_PEAK_MB"
printf '%-34s %14s\n' "mariadbd peak RSS, sampled (MB)" "$MARIADB_PEAK_MB"
printf '%-34s %14s\n' "service CPU during upload (s)" "$SERVICE_CPU"
printf '%-34s %14s\n' "mariadbd CPU, all clients (s)" "$MARIADB_CPU"
printf '%-34s %14s\n' "codes per second" "$CODES_PER_SECOND"
printf '%-34s %14s\n' "body (bytes)" "$BODY_BYTES"
printf '%-34s %14s\n' "rows in codes for the campaign" "$ROWS"
printf '%-34s %14s\n' "commit" "$COMMIT$([ "$DIRTY" = true ] && echo ' (dirty)')"
printf '%-34s %14s\n' "pass" "$PASS"

mkdir -p "$ROOT/bench/results"
NAME=upload-1m; [ "$CODES" = 1000000 ] || NAME="upload-$CODES"
RESULT="$ROOT/bench/results/$STAMP-$COMMIT-$NAME.json"
jq -n \
  --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg date "$DATE_ISO" \
  --argjson codes "$CODES" --argjson body_bytes "$BODY_BYTES" \
  --argjson wall_seconds "$WALL_SECONDS" \
  --argjson peak_rss_mb "$PEAK_RSS_MB" --argjson idle_rss_mb "$IDLE_RSS_MB" \
  --argjson hwm_before_upload_mb "$HWM_BEFORE_MB" --argjson rss_after_mb "$AFTER_RSS_MB" \
  --argjson sampled_peak_rss_mb "$SAMPLED_PEAK_MB" \
  --argjson mariadbd_sampled_peak_rss_mb "$MARIADB_PEAK_MB" \
  --argjson codes_per_second "$CODES_PER_SECOND" --argjson rows_in_db "$ROWS" \
  --argjson service_cpu_seconds "$SERVICE_CPU" --argjson mariadbd_cpu_seconds "$MARIADB_CPU" \
  --argjson target_wall_seconds "$TARGET_WALL_SECONDS" \
  --argjson target_peak_rss_mb "$TARGET_PEAK_RSS_MB" \
  --argjson pass "$PASS" \
  --arg host_cpus "$(nproc)" \
  '{commit: $commit, dirty: $dirty, date: $date, codes: $codes, body_bytes: $body_bytes,
    wall_seconds: $wall_seconds, peak_rss_mb: $peak_rss_mb, idle_rss_mb: $idle_rss_mb,
    hwm_before_upload_mb: $hwm_before_upload_mb, rss_after_mb: $rss_after_mb,
    sampled_peak_rss_mb: $sampled_peak_rss_mb,
    mariadbd_sampled_peak_rss_mb: $mariadbd_sampled_peak_rss_mb,
    service_cpu_seconds: $service_cpu_seconds, mariadbd_cpu_seconds: $mariadbd_cpu_seconds,
    codes_per_second: $codes_per_second, rows_in_db: $rows_in_db,
    target_wall_seconds: $target_wall_seconds, target_peak_rss_mb: $target_peak_rss_mb,
    pass: $pass, host_cpus: ($host_cpus | tonumber)}' >"$RESULT"
printf '\nresult: %s\n' "${RESULT#"$ROOT"/}"

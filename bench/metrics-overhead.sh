#!/usr/bin/env bash
# Benchmark: what recording Prometheus metrics costs the claim path, in one run.
#
# What it does
#   1. builds the release binaries (giftcodes, bench's loadgen), ensures the MariaDB login,
#      creates a throw-away database giftcodes_bench_metrics_<random>, migrates it, starts the
#      service and loads CODES codes into one campaign with no daily limit;
#   2. runs ROUNDS rounds of two saturation phases, metrics on (GIFTCODES_METRICS=true) and
#      off (GIFTCODES_METRICS=false), in ABBA order (on/off, off/on, ...), the service restarted for each phase on the same
#      database; each phase is loadgen's closed loop (CONNECTIONS keep-alive connections, every
#      request a new user) for WARMUP_SECONDS unmeasured + SECONDS measured, while /metrics is
#      scraped every SCRAPE_SECONDS (as Prometheus would; with metrics off the scrape answers
#      a one-line note, so the on phases also pay for the scrape's database reads);
#   3. prints claims/s, p99 and the service's CPU per claim per phase, the mean of each
#      mode, and the overhead (1 - on/off claims/s, in %) with the spread of the phases of each
#      mode as the noise figure, and the CPU overhead per claim (on the shared machine the CPU
#      per claim moves less with other people's load than claims/s does);
#      writes bench/results/<UTC stamp>-<git short hash>-metrics-overhead.json.
#   Target (issue): overhead <= 3 %.
#
# How to run (needs the local MariaDB, curl, jq, the mariadb client):
#   bash bench/metrics-overhead.sh
# Knobs: ROUNDS=2 SECONDS_PER_PHASE=20 WARMUP_SECONDS=3 CONNECTIONS=64 SCRAPE_SECONDS=5
#   CODES=2000000 BENCH_SKIP_BUILD=1
# Exit status: non-zero when a phase fails; missing the target is printed, not a failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-2}
SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-20}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
SCRAPE_SECONDS=${SCRAPE_SECONDS:-5}
CODES=${CODES:-2000000}
TARGET_OVERHEAD_PCT=3
BIN="$ROOT/target/release/giftcodes"
LOADGEN_BIN="$ROOT/target/release/loadgen"
DB_USER=giftcodes DB_PASS=giftcodes DB_HOST=127.0.0.1 DB_PORT=3306

log() { printf '[metrics-overhead] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
for tool in cargo curl jq mariadb awk seq ss; do command -v "$tool" >/dev/null || die "needs '$tool'"; done
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-bench-metrics.XXXXXX")
DB_NAME="giftcodes_bench_metrics_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
URL="mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$DB_NAME"
SERVICE_PID="" SCRAPER_PID="" DB_CREATED=0

stop_service() {
  if [ -n "$SCRAPER_PID" ]; then kill "$SCRAPER_PID" 2>/dev/null || true; wait "$SCRAPER_PID" 2>/dev/null || true; SCRAPER_PID=""; fi
  [ -n "$SERVICE_PID" ] || return 0
  kill "$SERVICE_PID" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$SERVICE_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVICE_PID" 2>/dev/null || true
  wait "$SERVICE_PID" 2>/dev/null || true
  SERVICE_PID=""
}
cleanup() {
  local status=$?
  set +e
  stop_service
  [ "$DB_CREATED" = 1 ] && sql -e "DROP DATABASE IF EXISTS \`$DB_NAME\`"
  [ "$status" != 0 ] && [ -s "$WORK/service.log" ] && tail -n 20 "$WORK/service.log" >&2
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binaries"
  (cd "$ROOT" && cargo build --release --locked --quiet -p giftcodes -p giftcodes-bench)
fi
bash "$ROOT/scripts/mariadb-test-login.sh"
sql -e "CREATE DATABASE \`$DB_NAME\`"; DB_CREATED=1
DATABASE_URL="$URL" RUST_LOG=warn "$BIN" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; die "migrate"; }

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ADMIN_TOKEN=$(bench_token bench-admin)
CLIENT_TOKEN=$(bench_token bench-client)

start_service() { # metrics true|false
  GIFTCODES_LISTEN="127.0.0.1:$PORT" DATABASE_URL="$URL" GIFTCODES_ADMIN_TOKEN="$ADMIN_TOKEN" \
  GIFTCODES_CLIENT_TOKENS="$CLIENT_TOKEN" GIFTCODES_MIGRATE=false GIFTCODES_METRICS="$1" RUST_LOG=warn \
    "$BIN" serve >>"$WORK/service.log" 2>&1 &
  SERVICE_PID=$!
  for i in $(seq 300); do
    curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null && return 0
    kill -0 "$SERVICE_PID" 2>/dev/null || die "the service exited during start-up"
    [ "$i" = 300 ] && die "the service did not start"
    sleep 0.1
  done
}
admin() { curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$@"; }

start_service true
CAMPAIGN=$(admin -X POST "$BASE/v1/admin/campaigns" -H 'content-type: application/json' \
  -d '{"name":"bench metrics"}' | jq -er .id)
first=1; part=0
while [ "$first" -le "$CODES" ]; do
  last=$(( first + 999999 )); [ "$last" -gt "$CODES" ] && last=$CODES
  part=$(( part + 1 ))
  seq -f "MET-%010.0f" "$first" "$last" >"$WORK/codes.txt"
  admin -X POST -T "$WORK/codes.txt" -H 'content-type: text/plain' -H 'Expect:' \
    "$BASE/v1/admin/campaigns/$CAMPAIGN/batches?label=part-$part" >/dev/null || die "upload $part"
  first=$(( last + 1 ))
done
rm -f "$WORK/codes.txt"
stop_service
log "loaded $CODES codes; $ROUNDS rounds of metrics on/off, ${WARMUP_SECONDS}+${SECONDS_PER_PHASE} s each"

: >"$WORK/phases.jsonl"
for round in $(seq "$ROUNDS"); do
  # ABBA order (on, off, off, on, ...): neither mode always runs first in a round, after the
  # other mode's updates still being purged.
  order="true false"; [ $(( round % 2 )) = 0 ] && order="false true"
  for metrics in $order; do
    start_service "$metrics"
    ( while sleep "$SCRAPE_SECONDS"; do admin -o /dev/null "$BASE/metrics" || true; done ) &
    SCRAPER_PID=$!
    cpu_before=$(cpu_seconds "$SERVICE_PID")
    LOADGEN_TOKEN="$CLIENT_TOKEN" "$LOADGEN_BIN" --base "$BASE" --campaign "$CAMPAIGN" --rate 0 \
      --connections "$CONNECTIONS" --seconds "$SECONDS_PER_PHASE" --warmup-seconds "$WARMUP_SECONDS" \
      --run "r$round-$metrics-$RANDOM" >"$WORK/phase.json" 2>"$WORK/phase-err.txt" \
      || { cat "$WORK/phase-err.txt" >&2; die "load phase failed"; }
    cpu=$(awk -v a="$(cpu_seconds "$SERVICE_PID")" -v b="$cpu_before" 'BEGIN { printf "%.2f", a - b }')
    stop_service
    jq -c --argjson round "$round" --argjson metrics "$metrics" --argjson cpu "$cpu" \
      '{round: $round, metrics: $metrics, service_cpu_s: $cpu,
        service_cpu_us_per_claim: ($cpu * 1000000 / ([.created_all, 1] | max) | round)} + .' \
      "$WORK/phase.json" >>"$WORK/phases.jsonl"
    log "round $round, metrics $metrics: $(jq -r '"\(.claims_per_s) claims/s, p99 \(.p99_ms) ms"' "$WORK/phase.json")"
  done
done

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=false; [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && DIRTY=true
mkdir -p "$ROOT/bench/results"
RESULT="$ROOT/bench/results/$(date -u +%Y%m%d-%H%M%S)-$COMMIT-metrics-overhead.json"
jq -s --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --argjson cpus "$(nproc)" --argjson target "$TARGET_OVERHEAD_PCT" \
  --argjson scrape "$SCRAPE_SECONDS" --argjson codes "$CODES" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '
  def r2: (. * 100 | round) / 100;
  def mean: add / length;
  def spread: ((max - min) / mean * 100);
  (map(select(.metrics)) | map(.claims_per_s)) as $on
  | (map(select(.metrics | not)) | map(.claims_per_s)) as $off
  | (map(select(.metrics)) | map(.service_cpu_us_per_claim)) as $on_cpu
  | (map(select(.metrics | not)) | map(.service_cpu_us_per_claim)) as $off_cpu
  | {commit: $commit, dirty: $dirty, date: $date,
     host: {cpus: $cpus, note: "shared 2-core machine; service, MariaDB and loadgen on it"},
     settings: {scrape_seconds: $scrape, codes: $codes},
     phases: .,
     on_claims_per_s: ($on | mean | r2), off_claims_per_s: ($off | mean | r2),
     on_spread_pct: ($on | spread | r2), off_spread_pct: ($off | spread | r2),
     overhead_pct: ((1 - ($on | mean) / ($off | mean)) * 100 | r2),
     on_cpu_us_per_claim: ($on_cpu | mean | r2), off_cpu_us_per_claim: ($off_cpu | mean | r2),
     cpu_overhead_pct: ((($on_cpu | mean) / ($off_cpu | mean) - 1) * 100 | r2),
     load_average_after: $load,
     target_overhead_pct: $target,
     met: ((1 - ($on | mean) / ($off | mean)) * 100 <= $target)}' "$WORK/phases.jsonl" >"$RESULT"

printf '\n%-8s %-8s %12s %8s %8s %20s\n' round metrics claims/s p50_ms p99_ms "service CPU us/claim"
jq -r '.phases[] | [.round, .metrics, .claims_per_s, .p50_ms, .p99_ms, .service_cpu_us_per_claim] | @tsv' "$RESULT" |
  while IFS=$'\t' read -r r m c p50 p99 cpu; do printf '%-8s %-8s %12s %8s %8s %20s\n' "$r" "$m" "$c" "$p50" "$p99" "$cpu"; done
jq -r '"\nmetrics on:  \(.on_claims_per_s) claims/s (spread between its phases \(.on_spread_pct) %)\nmetrics off: \(.off_claims_per_s) claims/s (spread \(.off_spread_pct) %)\noverhead:    \(.overhead_pct) % (target <= \(.target_overhead_pct) %: \(if .met then "met" else "MISSED" end))\nservice CPU per claim: on \(.on_cpu_us_per_claim) us, off \(.off_cpu_us_per_claim) us (\(.cpu_overhead_pct) %; less sensitive to other load than claims/s)"' "$RESULT"
printf 'result: %s\n' "${RESULT#"$ROOT"/}"

#!/usr/bin/env bash
# Benchmark: the claim path, raw SQL floor against the HTTP service, in one run.
#
# What it does
#   1. builds the release binaries (giftcodes, and claim-floor + loadgen from bench/), ensures the
#      MariaDB login (scripts/mariadb-test-login.sh), creates a throw-away database
#      giftcodes_bench_claims_<random> and runs `giftcodes migrate`;
#   2. starts the service, creates two campaigns through the admin API and loads their codes as
#      text/plain (curl -T): a floor campaign (no limit) and a service campaign whose daily_limit
#      (DAILY_LIMIT, 5,000,000) does not bind, so "cap respected" is checkable; then stops it;
#   3. the floor: bench's `claim-floor` runs the service's own claim transaction (pick … FOR
#      UPDATE SKIP LOCKED, issue, bump the day counter, commit) straight at MariaDB with no HTTP,
#      one code per transaction at 1, 2, 4 and 8 connections, and 16 and 64 codes per
#      transaction at 2 connections (FLOOR_SECONDS each; nothing else runs meanwhile);
#   4. the service: starts it afresh and drives it with bench's `loadgen` (CONNECTIONS keep-alive
#      connections, every request a new user) at each offered rate in RATES (open loop, latency
#      corrected for coordinated omission) for RATE_SECONDS, then at saturation (closed loop) for
#      SATURATION_SECONDS; each after WARMUP_SECONDS of unmeasured load. Per phase: successful
#      claims/s, p50/p90/p99/max latency, errors by "<status> <code>", the service's CPU
#      (utime+stime from /proc, % of one core over the phase), its idle VmRSS before and peak
#      VmHWM during the phase (the high-water mark is reset through /proc/<pid>/clear_refs before
#      each phase), and mariadbd's CPU (which counts every client of that server);
#   5. checks in SQL: no code issued twice, no claim id twice, no user twice per campaign, each
#      campaign-day counter equals COUNT(*) of that day's issued codes (and no issued day lacks a
#      counter), issued per day <= daily_limit, and the issued rows cover every 201 answer;
#   6. prints one table (floor rows, service rows, service saturation ÷ floor ratios, targets,
#      checks), writes bench/results/<UTC YYYYmmdd-HHMMSS>-<git short hash>-claims.json, and draws
#      bench/results/<same stem>.png with bench/plot.py, copied to bench/results/latest-claims.png.
#   Target (issue): >= 12,000 successful claims/s sustained for 60 s at saturation with 64
#   connections, p99 <= 25 ms, and >= 5x the best one-code-per-transaction floor.
#
# How to run (from anywhere; needs the local MariaDB answering as root on its socket, cargo,
# curl, jq, the mariadb client, python3 (matplotlib is pip-installed when missing)):
#   bash bench/claims.sh
# Everything it made (service, database, temp files) is removed on exit.
#
# Exit status: non-zero when a phase or a check fails. Missing the targets is not a failure:
# it is printed and recorded in the JSON ("targets").
#
# Environment knobs (optional):
#   SATURATION_SECONDS=60  RATES="2000 4000 8000 12000"  RATE_SECONDS=15  WARMUP_SECONDS=3
#   CONNECTIONS=64  FLOOR_SECONDS=8  FLOOR_PHASES="1x1 2x1 4x1 8x1 2x16 2x64" (connections x
#   codes per transaction)  DAILY_LIMIT=5000000  LOADGEN_THREADS=1  BENCH_SKIP_BUILD=1 (use the
#   existing release binaries)  SERVICE_CODES / FLOOR_CODES (codes to load; sized from the
#   phases by default). The service's own settings pass through from the environment, e.g.
#   GIFTCODES_CLAIM_MAX_BATCH, GIFTCODES_CLAIM_WRITERS, GIFTCODES_CLAIM_LINGER_US,
#   GIFTCODES_DB_MAX_CONNECTIONS; they are recorded in the JSON.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SATURATION_SECONDS=${SATURATION_SECONDS:-60}
RATES=${RATES:-"2000 4000 8000 12000"}
RATE_SECONDS=${RATE_SECONDS:-15}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
FLOOR_SECONDS=${FLOOR_SECONDS:-8}
FLOOR_PHASES=${FLOOR_PHASES:-"1x1 2x1 4x1 8x1 2x16 2x64"}
DAILY_LIMIT=${DAILY_LIMIT:-5000000}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
TARGET_CLAIMS_PER_S=12000
TARGET_P99_MS=25
TARGET_FLOOR_RATIO=5
TARGET_SATURATION_SECONDS=60
TARGET_CONNECTIONS=64
BIN="$ROOT/target/release/giftcodes"
FLOOR_BIN="$ROOT/target/release/claim-floor"
LOADGEN_BIN="$ROOT/target/release/loadgen"
DB_USER=giftcodes
DB_PASS=giftcodes
DB_HOST=127.0.0.1
DB_PORT=3306
# Upper bounds used to size the stock: claims/s a saturated service or a floor phase could reach.
SATURATION_CEILING=${SATURATION_CEILING:-30000}
FLOOR_CEILING_PER_CODE=${FLOOR_CEILING_PER_CODE:-5000}
FLOOR_CEILING_BATCHED=${FLOOR_CEILING_BATCHED:-40000}

log() { printf '[claims] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

for tool in cargo curl jq mariadb awk seq ss python3; do
  command -v "$tool" >/dev/null || die "needs '$tool' on PATH"
done
for n in "$SATURATION_SECONDS" "$RATE_SECONDS" "$WARMUP_SECONDS" "$CONNECTIONS" "$FLOOR_SECONDS" "$DAILY_LIMIT"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "knobs must be whole numbers, got '$n'"
done
for r in $RATES; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || die "RATES must be positive whole numbers, got '$r'"; done
for p in $FLOOR_PHASES; do [[ "$p" =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "FLOOR_PHASES entries look like 2x16, got '$p'"; done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# --- cleanup --------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-bench-claims.XXXXXX")
DB_NAME="giftcodes_bench_claims_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
DATABASE_URL_BENCH="mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$DB_NAME"
SERVICE_PID=""
SERVICE_PIDS=()
DB_CREATED=0

stop_service() { stop_giftcodes_all; SERVICE_PID=""; }

cleanup() {
  local status=$?
  set +e
  stop_service
  if [ "$DB_CREATED" = 1 ]; then sql -e "DROP DATABASE IF EXISTS \`$DB_NAME\`"; fi
  finish_cleanup "$status"
}
set_cleanup_traps

# --- build, login, database -----------------------------------------------------------------
build_release "$BIN" "$FLOOR_BIN" "$LOADGEN_BIN"

log "ensuring the MariaDB login"
bash "$ROOT/scripts/mariadb-test-login.sh"
DB_CREATED=1
create_migrated_database "$DB_NAME" "$DATABASE_URL_BENCH"

# --- service control -------------------------------------------------------------------------
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ADMIN_TOKEN=$(bench_token bench-admin)
CLIENT_TOKEN=$(bench_token bench-client)

start_service() {
  start_giftcodes "$PORT" "$DATABASE_URL_BENCH" "$WORK/service.log"
  SERVICE_PID=${SERVICE_PIDS[-1]}
}

# --- stock -------------------------------------------------------------------------------------
sum_rates=0; for r in $RATES; do sum_rates=$(( sum_rates + r )); done
DEFAULT_SERVICE_CODES=$(( sum_rates * (RATE_SECONDS + WARMUP_SECONDS + 2) + SATURATION_CEILING * (SATURATION_SECONDS + WARMUP_SECONDS + 1) ))
DEFAULT_FLOOR_CODES=0
for p in $FLOOR_PHASES; do
  per_tx=${p#*x}
  if [ "$per_tx" = 1 ]; then ceiling=$FLOOR_CEILING_PER_CODE; else ceiling=$FLOOR_CEILING_BATCHED; fi
  DEFAULT_FLOOR_CODES=$(( DEFAULT_FLOOR_CODES + ceiling * (FLOOR_SECONDS + 1) ))
done
SERVICE_CODES=${SERVICE_CODES:-$DEFAULT_SERVICE_CODES}
FLOOR_CODES=${FLOOR_CODES:-$DEFAULT_FLOOR_CODES}
if [ "$SERVICE_CODES" -gt "$DAILY_LIMIT" ]; then
  log "warning: SERVICE_CODES ($SERVICE_CODES) > DAILY_LIMIT ($DAILY_LIMIT): the cap may bind"
fi

log "starting the service on $BASE (database $DB_NAME) to load the codes"
start_service
FLOOR_CAMPAIGN=$(create_campaign "bench floor" null)
SERVICE_CAMPAIGN=$(create_campaign "bench service" "$DAILY_LIMIT")
LOAD_STARTED=$(date +%s.%N)
log "loading $FLOOR_CODES floor codes and $SERVICE_CODES service codes"
load_codes "$FLOOR_CAMPAIGN" FLR "$FLOOR_CODES"
load_codes "$SERVICE_CAMPAIGN" SVC "$SERVICE_CODES"
LOAD_SECONDS=$(awk -v a="$(date +%s.%N)" -v b="$LOAD_STARTED" 'BEGIN { printf "%.1f", a - b }')
log "loaded in $LOAD_SECONDS s; stopping the service for the floor"
stop_service
sql "$DB_NAME" -e "ANALYZE TABLE codes" >/dev/null

# --- /proc helpers -------------------------------------------------------------------------------
status_mb() { # pid, key
  awk -v key="$2:" '$1 == key { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0
}
now() { date +%s.%N; }
MARIADB_PID=$(pgrep -xo mariadbd || pgrep -xo mysqld || true)

# --- floor -----------------------------------------------------------------------------------------
: >"$WORK/floor.jsonl"
FLOOR_RUN="f$(od -An -N3 -tx4 /dev/urandom | tr -d ' ')"
for p in $FLOOR_PHASES; do
  c=${p%x*}; n=${p#*x}
  log "floor: $c connection(s), $n code(s) per transaction, $FLOOR_SECONDS s"
  db_before=$(cpu_seconds "$MARIADB_PID"); t0=$(now)
  DATABASE_URL="$DATABASE_URL_BENCH" "$FLOOR_BIN" --campaign "$FLOOR_CAMPAIGN" \
    --connections "$c" --per-transaction "$n" --seconds "$FLOOR_SECONDS" --run "$FLOOR_RUN-$p" \
    >"$WORK/floor-line.json" 2>"$WORK/floor-err.txt" \
    || { cat "$WORK/floor-err.txt" >&2; die "floor phase $p failed"; }
  db_cpu=$(awk -v a="$(cpu_seconds "$MARIADB_PID")" -v b="$db_before" -v t="$(now)" -v t0="$t0" \
    'BEGIN { printf "%.1f", (a - b) / (t - t0) * 100 }')
  jq -c --argjson db "$db_cpu" '. + {mariadbd_cpu_pct: $db}' "$WORK/floor-line.json" >>"$WORK/floor.jsonl"
  if jq -e .ran_out_of_codes "$WORK/floor-line.json" >/dev/null; then
    log "warning: floor phase $p ran out of codes (raise FLOOR_CODES)"
  fi
  sleep 1
done

# --- service ---------------------------------------------------------------------------------------
log "starting the service afresh for the load phases"
start_service
sleep 1
IDLE_RSS_MB=$(status_mb "$SERVICE_PID" VmRSS)
: >"$WORK/service.jsonl"
PHASE_FAILED=0
SERVICE_RUN="s$(od -An -N3 -tx4 /dev/urandom | tr -d ' ')"

run_phase() { # rate (0 = saturation), seconds
  local rate=$1 seconds=$2 label rss_before svc_before db_before t0 t1 wall svc_cpu db_cpu peak after
  if [ "$rate" = 0 ]; then label=saturation; else label="rate $rate/s"; fi
  log "service: $label, $CONNECTIONS connections, ${WARMUP_SECONDS}+$seconds s"
  rss_before=$(status_mb "$SERVICE_PID" VmRSS)
  echo 5 >"/proc/$SERVICE_PID/clear_refs" 2>/dev/null || true   # restart VmHWM from now
  svc_before=$(cpu_seconds "$SERVICE_PID"); db_before=$(cpu_seconds "$MARIADB_PID"); t0=$(now)
  if ! LOADGEN_TOKEN="$CLIENT_TOKEN" "$LOADGEN_BIN" --base "$BASE" --campaign "$SERVICE_CAMPAIGN" \
      --rate "$rate" --connections "$CONNECTIONS" --seconds "$seconds" \
      --warmup-seconds "$WARMUP_SECONDS" --threads "$LOADGEN_THREADS" --run "$SERVICE_RUN-$rate" \
      >"$WORK/phase.json" 2>"$WORK/phase-err.txt"; then
    cat "$WORK/phase-err.txt" >&2
    log "phase $label: the load generator failed"
    PHASE_FAILED=1
    return 0
  fi
  t1=$(now)
  kill -0 "$SERVICE_PID" 2>/dev/null || die "the service died during $label"
  wall=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
  svc_cpu=$(awk -v a="$(cpu_seconds "$SERVICE_PID")" -v b="$svc_before" -v w="$wall" 'BEGIN { printf "%.1f", (a - b) / w * 100 }')
  db_cpu=$(awk -v a="$(cpu_seconds "$MARIADB_PID")" -v b="$db_before" -v w="$wall" 'BEGIN { printf "%.1f", (a - b) / w * 100 }')
  peak=$(status_mb "$SERVICE_PID" VmHWM)
  after=$(status_mb "$SERVICE_PID" VmRSS)
  jq -c --arg phase "$label" --argjson wall "$wall" --argjson svc "$svc_cpu" --argjson db "$db_cpu" \
    --argjson rss_before "$rss_before" --argjson peak "$peak" --argjson after "$after" \
    '. + {phase: $phase, phase_wall_s: $wall, service_cpu_pct: $svc, mariadbd_cpu_pct: $db,
          service_rss_before_mb: $rss_before, service_rss_peak_mb: $peak,
          service_rss_after_mb: $after}' "$WORK/phase.json" >>"$WORK/service.jsonl"
  if [ "$(jq .created "$WORK/phase.json")" = 0 ]; then
    log "phase $label: no successful claim"
    PHASE_FAILED=1
  fi
  sleep 1
}

for r in $RATES; do run_phase "$r" "$RATE_SECONDS"; done
run_phase 0 "$SATURATION_SECONDS"
SERVICE_VMHWM_LIFETIME_NOTE="per phase (VmHWM reset before each)"
stop_service

# --- checks ----------------------------------------------------------------------------------------
log "checking the database"
CHECKS_FILE="$WORK/checks.jsonl"
: >"$CHECKS_FILE"
claim_data_checks "$DB_NAME"
SERVICE_ISSUED=$(sql "$DB_NAME" -e "SELECT COUNT(*) FROM codes WHERE status = 1 AND campaign_id = UNHEX(REPLACE('$SERVICE_CAMPAIGN', '-', ''))")
FLOOR_ISSUED=$(sql "$DB_NAME" -e "SELECT COUNT(*) FROM codes WHERE status = 1 AND campaign_id = UNHEX(REPLACE('$FLOOR_CAMPAIGN', '-', ''))")
CREATED_201=$(jq -s 'map(.created_all) | add // 0' "$WORK/service.jsonl")
FLOOR_CODES_DONE=$(jq -s 'map(.codes) | add // 0' "$WORK/floor.jsonl")
SERVICE_LOG_WARNINGS=$(grep -cE ' (WARN|ERROR) |"level":"(WARN|ERROR)"' "$WORK/service.log" || true)
grep -E ' (WARN|ERROR) |"level":"(WARN|ERROR)"' "$WORK/service.log" | head -n 5 >"$WORK/warnings.txt" || true

check_json "every 201 is an issued row" "$([ "$SERVICE_ISSUED" -ge "$CREATED_201" ] && echo true || echo false)" \
  "$SERVICE_ISSUED issued rows in the service campaign, $CREATED_201 answers 201"
check_json "every floor claim is an issued row" "$([ "$FLOOR_ISSUED" = "$FLOOR_CODES_DONE" ] && echo true || echo false)" \
  "$FLOOR_ISSUED issued rows in the floor campaign, $FLOOR_CODES_DONE reported by claim-floor"

# --- report ----------------------------------------------------------------------------------------
COMMIT=$(result_commit)
DIRTY=$(result_dirty)
STAMP=$(date -u +%Y%m%d-%H%M%S)
DATE_ISO=$(date -u +%Y-%m-%dT%H:%M:%SZ)
MARIADB_VERSION=$(sql -e "SELECT VERSION()")
SERVICE_ENV=$(service_env_json)

mkdir -p "$ROOT/bench/results"
STEM="$ROOT/bench/results/$STAMP-$COMMIT-claims"
RESULT="$STEM.json"
jq -n \
  --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg date "$DATE_ISO" \
  --arg mariadb "$MARIADB_VERSION" --argjson cpus "$(nproc)" --arg kernel "$(uname -r)" \
  --argjson service_env "$SERVICE_ENV" \
  --argjson connections "$CONNECTIONS" --argjson rate_seconds "$RATE_SECONDS" \
  --argjson saturation_seconds "$SATURATION_SECONDS" --argjson warmup_seconds "$WARMUP_SECONDS" \
  --argjson floor_seconds "$FLOOR_SECONDS" --argjson daily_limit "$DAILY_LIMIT" \
  --argjson loadgen_threads "$LOADGEN_THREADS" \
  --argjson floor_codes "$FLOOR_CODES" --argjson service_codes "$SERVICE_CODES" \
  --argjson load_seconds "$LOAD_SECONDS" --argjson idle_rss "$IDLE_RSS_MB" \
  --argjson warnings "$SERVICE_LOG_WARNINGS" --rawfile warning_lines "$WORK/warnings.txt" \
  --slurpfile floor "$WORK/floor.jsonl" --slurpfile service "$WORK/service.jsonl" \
  --slurpfile checks "$WORK/checks.jsonl" \
  --argjson t_rate "$TARGET_CLAIMS_PER_S" --argjson t_p99 "$TARGET_P99_MS" \
  --argjson t_ratio "$TARGET_FLOOR_RATIO" --argjson t_secs "$TARGET_SATURATION_SECONDS" \
  --argjson t_conns "$TARGET_CONNECTIONS" \
  '
  def r2: (. * 100 | round) / 100;
  ($service | map(select(.mode == "closed")) | last) as $sat
  | ($floor | map(select(.per_transaction == 1)) | max_by(.codes_per_s)) as $best1
  | {
      commit: $commit, dirty: $dirty, date: $date,
      host: {cpus: $cpus, kernel: $kernel, mariadb: $mariadb, note: "shared 2-core machine; other work may run meanwhile"},
      settings: {connections: $connections, rate_seconds: $rate_seconds,
                 saturation_seconds: $saturation_seconds, warmup_seconds: $warmup_seconds,
                 floor_seconds: $floor_seconds, daily_limit: $daily_limit,
                 loadgen_threads: $loadgen_threads, floor_codes: $floor_codes,
                 service_codes: $service_codes, service_env: $service_env},
      load_seconds: $load_seconds,
      floor: $floor,
      service: $service,
      service_idle_rss_mb: $idle_rss,
      service_log_warnings: $warnings,
      service_log_warning_lines: ($warning_lines | split("\n") | map(select(length > 0))),
      ratios: {
        best_floor_per_code: ($best1 | {connections, per_transaction, codes_per_s}),
        saturation_claims_per_s: ($sat.claims_per_s // null),
        saturation_over_floor: [ $floor[] | {connections, per_transaction, floor_codes_per_s: .codes_per_s,
          ratio: (if $sat and .codes_per_s > 0 then ($sat.claims_per_s / .codes_per_s | r2) else null end)} ],
        saturation_over_best_per_code_floor:
          (if $sat and $best1 and $best1.codes_per_s > 0 then ($sat.claims_per_s / $best1.codes_per_s | r2) else null end)
      },
      targets: {
        claims_per_s: {target: $t_rate, measured: ($sat.claims_per_s // null), met: (($sat.claims_per_s // 0) >= $t_rate)},
        p99_ms: {target: $t_p99, measured: ($sat.p99_ms // null), met: ($sat != null and $sat.p99_ms <= $t_p99)},
        over_floor: {target: $t_ratio,
          measured: (if $sat and $best1 and $best1.codes_per_s > 0 then ($sat.claims_per_s / $best1.codes_per_s | r2) else null end),
          met: ($sat != null and $best1 != null and $best1.codes_per_s > 0 and $sat.claims_per_s / $best1.codes_per_s >= $t_ratio)},
        saturation_seconds: {target: $t_secs, measured: ($sat.seconds // null), met: (($sat.seconds // 0) >= $t_secs)},
        connections: {target: $t_conns, measured: $connections, met: ($connections == $t_conns)}
      },
      checks: $checks,
      pass: ($checks | all(.pass))
    }' >"$RESULT"

# The table.
printf '\nclaim path benchmark, commit %s%s, %s (MariaDB %s, %s cores)\n' \
  "$COMMIT" "$([ "$DIRTY" = true ] && echo ' (dirty)')" "$DATE_ISO" "$MARIADB_VERSION" "$(nproc)"
printf '\nfloor: the claim transaction straight at MariaDB, no HTTP (%s s each)\n' "$FLOOR_SECONDS"
printf '%6s %8s %10s %10s %10s %10s %10s %12s %8s\n' conns codes/tx tx/s codes/s "tx p50 ms" "tx p99 ms" "db CPU %" "sat ÷ this" errors
jq -r --slurpfile all "$RESULT" '
  ($all[0].ratios.saturation_over_floor) as $ratios
  | .floor | to_entries[] | .key as $i | .value
  | [.connections, .per_transaction, .tx_per_s, .codes_per_s, .tx_p50_ms, .tx_p99_ms, .mariadbd_cpu_pct,
     ($ratios[$i].ratio // "-"), ((.errors | add // 0) | tostring) + (if .ran_out_of_codes then " RAN OUT" else "" end)]
  | @tsv' "$RESULT" |
while IFS=$'\t' read -r c n tx codes p50 p99 db ratio errors; do
  printf '%6s %8s %10.0f %10.0f %10s %10s %10s %12s %8s\n' "$c" "$n" "$tx" "$codes" "$p50" "$p99" "$db" "$ratio" "$errors"
done
printf '\nservice: %s connections, every request a new user (rates: %s s measured; saturation: %s s; %s s warm-up each)\n' \
  "$CONNECTIONS" "$RATE_SECONDS" "$SATURATION_SECONDS" "$WARMUP_SECONDS"
printf '%12s %10s %8s %8s %8s %8s %9s %9s %9s %9s  %s\n' offered claims/s "p50 ms" "p90 ms" "p99 ms" "max ms" "svc CPU%" "peak MB" "db CPU%" "lg CPU%" errors
jq -r '.service[] | [(if .mode == "closed" then "saturation" else (.offered_rate | tostring) end),
    .claims_per_s, .p50_ms, .p90_ms, .p99_ms, .max_ms, .service_cpu_pct, .service_rss_peak_mb,
    .mariadbd_cpu_pct, ((.loadgen_cpu_s / .phase_wall_s * 1000 | round) / 10),
    (.errors | to_entries | map("\(.key): \(.value)") | join(", ") | if . == "" then "-" else . end)] | @tsv' "$RESULT" |
while IFS=$'\t' read -r offered rate p50 p90 p99 max cpu peak db lg errors; do
  printf '%12s %10.0f %8s %8s %8s %8s %9s %9s %9s %9s  %s\n' "$offered" "$rate" "$p50" "$p90" "$p99" "$max" "$cpu" "$peak" "$db" "$lg" "$errors"
done
printf '(service idle RSS %s MB before the load phases; peak MB is VmHWM %s)\n' "$IDLE_RSS_MB" "$SERVICE_VMHWM_LIFETIME_NOTE"
printf '\ntargets (issue; saturation phase)\n'
jq -r '.targets | to_entries[] | [.key, (.value.target | tostring), (.value.measured | tostring), (if .value.met then "met" else "MISSED" end)] | @tsv' "$RESULT" |
while IFS=$'\t' read -r name target measured met; do
  printf '  %-20s target %-8s measured %-10s %s\n' "$name" "$target" "$measured" "$met"
done
print_checks "$RESULT"
if [ "$SERVICE_LOG_WARNINGS" != 0 ]; then
  printf '\nservice log: %s warning/error lines, first ones:\n' "$SERVICE_LOG_WARNINGS"
  sed 's/^/  /' "$WORK/warnings.txt"
fi

# --- plot ------------------------------------------------------------------------------------------
ensure_matplotlib
if python3 "$ROOT/bench/plot.py" "$RESULT" "$STEM.png"; then
  cp "$STEM.png" "$ROOT/bench/results/latest-claims.png"
  printf '\nplot:   %s (and bench/results/latest-claims.png)\n' "${STEM#"$ROOT"/}.png"
else
  log "warning: the plot could not be drawn"
fi
printf 'result: %s\n' "${RESULT#"$ROOT"/}"

[ "$PHASE_FAILED" = 0 ] || die "a load phase failed"
[ "$CHECKS_OK" = true ] || die "a check failed"

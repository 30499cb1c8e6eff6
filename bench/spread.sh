#!/usr/bin/env bash
# Benchmark: the claim path under the real shapes — many campaigns, several instances, a long
# history — each against the minimal transaction's floor measured in the same run (issue 8).
#
# What it does
#   1. builds the release binaries (giftcodes, and loadgen from bench/), ensures the MariaDB
#      login (scripts/mariadb-test-login.sh), sysbench (apt-get install sysbench, Debian's
#      package, when missing) and matplotlib (pip, when missing);
#   2. the floors, with sysbench and the shared scripts of ../shared/design/floor (FLOOR_DIR):
#      the minimal claim transaction (pick … FOR UPDATE SKIP LOCKED, mark issued to distinct
#      users, bump the campaign-day counter, commit; no HTTP) at 1 and 2 connections each:
#        claim-b1      claim.lua BATCH=1 COUNTER=1             (the one-claim floor)
#        claim-b64     claim.lua BATCH=64 COUNTER=1            (the single-campaign floor)
#        multi-200     multi.lua UNION=1 BATCH=64 C=200        (the spread floor, uniform)
#        multi-1000z   multi.lua UNION=1 BATCH=64 C=1000, campaigns drawn Zipf(ZIPF_S) through
#                      bench/floor/multi-zipf.lua (multi.lua unchanged, its draw made Zipf)
#      Each phase gets its own freshly loaded database (the shared schema.sql under the name
#      giftcodes_spread_floor_<random>, filled as load.sh / load-multi.sh do but with MariaDB's
#      Sequence engine, codes interleaved over the campaigns, stock per campaign in proportion to
#      its draw), FLOOR_WARMUP_SECONDS unmeasured (a sysbench checkpoint resets the counters),
#      then FLOOR_SECONDS measured. claims/s = transactions/s × BATCH; a phase that drained a
#      campaign is flagged. Only the floors the selected CELLS need are run;
#   3. the service cells (CELLS), each on a fresh database giftcodes_spread_<random>_<cell>
#      (`giftcodes migrate`, then INSTANCES `giftcodes serve` processes on their own ports over
#      it, pool and writer settings from the environment):
#        1x1           1 instance, 1 campaign                      (closed loop, saturation)
#        1x200         1 instance, 200 campaigns, uniform          (saturation)
#        1x1000z       1 instance, 1,000 campaigns, Zipf(ZIPF_S)   (saturation)
#        3x200         3 instances, 200 campaigns, uniform         (saturation)
#        1x1-history   as 1x1, with HISTORY codes already issued in the table (SQL, Sequence
#                      engine: issued rows of the same campaign on its HISTORY_DAYS earlier
#                      days, with their day counters, loaded before the codes of the run)
#        low           1 instance, 1 campaign, LOW_RATE claims/s open loop
#      Campaigns (daily_limit DAILY_LIMIT, UTC) are created and their codes uploaded through
#      the admin API; every campaign's stock is sized from SATURATION_CEILING and its share of
#      the draws. bench's `loadgen` then drives CONNECTIONS keep-alive connections split evenly
#      across the instances, every request a new user, its campaign drawn per request;
#      WARMUP_SECONDS unmeasured, CELL_SECONDS measured. Per cell: claims/s, p50/p90/p99/max,
#      errors by "<status> <code>", and a profile of the measured window: the service's CPU
#      (all instances) and mariadbd's (from /proc, % of one core), InnoDB fsyncs/s, log
#      writes/s and COMMITs/s (SHOW GLOBAL STATUS deltas; server-wide, like mariadbd's CPU);
#   4. after each cell, checks in SQL (bench/lib.sh): no code issued twice, no claim id twice,
#      no user twice per campaign, each campaign-day counter equals COUNT(*) (and no issued day
#      lacks one), issued per day <= daily_limit, no row half issued; and per campaign the
#      issued rows of the run cover every 201 the load generator saw;
#   5. prints the floors and one table (a row per criterion: cell, claims/s, p50, p99, errors,
#      the floor it is held to, ratio, target, PASS/FAIL), writes
#      bench/results/<UTC YYYYmmdd-HHMMSS>-<git short hash>-spread.json and draws the same
#      stem's .png with bench/plot_spread.py (copied to bench/results/latest-spread.png).
#
#   Targets (issue 8; 64 connections, >= 30 s per cell after warm-up; floors best of 1 and 2
#   connections, 64 claims per transaction):
#     1x1 >= 0.7 × claim-b64 and >= 5 × claim-b1;  1x200 >= 0.8 × multi-200;
#     1x1000z >= 0.8 × multi-1000z;  3x200 >= 0.7 × multi-200;
#     1x1-history >= 0.9 × 1x1 of the same run;  low: p50 <= 2.5 ms;
#     every cell: p99 <= 25 ms, no errors besides EXPECTED_REFUSALS, every check passes.
#
# How to run (from anywhere; needs the local MariaDB answering as root on its socket, cargo,
# curl, jq, the mariadb client, python3, apt-get for sysbench when it is missing):
#   bash bench/spread.sh                                     # the full run, ~25 min
#   CELLS="1x1 1x200" CELL_SECONDS=5 FLOOR_SECONDS=5 bash bench/spread.sh   # a quick look
# Everything it made (services, databases, temp files) is removed on exit.
#
# Exit status: non-zero when a phase fails (a floor, the load generator, a service dying) or a
# check fails. Missing a target is not a failure: it is printed and recorded ("criteria").
#
# Environment knobs (optional):
#   CELLS="1x1 1x200 1x1000z 3x200 1x1-history low"   CELL_SECONDS=30  WARMUP_SECONDS=5
#   FLOOR_SECONDS=$CELL_SECONDS  FLOOR_WARMUP_SECONDS=$WARMUP_SECONDS  CONNECTIONS=64
#   HISTORY=10000000  HISTORY_DAYS=100  LOW_RATE=200  ZIPF_S=1.1  DAILY_LIMIT=5000000
#   SATURATION_CEILING=30000 (claims/s a cell could reach, sizes the stock)
#   FLOOR_CEILING_B1=5000  FLOOR_CEILING_B64=40000  FLOOR_CEILING_MULTI=30000 (the same, floors)
#   EXPECTED_REFUSALS="" (error keys such as "409 out_of_stock" not counted as errors)
#   FLOOR_DIR=<repo>/../shared/design/floor  MYSQL_SOCKET=/run/mysqld/mysqld.sock
#   LOAD_JOBS=4 (campaigns created / uploads sent at once while a cell is set up)
#   LOADGEN_THREADS=1  BENCH_SKIP_BUILD=1 (use the existing release binaries)
#   The service's own settings pass through (GIFTCODES_CLAIM_MAX_BATCH, GIFTCODES_CLAIM_WRITERS,
#   GIFTCODES_DB_MAX_CONNECTIONS, ...) to every instance and are recorded in the JSON.
#   Without GIFTCODES_CLAIM_WRITERS each instance runs the README's rule: the writers of all
#   instances together as many as the database's cores, DB_CORES=$(nproc) (the database runs
#   here), at least one each — 2 writers for one instance, 1 each for three. Without
#   GIFTCODES_WORKER_THREADS each instance runs 1 worker thread, the README's advice for a
#   service sharing a small machine with its database (here also with the load generator).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CELLS=${CELLS:-"1x1 1x200 1x1000z 3x200 1x1-history low"}
CELL_SECONDS=${CELL_SECONDS:-30}
WARMUP_SECONDS=${WARMUP_SECONDS:-5}
FLOOR_SECONDS=${FLOOR_SECONDS:-$CELL_SECONDS}
FLOOR_WARMUP_SECONDS=${FLOOR_WARMUP_SECONDS:-$WARMUP_SECONDS}
CONNECTIONS=${CONNECTIONS:-64}
DB_CORES=${DB_CORES:-$(nproc)}
WORKER_THREADS=${GIFTCODES_WORKER_THREADS:-1}
HISTORY=${HISTORY:-10000000}
HISTORY_DAYS=${HISTORY_DAYS:-100}
LOW_RATE=${LOW_RATE:-200}
ZIPF_S=${ZIPF_S:-1.1}
DAILY_LIMIT=${DAILY_LIMIT:-5000000}
SATURATION_CEILING=${SATURATION_CEILING:-30000}
FLOOR_CEILING_B1=${FLOOR_CEILING_B1:-5000}
FLOOR_CEILING_B64=${FLOOR_CEILING_B64:-40000}
FLOOR_CEILING_MULTI=${FLOOR_CEILING_MULTI:-30000}
EXPECTED_REFUSALS=${EXPECTED_REFUSALS:-}
LOAD_JOBS=${LOAD_JOBS:-4}
FLOOR_DIR=${FLOOR_DIR:-$ROOT/../shared/design/floor}
MYSQL_SOCKET=${MYSQL_SOCKET:-/run/mysqld/mysqld.sock}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/giftcodes"
LOADGEN_BIN="$TARGET_DIR/release/loadgen"
# Stock per campaign: its expected share × STOCK_MARGIN + STOCK_MIN codes.
STOCK_MARGIN=1.5
STOCK_MIN=100
TARGET_P99_MS=25
TARGET_LOW_P50_MS=2.5

log() { printf '[spread] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

for tool in cargo curl jq mariadb awk seq ss python3 sed; do
  command -v "$tool" >/dev/null || die "needs '$tool' on PATH"
done
for n in "$CELL_SECONDS" "$WARMUP_SECONDS" "$FLOOR_SECONDS" "$FLOOR_WARMUP_SECONDS" "$CONNECTIONS" \
  "$HISTORY" "$HISTORY_DAYS" "$LOW_RATE" "$DAILY_LIMIT" "$SATURATION_CEILING" "$FLOOR_CEILING_B1" \
  "$FLOOR_CEILING_B64" "$FLOOR_CEILING_MULTI" "$LOAD_JOBS"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "knobs must be whole numbers, got '$n'"
done
[ "$CELL_SECONDS" -gt 0 ] && [ "$FLOOR_SECONDS" -gt 0 ] && [ "$HISTORY_DAYS" -gt 0 ] \
  || die "CELL_SECONDS, FLOOR_SECONDS and HISTORY_DAYS must be positive"
[[ "$ZIPF_S" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "ZIPF_S must be a positive number, got '$ZIPF_S'"
[ -f "$FLOOR_DIR/claim.lua" ] && [ -f "$FLOOR_DIR/multi.lua" ] && [ -f "$FLOOR_DIR/schema.sql" ] \
  || die "no floor scripts in $FLOOR_DIR (claim.lua, multi.lua, schema.sql; set FLOOR_DIR)"
FLOOR_DIR=$(cd "$FLOOR_DIR" && pwd)

# The cells: instances, campaigns, distribution, history codes, offered rate (0: saturation).
declare -A CELL_SPEC=(
  [1x1]="1 1 uniform 0 0"
  [1x200]="1 200 uniform 0 0"
  [1x1000z]="1 1000 zipf 0 0"
  [3x200]="3 200 uniform 0 0"
  [1x1-history]="1 1 uniform $HISTORY 0"
  [low]="1 1 uniform 0 $LOW_RATE"
)
# The floors: script, BATCH, C, distribution.
declare -A FLOOR_SPEC=(
  [claim-b1]="claim.lua 1 1 uniform"
  [claim-b64]="claim.lua 64 1 uniform"
  [multi-200]="multi.lua 64 200 uniform"
  [multi-1000z]="multi.lua 64 1000 zipf"
)
FLOORS=""
for cell in $CELLS; do
  [ -n "${CELL_SPEC[$cell]:-}" ] || die "unknown cell '$cell' (known: ${!CELL_SPEC[*]})"
  case $cell in
    1x1|1x1-history) FLOORS="$FLOORS claim-b1 claim-b64" ;;
    1x200|3x200) FLOORS="$FLOORS multi-200" ;;
    1x1000z) FLOORS="$FLOORS multi-1000z" ;;
  esac
done
FLOORS=$(for f in claim-b1 claim-b64 multi-200 multi-1000z; do if [[ " $FLOORS " == *" $f "* ]]; then echo "$f"; fi; done | xargs)

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# --- cleanup --------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-bench-spread.XXXXXX")
: >"$WORK/service.log"
RUN_ID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
FLOOR_DB="giftcodes_spread_floor_$RUN_ID"
SERVICE_PIDS=()
LOADGEN_PID=""
DATABASES=()

cleanup() {
  local status=$? db
  set +e
  [ -n "$LOADGEN_PID" ] && stop_pid "$LOADGEN_PID"
  stop_giftcodes_all
  for db in "${DATABASES[@]}"; do rsql -e "DROP DATABASE IF EXISTS \`$db\`"; done
  finish_cleanup "$status"
}
set_cleanup_traps

# root on the local socket, as the shared floor scripts use it (sysbench and the floor schema).
rsql() { mariadb -uroot --socket="$MYSQL_SOCKET" --batch --skip-column-names "$@"; }

# --- tools ------------------------------------------------------------------------------------
build_release "$BIN" "$LOADGEN_BIN"
if [ -n "$FLOORS" ] && ! command -v sysbench >/dev/null; then
  log "installing sysbench (apt-get, Debian's package)"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q sysbench >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q sysbench >&2; }; } \
    || die "could not install sysbench (apt-get install sysbench, as root)"
fi
ensure_matplotlib
log "ensuring the MariaDB login"
bash "$ROOT/scripts/mariadb-test-login.sh"
rsql -e "SELECT 1" >/dev/null || die "MariaDB does not answer as root on $MYSQL_SOCKET (set MYSQL_SOCKET)"
MARIADB_PID=$(pgrep -xo mariadbd || pgrep -xo mysqld || true)
ADMIN_TOKEN=$(bench_token bench-admin)
CLIENT_TOKEN=$(bench_token bench-client)
PHASE_FAILED=0
now() { date +%s.%N; }

# --- shared measurements ----------------------------------------------------------------------
# "k n" lines, k = 1..campaigns: codes to load for campaign k when `total` claims are drawn
# uniformly or Zipf(ZIPF_S) (rank k weighs k^-s), with margin.
stock_counts() { # campaigns, distribution, total claims
  awk -v c="$1" -v d="$2" -v s="$ZIPF_S" -v total="$3" -v margin="$STOCK_MARGIN" -v min="$STOCK_MIN" '
    BEGIN {
      for (k = 1; k <= c; k++) { w[k] = (d == "zipf") ? k ^ -s : 1; sum += w[k] }
      for (k = 1; k <= c; k++) printf "%d %d\n", k, int(total * w[k] / sum * margin) + min
    }'
}

# Server-wide counters, "name value" lines.
STATUS_VARS="'Innodb_os_log_fsyncs','Innodb_data_fsyncs','Com_commit','Innodb_log_writes'"
server_status() { sql -e "SHOW GLOBAL STATUS WHERE Variable_name IN ($STATUS_VARS)"; }

# Snapshot for a profile: wall clock, CPU seconds of the service pids and of mariadbd, counters.
profile_mark() { # file
  local pid svc=0
  for pid in "${SERVICE_PIDS[@]}"; do svc=$(awk -v a="$svc" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }'); done
  { echo "wall $(now)"; echo "service_cpu $svc"; echo "mariadbd_cpu $(cpu_seconds "$MARIADB_PID")"; server_status; } >"$1"
}

# The profile between two marks, as JSON: CPU as % of one core, counters per second. fsyncs are
# Innodb_data_fsyncs + Innodb_os_log_fsyncs (MariaDB >= 10.8 has no separate log counter: its
# data figure counts the log's fsyncs too; MySQL 8 counts them apart).
profile_json() { # before, after
  awk '
    FNR == NR { a[$1] = $2; next }
    { b[$1] = $2 }
    END {
      w = b["wall"] - a["wall"]; if (w <= 0) w = 1
      printf "{\"window_s\": %.2f, \"service_cpu_pct\": %.1f, \"mariadbd_cpu_pct\": %.1f, ", w,
        (b["service_cpu"] - a["service_cpu"]) / w * 100, (b["mariadbd_cpu"] - a["mariadbd_cpu"]) / w * 100
      printf "\"fsyncs_per_s\": %.1f, \"log_writes_per_s\": %.1f, \"commits_per_s\": %.1f}\n",
        (b["Innodb_data_fsyncs"] + b["Innodb_os_log_fsyncs"] - a["Innodb_data_fsyncs"] - a["Innodb_os_log_fsyncs"]) / w,
        (b["Innodb_log_writes"] - a["Innodb_log_writes"]) / w, (b["Com_commit"] - a["Com_commit"]) / w
    }' "$1" "$2"
}

# --- floors -------------------------------------------------------------------------------------
# A fresh floor database: the shared schema, `want` = codes per campaign, loaded interleaved.
floor_load() { # campaigns, distribution, total claims
  local max values
  rsql -e "DROP DATABASE IF EXISTS \`$FLOOR_DB\`"
  sed "s/limitbench/$FLOOR_DB/g" "$FLOOR_DIR/schema.sql" | rsql
  stock_counts "$1" "$2" "$3" >"$WORK/want.txt"
  max=$(awk '$2 > m { m = $2 } END { print m }' "$WORK/want.txt")
  values=$(awk '{ printf "%s(%d,%d)", (NR > 1 ? "," : ""), $1, $2 }' "$WORK/want.txt")
  rsql "$FLOOR_DB" -e "
    CREATE TABLE want (k BIGINT UNSIGNED PRIMARY KEY, n INT UNSIGNED NOT NULL);
    INSERT INTO want VALUES $values;
    INSERT INTO codes (campaign_id, code)
      SELECT w.k, CONCAT('GC-', LPAD(w.k, 5, '0'), '-', LPAD(s.seq, 10, '0'))
      FROM want w JOIN seq_1_to_$max s ON s.seq <= w.n ORDER BY s.seq, w.k;
    INSERT IGNORE INTO day_counters SELECT k, '2026-11-22', 0 FROM want;
    ANALYZE TABLE codes;" >/dev/null
}

: >"$WORK/floors.jsonl"
run_floor() { # name, connections
  local name=$1 conns=$2 script batch campaigns dist ceiling lua checkpoint t_before t_after
  read -r script batch campaigns dist <<<"${FLOOR_SPEC[$name]}"
  case $name in claim-b1) ceiling=$FLOOR_CEILING_B1 ;; claim-b64) ceiling=$FLOOR_CEILING_B64 ;; *) ceiling=$FLOOR_CEILING_MULTI ;; esac
  log "floor $name: $script BATCH=$batch C=$campaigns $dist, $conns connection(s), ${FLOOR_WARMUP_SECONDS}+$FLOOR_SECONDS s"
  floor_load "$campaigns" "$dist" $(( ceiling * (FLOOR_SECONDS + FLOOR_WARMUP_SECONDS + 1) ))
  lua="$FLOOR_DIR/$script"
  [ "$dist" = zipf ] && lua="$ROOT/bench/floor/multi-zipf.lua"
  checkpoint=()
  [ "$FLOOR_WARMUP_SECONDS" -gt 0 ] && checkpoint=(--report-checkpoints="$FLOOR_WARMUP_SECONDS")
  SERVICE_PIDS=()
  (sleep "$FLOOR_WARMUP_SECONDS"; profile_mark "$WORK/floor-before.txt") &
  local marker=$!
  if ! BATCH=$batch COUNTER=1 UNION=1 C=$campaigns ZIPF=$ZIPF_S MULTI_LUA="$FLOOR_DIR/multi.lua" \
      sysbench --db-driver=mysql --mysql-user=root --mysql-socket="$MYSQL_SOCKET" \
      --mysql-db="$FLOOR_DB" --threads="$conns" --time=$(( FLOOR_WARMUP_SECONDS + FLOOR_SECONDS )) \
      "${checkpoint[@]}" --percentile=99 "$lua" run >"$WORK/sysbench.txt" 2>&1; then
    tail -n 20 "$WORK/sysbench.txt" >&2
    log "floor $name at $conns connection(s): sysbench failed"
    wait "$marker" || true
    PHASE_FAILED=1
    return 0
  fi
  wait "$marker" || true
  profile_mark "$WORK/floor-after.txt"
  # The last report is the measured one (the checkpoint reset the counters).
  awk '
    /transactions:/ { tx = $2; rate = $3; gsub(/\(/, "", rate) }
    /ignored errors:/ { ign = $3 }
    /99th percentile:/ { p99 = $3 }
    /avg:/ && !/\// { avg = $2 }
    END { printf "%s %s %s %s %s\n", tx + 0, rate + 0, p99 + 0, avg + 0, ign + 0 }' "$WORK/sysbench.txt" >"$WORK/sb.txt"
  local tx rate p99 avg ignored dry issued
  read -r tx rate p99 avg ignored <"$WORK/sb.txt"
  dry=$(rsql "$FLOOR_DB" -e "SELECT COUNT(*) FROM want w WHERE NOT EXISTS
    (SELECT 1 FROM codes c WHERE c.campaign_id = w.k AND c.status = 0)")
  issued=$(rsql "$FLOOR_DB" -e "SELECT COUNT(*) FROM codes WHERE status = 1")
  [ "$dry" = 0 ] || log "warning: floor $name drained $dry campaign(s) (raise its FLOOR_CEILING_*)"
  jq -cn --arg floor "$name" --arg script "$script" --argjson batch "$batch" --argjson campaigns "$campaigns" \
    --arg dist "$dist" --argjson conns "$conns" --argjson seconds "$FLOOR_SECONDS" \
    --argjson tx "$tx" --argjson rate "$rate" --argjson p99 "$p99" --argjson avg "$avg" \
    --argjson ignored "$ignored" --argjson dry "$dry" --argjson issued "$issued" \
    --argjson profile "$(profile_json "$WORK/floor-before.txt" "$WORK/floor-after.txt")" \
    '{floor: $floor, script: $script, batch: $batch, campaigns: $campaigns, distribution: $dist,
      connections: $conns, seconds: $seconds, transactions: $tx, tx_per_s: $rate,
      claims_per_s: ($rate * $batch * 10 | round / 10), tx_avg_ms: $avg, tx_p99_ms: $p99,
      ignored_errors: $ignored, drained_campaigns: $dry, issued_rows_incl_warmup: $issued,
      profile: $profile}' >>"$WORK/floors.jsonl"
  rsql -e "DROP DATABASE IF EXISTS \`$FLOOR_DB\`"
}

if [ -n "$FLOORS" ]; then
  DATABASES+=("$FLOOR_DB")
  for f in $FLOORS; do for c in 1 2; do run_floor "$f" "$c"; sleep 1; done; done
fi

# --- service cells ----------------------------------------------------------------------------------
# Issued rows of `campaign` on its `days` days before today (UTC), with their day counters: what
# a campaign that has run for a while carries. Loaded in statements of 1,000,000 rows.
load_history() { # database, campaign id, codes, days
  local db=$1 campaign=$2 n=$3 days=$4 per_day first last stmts=""
  per_day=$(( (n + days - 1) / days ))
  first=1
  while [ "$first" -le "$n" ]; do
    last=$(( first + 999999 )); [ "$last" -gt "$n" ] && last=$n
    stmts+="INSERT INTO codes (campaign_id, batch_id, code, status, issued_to, issued_at, issue_day, claim_id)
      SELECT @c, @b, CONCAT('HIST-', LPAD(seq, 10, '0')), 1, CONCAT('history-', LPAD(seq, 10, '0')),
        TIMESTAMP(d, '12:00:00'), d, UNHEX(CONCAT('ff', LPAD(HEX(seq), 30, '0')))
      FROM (SELECT seq, UTC_DATE() - INTERVAL ($days - (seq - 1) DIV $per_day) DAY AS d
            FROM seq_${first}_to_${last}) h;
"
    first=$(( last + 1 ))
  done
  sql "$db" -e "
    SET @c = UNHEX(REPLACE('$campaign', '-', '')), @b = UNHEX(REPLACE(UUID(), '-', ''));
    INSERT INTO code_batches (id, campaign_id, label, size, created_at)
      VALUES (@b, @c, 'history', $n, UTC_TIMESTAMP() - INTERVAL $days DAY);
    $stmts
    INSERT INTO campaign_day_counters (campaign_id, day, issued)
      SELECT campaign_id, issue_day, COUNT(*) FROM codes WHERE batch_id = @b GROUP BY campaign_id, issue_day;"
}

: >"$WORK/cells.jsonl"
run_cell() { # name
  local cell=$1 instances campaigns dist history rate db url total i port bases=() k n t0 writers
  read -r instances campaigns dist history rate <<<"${CELL_SPEC[$cell]}"
  writers=${GIFTCODES_CLAIM_WRITERS:-$(( DB_CORES / instances > 1 ? DB_CORES / instances : 1 ))}
  log "cell $cell: $instances instance(s) of $writers claim writer(s) and $WORKER_THREADS worker thread(s), $campaigns campaign(s) $dist, history $history, $(
    [ "$rate" = 0 ] && echo saturation || echo "$rate/s open loop"), ${WARMUP_SECONDS}+$CELL_SECONDS s"
  db="giftcodes_spread_${RUN_ID}_${cell//-/_}"
  url="mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$db"
  DATABASES+=("$db")
  create_migrated_database "$db" "$url"
  SERVICE_PIDS=()
  for i in $(seq "$instances"); do
    port=$(free_port)
    GIFTCODES_CLAIM_WRITERS=$writers GIFTCODES_WORKER_THREADS=$WORKER_THREADS start_giftcodes "$port" "$url" "$WORK/service.log"
    bases+=("http://127.0.0.1:$port")
  done
  BASE=${bases[0]}

  # Campaigns (rank k = line k of campaigns.txt), history, then the codes of the run; created
  # and loaded LOAD_JOBS at a time.
  t0=$(now)
  rm -rf "$WORK/campaign"; mkdir "$WORK/campaign"
  new_campaign() { create_campaign "spread $cell $1" "$DAILY_LIMIT" >"$WORK/campaign/$1.tmp" && mv "$WORK/campaign/$1.tmp" "$WORK/campaign/$1"; }
  seq "$campaigns" >"$WORK/ranks.txt"
  run_parallel "$LOAD_JOBS" "$WORK/ranks.txt" new_campaign
  for k in $(seq "$campaigns"); do
    [ -s "$WORK/campaign/$k" ] || die "cell $cell: campaign $k was not created"
    cat "$WORK/campaign/$k"
  done >"$WORK/campaigns.txt"
  local history_s=0
  if [ "$history" -gt 0 ]; then
    log "cell $cell: loading $history issued codes of history over $HISTORY_DAYS days (SQL)"
    local h0; h0=$(now)
    load_history "$db" "$(head -n 1 "$WORK/campaigns.txt")" "$history" "$HISTORY_DAYS"
    history_s=$(awk -v a="$(now)" -v b="$h0" 'BEGIN { printf "%.1f", a - b }')
  fi
  if [ "$rate" = 0 ]; then
    total=$(( SATURATION_CEILING * (CELL_SECONDS + WARMUP_SECONDS + 1) ))
  else
    total=$(( rate * (CELL_SECONDS + WARMUP_SECONDS + 6) ))
  fi
  stock_counts "$campaigns" "$dist" "$total" >"$WORK/stock.txt"
  local stock; stock=$(awk '{ s += $2 } END { print s }' "$WORK/stock.txt")
  log "cell $cell: uploading $stock codes over $campaigns campaign(s)"
  stock_up() { load_codes "$1" "C$2" "$3" && touch "$WORK/campaign/$2.loaded"; }
  paste -d ' ' "$WORK/campaigns.txt" "$WORK/stock.txt" >"$WORK/uploads.txt"
  run_parallel "$LOAD_JOBS" "$WORK/uploads.txt" stock_up
  for k in $(seq "$campaigns"); do
    [ -e "$WORK/campaign/$k.loaded" ] || die "cell $cell: the codes of campaign $k were not loaded"
  done
  sql "$db" -e "ANALYZE TABLE codes" >/dev/null
  local load_s; load_s=$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')

  # The load, with the profile of its measured window.
  local base_args=() b
  for b in "${bases[@]}"; do base_args+=(--base "$b"); done
  LOADGEN_TOKEN="$CLIENT_TOKEN" "$LOADGEN_BIN" "${base_args[@]}" --campaigns-file "$WORK/campaigns.txt" \
    --distribution "$dist" --zipf-s "$ZIPF_S" --rate "$rate" --connections "$CONNECTIONS" \
    --seconds "$CELL_SECONDS" --warmup-seconds "$WARMUP_SECONDS" --threads "$LOADGEN_THREADS" \
    --run "$RUN_ID-$cell" >"$WORK/cell.json" 2>"$WORK/cell-err.txt" &
  LOADGEN_PID=$!
  sleep "$WARMUP_SECONDS"; sleep 0.05
  profile_mark "$WORK/cell-before.txt"
  local lg_ok=1
  wait "$LOADGEN_PID" || lg_ok=0
  LOADGEN_PID=""
  profile_mark "$WORK/cell-after.txt"
  for i in "${!SERVICE_PIDS[@]}"; do
    kill -0 "${SERVICE_PIDS[$i]}" 2>/dev/null || { log "cell $cell: instance $((i + 1)) died"; lg_ok=0; }
  done
  stop_giftcodes_all
  if [ "$lg_ok" = 0 ] || ! jq -e . "$WORK/cell.json" >/dev/null 2>&1; then
    cat "$WORK/cell-err.txt" >&2
    log "cell $cell: the load generator or a service failed"
    PHASE_FAILED=1
    return 0
  fi
  [ "$(jq .created "$WORK/cell.json")" != 0 ] || { log "cell $cell: no successful claim"; PHASE_FAILED=1; }

  # Checks.
  log "cell $cell: checking the database"
  CHECKS_FILE="$WORK/checks-$cell.jsonl"
  : >"$CHECKS_FILE"
  claim_data_checks "$db"
  sql "$db" -e "SELECT LOWER(HEX(campaign_id)), COUNT(*) FROM codes
    WHERE status = 1 AND code NOT LIKE 'HIST-%' GROUP BY campaign_id" >"$WORK/issued.tsv"
  local short
  short=$(jq -r --rawfile issued "$WORK/issued.tsv" '
    ($issued | split("\n") | map(select(length > 0) | split("\t") | {key: .[0], value: (.[1] | tonumber)}) | from_entries) as $rows
    | [.created_all_by_campaign | to_entries[] | select(($rows[.key | gsub("-"; "")] // 0) < .value)] | length' "$WORK/cell.json")
  local rows_run; rows_run=$(awk -F'\t' '{ s += $2 } END { print s + 0 }' "$WORK/issued.tsv")
  check_json "every 201 is an issued row" "$(is_zero "$short")" \
    "$short campaigns with fewer issued rows than 201 answers ($rows_run rows, $(jq .created_all "$WORK/cell.json") answers 201)"
  sql -e "DROP DATABASE IF EXISTS \`$db\`"

  jq -c --arg cell "$cell" --argjson instances "$instances" --argjson writers "$writers" \
    --argjson history "$history" \
    --argjson stock "$stock" --argjson load_s "$load_s" --argjson history_s "$history_s" \
    --argjson profile "$(profile_json "$WORK/cell-before.txt" "$WORK/cell-after.txt")" \
    --slurpfile checks "$CHECKS_FILE" \
    'del(.created_all_by_campaign) + {cell: $cell, instances: $instances, writers: $writers, history: $history,
      stock: $stock, load_s: $load_s, history_load_s: $history_s, profile: $profile, checks: $checks}' \
    "$WORK/cell.json" >>"$WORK/cells.jsonl"
  sleep 1
}

for cell in $CELLS; do run_cell "$cell"; done

# --- result ---------------------------------------------------------------------------------------
COMMIT=$(result_commit)
DIRTY=$(result_dirty)
STAMP=$(date -u +%Y%m%d-%H%M%S)
DATE_ISO=$(date -u +%Y-%m-%dT%H:%M:%SZ)
MARIADB_VERSION=$(sql -e "SELECT VERSION()")
SERVICE_LOG_WARNINGS=$(grep -cE ' (WARN|ERROR) |"level":"(WARN|ERROR)"' "$WORK/service.log" 2>/dev/null || true)
grep -E ' (WARN|ERROR) |"level":"(WARN|ERROR)"' "$WORK/service.log" 2>/dev/null | head -n 5 >"$WORK/warnings.txt" || true
mkdir -p "$ROOT/bench/results"
STEM="$ROOT/bench/results/$STAMP-$COMMIT-spread"
RESULT="$STEM.json"
jq -n \
  --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg date "$DATE_ISO" \
  --arg mariadb "$MARIADB_VERSION" --argjson cpus "$(nproc)" --arg kernel "$(uname -r)" \
  --argjson service_env "$(service_env_json)" --arg cells_setting "$CELLS" \
  --argjson cell_seconds "$CELL_SECONDS" --argjson warmup_seconds "$WARMUP_SECONDS" \
  --argjson floor_seconds "$FLOOR_SECONDS" --argjson floor_warmup_seconds "$FLOOR_WARMUP_SECONDS" \
  --argjson connections "$CONNECTIONS" --argjson db_cores "$DB_CORES" --argjson worker_threads "$WORKER_THREADS" --argjson history "$HISTORY" --argjson history_days "$HISTORY_DAYS" \
  --argjson low_rate "$LOW_RATE" --argjson zipf_s "$ZIPF_S" --argjson daily_limit "$DAILY_LIMIT" \
  --argjson saturation_ceiling "$SATURATION_CEILING" --arg expected "$EXPECTED_REFUSALS" \
  --argjson loadgen_threads "$LOADGEN_THREADS" \
  --argjson warnings "$SERVICE_LOG_WARNINGS" --rawfile warning_lines "$WORK/warnings.txt" \
  --slurpfile floors "$WORK/floors.jsonl" --slurpfile cells "$WORK/cells.jsonl" \
  --argjson t_p99 "$TARGET_P99_MS" --argjson t_low "$TARGET_LOW_P50_MS" \
  '
  def r2: (. * 100 | round) / 100;
  def best($f): [$floors[] | select(.floor == $f)] | max_by(.claims_per_s);
  def cell($c): [$cells[] | select(.cell == $c)] | first;
  ($expected | split(",") | map(gsub("^ +| +$"; "")) | map(select(length > 0))) as $exp
  | def unexpected: [.errors | to_entries[] | select(.key as $k | $exp | index($k) | not) | .value] | add // 0;
  def ratio_crit($name; $ref_name; $ref; $min):
    { criterion: $name, reference: $ref_name, reference_claims_per_s: ($ref // null),
      ratio: (if $ref and $ref > 0 then (.claims_per_s / $ref | r2) else null end), target: ">= \($min)",
      met: (if $ref and $ref > 0 then (.claims_per_s / $ref >= $min) else null end) };
  def floor_crit($name; $f; $min): best($f) as $b
    | ratio_crit($name; "\($f) (\($b.connections // "-") conn)"; $b.claims_per_s; $min);
  [ $cells[] | . as $c
    | ( (if .cell == "1x1" then floor_crit(">= 0.7 x single-campaign floor"; "claim-b64"; 0.7),
                                floor_crit(">= 5 x one-claim floor"; "claim-b1"; 5)
         elif .cell == "1x200" then floor_crit(">= 0.8 x spread floor"; "multi-200"; 0.8)
         elif .cell == "1x1000z" then floor_crit(">= 0.8 x spread floor (Zipf)"; "multi-1000z"; 0.8)
         elif .cell == "3x200" then floor_crit(">= 0.7 x spread floor"; "multi-200"; 0.7)
         elif .cell == "1x1-history" then ratio_crit(">= 0.9 x 1x1 on a fresh table"; "1x1 (this run)"; (cell("1x1").claims_per_s); 0.9)
         elif .cell == "low" then {criterion: "p50 <= \($t_low) ms", reference: null, reference_claims_per_s: null,
                                   ratio: null, target: "<= \($t_low) ms", met: (.p50_ms <= $t_low)}
         else empty end),
        {criterion: "p99 <= \($t_p99) ms", reference: null, reference_claims_per_s: null, ratio: null,
         target: "<= \($t_p99) ms", met: (.p99_ms <= $t_p99)},
        {criterion: "no unexpected errors", reference: null, reference_claims_per_s: null, ratio: null,
         target: "0", met: (unexpected == 0)},
        {criterion: "post-run checks", reference: null, reference_claims_per_s: null, ratio: null,
         target: "all pass", met: (.checks | all(.pass))},
        {criterion: ">= 30 s measured, 64 connections", reference: null, reference_claims_per_s: null, ratio: null,
         target: "30 s, 64", met: (.seconds >= 30 and .connections == 64)} )
      | {cell: $c.cell} + . ] as $criteria
  | {
      commit: $commit, dirty: $dirty, date: $date,
      host: {cpus: $cpus, kernel: $kernel, mariadb: $mariadb,
             note: "shared 2-core machine; other work may run meanwhile; mariadbd CPU and fsyncs are server-wide"},
      settings: {cells: $cells_setting, cell_seconds: $cell_seconds, warmup_seconds: $warmup_seconds,
                 floor_seconds: $floor_seconds, floor_warmup_seconds: $floor_warmup_seconds,
                 connections: $connections, db_cores: $db_cores, worker_threads: $worker_threads, history: $history, history_days: $history_days,
                 low_rate: $low_rate, zipf_s: $zipf_s, daily_limit: $daily_limit,
                 saturation_ceiling: $saturation_ceiling, expected_refusals: $exp,
                 loadgen_threads: $loadgen_threads, service_env: $service_env},
      floors: $floors,
      best_floors: ([$floors[] | .floor] | unique | map(. as $f | {key: $f, value: (best($f) | {connections, claims_per_s})}) | from_entries),
      cells: [$cells[] | . + {unexpected_errors: unexpected}],
      criteria: $criteria,
      targets_met: ($criteria | map(select(.met != null)) | all(.met)),
      service_log_warnings: $warnings,
      service_log_warning_lines: ($warning_lines | split("\n") | map(select(length > 0))),
      checks_pass: ([$cells[].checks[].pass] | all)
    }' >"$RESULT"

# --- the tables -------------------------------------------------------------------------------------
printf '\nspread benchmark, commit %s%s, %s (MariaDB %s, %s cores)\n' \
  "$COMMIT" "$([ "$DIRTY" = true ] && echo ' (dirty)')" "$DATE_ISO" "$MARIADB_VERSION" "$(nproc)"
if [ -s "$WORK/floors.jsonl" ]; then
  printf '\nfloors: the minimal claim transaction of %s with sysbench, no HTTP (%s s each after %s s warm-up)\n' \
    "${FLOOR_DIR}" "$FLOOR_SECONDS" "$FLOOR_WARMUP_SECONDS"
  printf '%-12s %-30s %6s %9s %10s %10s %9s %8s %9s %8s\n' floor transaction conns tx/s claims/s "tx p99 ms" "db CPU%" fsync/s "retried" drained
  jq -r '.floors[] | [.floor, "\(.script) b\(.batch) C=\(.campaigns) \(.distribution)", .connections, .tx_per_s,
      .claims_per_s, .tx_p99_ms, .profile.mariadbd_cpu_pct, .profile.fsyncs_per_s, .ignored_errors, .drained_campaigns] | @tsv' "$RESULT" |
  while IFS=$'\t' read -r f t c tx cl p99 db fs ig dr; do
    printf '%-12s %-30s %6s %9.0f %10.0f %10s %9s %8.0f %9s %8s\n' "$f" "$t" "$c" "$tx" "$cl" "$p99" "$db" "$fs" "$ig" "$dr"
  done
  printf '(best of 1 and 2 connections is the floor a cell is held to; "retried": events sysbench restarted after a deadlock)\n'
fi
printf '\ncells: the service, %s connections split across the instances, every request a new user (%s s after %s s warm-up)\n' \
  "$CONNECTIONS" "$CELL_SECONDS" "$WARMUP_SECONDS"
printf '%-12s %9s %7s %7s %7s  %-34s %-24s %8s %9s %-9s\n' cell claims/s "p50 ms" "p99 ms" errors criterion reference ref/s ratio target
jq -r '. as $r | .criteria[] | . as $k | ($r.cells[] | select(.cell == $k.cell)) as $c
  | [$k.cell, $c.claims_per_s, $c.p50_ms, $c.p99_ms, $c.unexpected_errors, $k.criterion, ($k.reference // "-"),
     ($k.reference_claims_per_s // "-"), ($k.ratio // "-"), $k.target,
     (if $k.met == null then "n/a" elif $k.met then "PASS" else "FAIL" end)] | @tsv' "$RESULT" |
while IFS=$'\t' read -r cell rate p50 p99 errors crit ref refr ratio target met; do
  if [ "$cell" = "${last_cell:-}" ]; then
    printf '%-12s %9s %7s %7s %7s  ' "" "" "" "" ""
  else
    printf '%-12s %9.0f %7s %7s %7s  ' "$cell" "$rate" "$p50" "$p99" "$errors"
  fi
  last_cell=$cell
  [ "$refr" = "-" ] || refr=$(printf '%.0f' "$refr")
  printf '%-34s %-24s %8s %9s %-9s %s\n' "$crit" "$ref" "$refr" "$ratio" "$target" "$met"
done
printf '\nprofile of each measured window (CPU %% of one core; fsyncs and commits server-wide)\n'
printf '%-12s %9s %10s %10s %11s %12s %10s %12s  %s\n' cell claims/s "svc CPU%" "db CPU%" "lg CPU%" "fsync/s" "commit/s" "claims/fsync" "errors (all)"
jq -r '.cells[] | [.cell, .claims_per_s, .profile.service_cpu_pct, .profile.mariadbd_cpu_pct,
    ((.loadgen_cpu_s / (.window_seconds + '"$WARMUP_SECONDS"') * 1000 | round) / 10),
    .profile.fsyncs_per_s, .profile.commits_per_s,
    (if .profile.fsyncs_per_s > 0 then (.claims_per_s / .profile.fsyncs_per_s * 10 | round / 10) else "-" end),
    (.errors | to_entries | map("\(.key): \(.value)") | join(", ") | if . == "" then "-" else . end)] | @tsv' "$RESULT" |
while IFS=$'\t' read -r cell rate svc db lg fs cm per errors; do
  printf '%-12s %9.0f %10s %10s %11s %12.0f %10.0f %12s  %s\n' "$cell" "$rate" "$svc" "$db" "$lg" "$fs" "$cm" "$per" "$errors"
done
jq -r --argjson cores "$(nproc)" '.cells[] | select(.cell == "1x200") | .profile as $p
  | "1x200 at saturation: service \($p.service_cpu_pct)% + mariadbd \($p.mariadbd_cpu_pct)% CPU of the \($cores * 100)% there is, \($p.fsyncs_per_s) fsyncs/s, \($p.commits_per_s) COMMITs/s (\(.claims_per_s) claims/s)"' "$RESULT"
printf '\nchecks after each cell\n'
jq -r '.cells[] | .cell as $c | .checks[] | [$c, (if .pass then "PASS" else "FAIL" end), .name, .detail] | @tsv' "$RESULT" |
while IFS=$'\t' read -r cell verdict name detail; do
  printf '  %-12s %-4s  %-46s %s\n' "$cell" "$verdict" "$name" "$detail"
done
if [ "$SERVICE_LOG_WARNINGS" != 0 ]; then
  printf '\nservice log: %s warning/error lines, first ones:\n' "$SERVICE_LOG_WARNINGS"
  sed 's/^/  /' "$WORK/warnings.txt"
fi
printf '\ntargets met: %s\n' "$(jq -r 'if .targets_met then "all" else "NOT all (see FAIL rows)" end' "$RESULT")"

if python3 "$ROOT/bench/plot_spread.py" "$RESULT" "$STEM.png"; then
  cp "$STEM.png" "$ROOT/bench/results/latest-spread.png"
  printf 'plot:   %s (and bench/results/latest-spread.png)\n' "${STEM#"$ROOT"/}.png"
else
  log "warning: the plot could not be drawn"
fi
printf 'result: %s\n' "${RESULT#"$ROOT"/}"

[ "$PHASE_FAILED" = 0 ] || die "a phase failed"
[ "$(jq .checks_pass "$RESULT")" = true ] || die "a check failed"

#!/usr/bin/env bash
# Benchmark: what the parts of a claim transaction cost the database, in mariadbd CPU a claim,
# with no HTTP and no service — the service's transaction against the floor's, on the
# service's own schema (issue 8's "what limits the rest").
#
# What it does
#   1. builds the release binaries (for `giftcodes migrate`), ensures sysbench (apt-get) and the
#      MariaDB login (scripts/mariadb-test-login.sh);
#   2. makes one throw-away database giftcodes_shapes_<random> with `giftcodes migrate`, and
#      loads CAMPAIGNS campaigns (id UNHEX(MD5(k))) of STOCK codes each, interleaved, with their
#      counter rows for today;
#   3. runs each SHAPES transaction of bench/floor/service-shape.lua (its header says what each
#      one is) with sysbench, one connection, BATCH claims over the campaigns uniformly,
#      SECONDS at a time, the shapes taking turns ROUNDS times on the same data (so the
#      machine's drift and the table's growth fall on all of them alike), and reads mariadbd's
#      CPU seconds around each turn from /proc;
#   4. prints per shape the mean mariadbd CPU a claim (µs) and claims/s, and each shape's cost
#      over the cheapest, and writes bench/results/<UTC YYYYmmdd-HHMMSS>-<git short hash>-shapes.json.
#
# How to run (from anywhere; needs the local MariaDB answering as root on its socket):
#   bash bench/shapes.sh                      # ~3 min
# Knobs: SHAPES="service service-padded-picks service-no-counter-lock service-late-counter floor
#        floor-two-transactions" (any of the lua's) ROUNDS=5 SECONDS_PER_TURN=3
#        BATCH=26 (a round's claims at 1 x 200 with two writers) CAMPAIGNS=200 STOCK=9000
#        MYSQL_SOCKET=/run/mysqld/mysqld.sock BENCH_SKIP_BUILD=1
# The database is dropped on exit. Compare shapes within one run only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHAPES=${SHAPES:-"service service-padded-picks service-no-counter-lock service-late-counter floor floor-two-transactions"}
ROUNDS=${ROUNDS:-5}
SECONDS_PER_TURN=${SECONDS_PER_TURN:-3}
BATCH=${BATCH:-26}
CAMPAIGNS=${CAMPAIGNS:-200}
STOCK=${STOCK:-9000}
MYSQL_SOCKET=${MYSQL_SOCKET:-/run/mysqld/mysqld.sock}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/giftcodes"
LUA="$ROOT/bench/floor/service-shape.lua"

log() { printf '[shapes] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for n in "$ROUNDS" "$SECONDS_PER_TURN" "$BATCH" "$CAMPAIGNS" "$STOCK"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "knobs must be positive whole numbers, got '$n'"
done
SHAPE_COUNT=$(wc -w <<<"$SHAPES")
# At up to 15,000 claims/s a turn, the stock should outlast every turn with a fifth to spare.
[ "$(( ROUNDS * SHAPE_COUNT * SECONDS_PER_TURN * 15000 ))" -lt "$(( CAMPAIGNS * STOCK * 8 / 10 ))" ] \
  || log "warning: the stock may run low for this many turns (raise STOCK)"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-bench-shapes.XXXXXX")
DB="giftcodes_shapes_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
rsql() { mariadb -uroot --socket="$MYSQL_SOCKET" --batch --skip-column-names "$@"; }
cleanup() {
  local status=$?
  set +e
  rsql -e "DROP DATABASE IF EXISTS \`$DB\`"
  finish_cleanup "$status"
}
set_cleanup_traps

build_release "$BIN"
if ! command -v sysbench >/dev/null; then
  log "installing sysbench (apt-get, Debian's package)"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q sysbench >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q sysbench >&2; }; } \
    || die "could not install sysbench (apt-get install sysbench, as root)"
fi
bash "$ROOT/scripts/mariadb-test-login.sh"
rsql -e "SELECT 1" >/dev/null || die "MariaDB does not answer as root on $MYSQL_SOCKET (set MYSQL_SOCKET)"
MARIADB_PID=$(pgrep -xo mariadbd || pgrep -xo mysqld || true)
[ -n "$MARIADB_PID" ] || die "no mariadbd process on this machine to read CPU from"
DAY=$(rsql -e "SELECT UTC_DATE()")

log "loading $CAMPAIGNS campaigns x $STOCK codes into $DB"
create_migrated_database "$DB" "mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$DB"
rsql "$DB" -e "
  INSERT INTO campaigns SELECT UNHEX(MD5(seq)), CONCAT('shape ', seq), NULL, 'UTC', NULL, NULL, 1,
    UTC_TIMESTAMP(), UTC_TIMESTAMP() FROM seq_1_to_$CAMPAIGNS;
  INSERT INTO code_batches (id, campaign_id, label, size, created_at)
    SELECT UNHEX(MD5(CONCAT('batch ', seq))), UNHEX(MD5(seq)), NULL, $STOCK, UTC_TIMESTAMP()
    FROM seq_1_to_$CAMPAIGNS;
  INSERT INTO codes (campaign_id, batch_id, code)
    SELECT UNHEX(MD5(k.seq)), UNHEX(MD5(CONCAT('batch ', k.seq))), CONCAT('S-', k.seq, '-', s.seq)
    FROM seq_1_to_$CAMPAIGNS k JOIN seq_1_to_$STOCK s ORDER BY s.seq, k.seq;
  INSERT INTO campaign_day_counters SELECT UNHEX(MD5(seq)), '$DAY', 0 FROM seq_1_to_$CAMPAIGNS;
  ANALYZE TABLE codes;" >/dev/null

: >"$WORK/turns.txt"
for round in $(seq "$ROUNDS"); do
  for shape in $SHAPES; do
    before=$(cpu_seconds "$MARIADB_PID")
    SHAPE=$shape BATCH=$BATCH C=$CAMPAIGNS DAY=$DAY sysbench --db-driver=mysql --mysql-user=root \
      --mysql-socket="$MYSQL_SOCKET" --mysql-db="$DB" --threads=1 --time="$SECONDS_PER_TURN" \
      "$LUA" run >"$WORK/sysbench.txt" 2>&1 || { tail -n 20 "$WORK/sysbench.txt" >&2; die "shape $shape failed"; }
    after=$(cpu_seconds "$MARIADB_PID")
    tx=$(awk '/transactions:/ { print $2 }' "$WORK/sysbench.txt")
    [ "${tx:-0}" -gt 0 ] || die "shape $shape ran no transaction"
    echo "$round $shape $tx $before $after" >>"$WORK/turns.txt"
    log "round $round $shape: $tx transactions"
  done
done

awk -v batch="$BATCH" -v secs="$SECONDS_PER_TURN" '
  { claims[$2] += $3 * batch; cpu[$2] += $5 - $4; turns[$2]++; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  END {
    for (i = 1; i <= n; i++) { s = order[i]; us[s] = cpu[s] / claims[s] * 1e6; if (min == "" || us[s] < min) min = us[s] }
    printf "\n%-26s %14s %12s %10s\n", "shape", "mariadbd us/claim", "claims/s", "over min"
    for (i = 1; i <= n; i++) { s = order[i]
      printf "%-26s %14.1f %12.0f %9.0f%%\n", s, us[s], claims[s] / (turns[s] * secs), (us[s] / min - 1) * 100 }
  }' "$WORK/turns.txt"

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT="$ROOT/bench/results/$STAMP-$(result_commit)-shapes.json"
awk -v batch="$BATCH" '{ printf "{\"round\": %d, \"shape\": \"%s\", \"transactions\": %d, \"claims\": %d, \"mariadbd_cpu_s\": %.2f}\n", $1, $2, $3, $3 * batch, $5 - $4 }' \
  "$WORK/turns.txt" | jq -s --arg commit "$(result_commit)" --arg at "$STAMP" \
  --argjson batch "$BATCH" --argjson campaigns "$CAMPAIGNS" --argjson seconds "$SECONDS_PER_TURN" \
  '{commit: $commit, at_utc: $at, batch: $batch, campaigns: $campaigns, seconds_per_turn: $seconds,
    turns: .,
    shapes: (group_by(.shape) | map({shape: .[0].shape, claims: (map(.claims) | add),
      mariadbd_us_per_claim: ((map(.mariadbd_cpu_s) | add) / (map(.claims) | add) * 1e6)}))}' >"$OUT"
log "wrote $OUT"

#!/usr/bin/env bash
# db-down.sh — proves the "database down" acceptance criterion of the claim endpoint:
#   with a private MariaDB stopped, POST /v1/campaigns/{id}/claims answers 503 `unavailable`
#   (with Retry-After) within GIFTCODES_DB_TIMEOUT_MS + slack, /readyz answers 503 and the
#   service does not panic; once that MariaDB is started again, claims succeed (201) without
#   restarting the service.
#
# Run from anywhere:   bash scripts/db-down.sh
# Needs: mariadb-server (mariadb-install-db, /usr/sbin/mariadbd, mariadb client), curl, jq.
# It starts its OWN MariaDB (fresh datadir under ${TMPDIR:-/tmp}, own port and socket); the
# shared server on 3306 / /run/mysqld/mysqld.sock is never touched. Builds
# target/release/giftcodes if missing (REBUILD=1 forces `cargo build --release --locked`).
# A burst of BURST parallel claims while down must also get 503 `unavailable`, within
# GIFTCODES_DB_TIMEOUT_MS + slack too (claims that queue behind a batch that found the database
# unreachable are refused at once, so none waits for the timeout twice).
# Knobs (env): DB_TIMEOUT_MS (1000), CLAIM_TIMEOUT_MS (5000), SLACK_MS (1000), DOWN_CLAIMS (5),
# BURST (10), RECOVERY_LIMIT_S (10), STOP_SIGNAL (TERM: clean shutdown, or KILL: crash),
# DB_PORT (first free from 13307), APP_PORT (first free from 18091). Other GIFTCODES_* variables
# in the environment (e.g. GIFTCODES_CLAIM_WRITERS) reach the service unchanged.
# Exits 0 and prints PASS when every check holds; otherwise prints FAIL, the failed checks and
# the tails of both logs, and exits 1. Everything it started is stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DB_TIMEOUT_MS=${DB_TIMEOUT_MS:-1000}
SLACK_MS=${SLACK_MS:-1000}
DOWN_CLAIMS=${DOWN_CLAIMS:-5}
RECOVERY_LIMIT_S=${RECOVERY_LIMIT_S:-10}
STOP_SIGNAL=${STOP_SIGNAL:-TERM}
CLAIM_TIMEOUT_MS=${CLAIM_TIMEOUT_MS:-5000}
BURST=${BURST:-10}
BUDGET_MS=$((DB_TIMEOUT_MS + SLACK_MS))
BIN=target/release/giftcodes
ADMIN=dbdown-admin-token-0123456789
CLIENT=dbdown-client-token-0123456789

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while port_busy "$p"; do p=$((p + 1)); done; echo "$p"; }
now_ms() { date +%s%3N; }
log() { printf '[db-down] %s\n' "$*"; }
die() { log "ERROR: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-dbdown.XXXXXX")
SOCK=$WORK/mariadb.sock
DB_PORT=${DB_PORT:-$(free_port 13307)}
APP_PORT=${APP_PORT:-$(free_port 18091)}
BASE=http://127.0.0.1:$APP_PORT
DB_PID='' APP_PID='' FAILS=() REPORT=()

cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    log "--- tail of service log ---"; tail -n 25 "$WORK/service.log" 2>/dev/null || true
    log "--- tail of mariadbd log ---"; tail -n 10 "$WORK/mariadbd.err" 2>/dev/null || true
  fi
  for pid in "$APP_PID" "$DB_PID"; do
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sql() { mariadb --no-defaults -uroot --socket="$SOCK" "$@"; }

start_db() {
  /usr/sbin/mariadbd --no-defaults --datadir="$WORK/data" --port="$DB_PORT" --socket="$SOCK" \
    --bind-address=127.0.0.1 --skip-name-resolve --user=root --pid-file="$WORK/mariadbd.pid" \
    --log-error="$WORK/mariadbd.err" >>"$WORK/mariadbd.out" 2>&1 &
  DB_PID=$!
  for _ in $(seq 150); do
    sql -e 'SELECT 1' >/dev/null 2>&1 && return 0
    kill -0 "$DB_PID" 2>/dev/null || die "mariadbd exited during start (see $WORK/mariadbd.err)"
    sleep 0.2
  done
  die "private MariaDB did not answer within 30 s"
}

stop_db() { kill -"$STOP_SIGNAL" "$DB_PID"; wait "$DB_PID" 2>/dev/null || true; DB_PID=''; }

# call METHOD PATH TOKEN [curl args] -> prints "STATUS SECONDS"; body/headers in $WORK.
call() {
  local method=$1 path=$2 token=$3; shift 3
  curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code} %{time_total}\n' --max-time 30 \
    -X "$method" -H "authorization: Bearer $token" "$@" "$BASE$path" 2>/dev/null || true
}
claim() { call POST "/v1/campaigns/$CAMPAIGN/claims" "$CLIENT" \
  -H 'content-type: application/json' -d "{\"user_id\":\"$1\"}"; }
body_code() { jq -r '.code // empty' "$WORK/body" 2>/dev/null || true; }
retry_after() { tr -d '\r' <"$WORK/headers" | awk -F': *' 'tolower($1)=="retry-after"{print $2}'; }
ms() { awk -v s="$1" 'BEGIN{printf "%d", s * 1000}'; }
check() { if eval "$1"; then REPORT+=("ok    $2"); else REPORT+=("FAIL  $2"); FAILS+=("$2"); fi; }

# --- 0. binary ---------------------------------------------------------------------------
if [ ! -x "$BIN" ] || [ "${REBUILD:-0}" = 1 ]; then
  log "building release binary"; cargo build --release --locked
fi

# --- 1. private MariaDB ------------------------------------------------------------------
log "private MariaDB: datadir $WORK/data, port $DB_PORT, socket $SOCK"
mariadb-install-db --no-defaults --datadir="$WORK/data" --user=root \
  --auth-root-authentication-method=normal --skip-test-db >"$WORK/install.log" 2>&1 \
  || { cat "$WORK/install.log"; die "mariadb-install-db failed"; }
start_db
sql <<'SQL'
CREATE DATABASE giftcodes_dbdown;
CREATE USER 'giftcodes'@'127.0.0.1' IDENTIFIED BY 'giftcodes';
GRANT ALL PRIVILEGES ON giftcodes_dbdown.* TO 'giftcodes'@'127.0.0.1';
SQL

# --- 2. service, campaign, codes, one claim ---------------------------------------------
log "service on $BASE, GIFTCODES_DB_TIMEOUT_MS=$DB_TIMEOUT_MS (budget per request ${BUDGET_MS} ms)"
GIFTCODES_LISTEN=127.0.0.1:$APP_PORT \
DATABASE_URL=mysql://giftcodes:giftcodes@127.0.0.1:$DB_PORT/giftcodes_dbdown \
GIFTCODES_ADMIN_TOKEN=$ADMIN GIFTCODES_CLIENT_TOKENS=$CLIENT \
GIFTCODES_DB_TIMEOUT_MS=$DB_TIMEOUT_MS GIFTCODES_CLAIM_TIMEOUT_MS=$CLAIM_TIMEOUT_MS RUST_LOG=info \
  "$BIN" serve >"$WORK/service.log" 2>&1 &
APP_PID=$!
for _ in $(seq 150); do
  [ "$(call GET /healthz x | cut -d' ' -f1)" = 200 ] && break
  kill -0 "$APP_PID" 2>/dev/null || die "service exited during start"
  sleep 0.2
done
read -r st _ < <(call POST /v1/admin/campaigns "$ADMIN" -H 'content-type: application/json' \
  -d '{"name":"db-down","daily_limit":null}')
[ "$st" = 201 ] || die "create campaign: HTTP $st $(cat "$WORK/body")"
CAMPAIGN=$(jq -r .id "$WORK/body")
read -r st _ < <(seq -f 'DBDOWN-%05g' 1 100 | call POST "/v1/admin/campaigns/$CAMPAIGN/batches" \
  "$ADMIN" -H 'content-type: text/plain' --data-binary @-)
[ "$st" = 201 ] || die "load codes: HTTP $st $(cat "$WORK/body")"
read -r st t < <(claim before-1)
check '[ "$st" = 201 ]' "DB up: claim -> 201 (got $st in $(ms "$t") ms)"

# --- 3. database down ----------------------------------------------------------------------
log "stopping private MariaDB (pid $DB_PID, SIG$STOP_SIGNAL)"
stop_db
for i in $(seq "$DOWN_CLAIMS"); do
  read -r st t < <(claim "down-$i")
  code=$(body_code) ra=$(retry_after) took=$(ms "$t")
  check '[ "$st" = 503 ] && [ "$code" = unavailable ] && [ -n "$ra" ] && [ "$took" -le "$BUDGET_MS" ]' \
    "DB down: claim #$i -> $st code=${code:-?} Retry-After=${ra:-none} in $took ms (<= $BUDGET_MS)"
done
pids=()
for i in $(seq "$BURST"); do
  curl -s -o "$WORK/burst-$i.json" -w '%{http_code} %{time_total}\n' --max-time 30 -X POST \
    -H "authorization: Bearer $CLIENT" -H 'content-type: application/json' \
    -d "{\"user_id\":\"burst-$i\"}" "$BASE/v1/campaigns/$CAMPAIGN/claims" >"$WORK/burst-$i.txt" &
  pids+=($!)
done
wait "${pids[@]}" || true
not503=$(cat "$WORK"/burst-*.txt | awk '$1 != 503' | wc -l)
nocode=$(jq -r .code "$WORK"/burst-*.json 2>/dev/null | grep -vc '^unavailable$' || true)
read -r fastest slowest < <(cat "$WORK"/burst-*.txt | sort -k2 -n | awk 'NR == 1 { f = $2 } { l = $2 }
  END { printf "%d %d\n", f * 1000, l * 1000 }')
check '[ "$not503" -eq 0 ] && [ "$nocode" -eq 0 ] && [ "$slowest" -le $((DB_TIMEOUT_MS + SLACK_MS)) ]' \
  "DB down: burst of $BURST parallel claims -> $((BURST - not503)) x 503 unavailable in $fastest..$slowest ms (<= $((DB_TIMEOUT_MS + SLACK_MS)))"
read -r st t < <(call GET /readyz x)
code=$(body_code) took=$(ms "$t")
check '[ "$st" = 503 ] && [ "$code" = unavailable ] && [ "$took" -le "$BUDGET_MS" ]' \
  "DB down: /readyz -> $st code=${code:-?} in $took ms (<= $BUDGET_MS)"
check 'kill -0 "$APP_PID" 2>/dev/null' "DB down: service process still running"
check '! grep -q panicked "$WORK/service.log"' "DB down: no 'panicked' in service log"

# --- 4. database back --------------------------------------------------------------------
log "starting private MariaDB again (same datadir and port)"
start_db
t0=$(now_ms) attempts=0 st=000
while :; do
  attempts=$((attempts + 1))
  read -r st t < <(claim "after-$attempts")
  [ "$st" = 201 ] && break
  [ $(( $(now_ms) - t0 )) -ge $((RECOVERY_LIMIT_S * 1000)) ] && break
  sleep 0.2
done
recovery=$(( $(now_ms) - t0 ))
check '[ "$st" = 201 ]' \
  "DB back: first claim -> $st, $recovery ms after MariaDB answered again, $attempts attempt(s) (limit ${RECOVERY_LIMIT_S} s)"
for i in 1 2 3; do
  read -r st t < <(claim "after-more-$i")
  check '[ "$st" = 201 ]' "DB back: further claim #$i -> $st in $(ms "$t") ms"
done
read -r st _ < <(call GET /readyz x)
check '[ "$st" = 200 ]' "DB back: /readyz -> $st"
check 'kill -0 "$APP_PID" 2>/dev/null && ! grep -q panicked "$WORK/service.log"' \
  "end: same service process (pid $APP_PID) alive, never panicked"

# --- 5. summary ----------------------------------------------------------------------------
echo
printf '  %s\n' "${REPORT[@]}"
echo
if [ "${#FAILS[@]}" -eq 0 ]; then
  log "PASS (${#REPORT[@]} checks; DB timeout ${DB_TIMEOUT_MS} ms; recovery ${recovery} ms)"
else
  log "FAIL: ${#FAILS[@]} of ${#REPORT[@]} checks failed"; exit 1
fi

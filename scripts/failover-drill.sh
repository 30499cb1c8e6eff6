#!/usr/bin/env bash
# failover-drill.sh — an Aurora-style writer failover under a claim storm, with real parts:
#   two private MariaDB servers (primary -> replica, GTID replication), a TCP forwarder in
#   front of them (socat, as the cluster endpoint), two `giftcodes serve` instances pointing at
#   the forwarder, and a storm of claims (scripts/failover-storm.py). Then the drill: the
#   primary is set read-only (connections already open stay on it, as on Aurora), the replica
#   catches up and is promoted, and the forwarder is switched to it.
#
# Measured and printed: claims answered 500 (must be 0); seconds from the switch until every
# claim succeeds again (target <= RECOVERY_TARGET_S, 5); after the storm, every 201's code is distinct
# and is a row on the new primary issued to that user, and each day counter equals its COUNT.
#
# Run from anywhere:   bash scripts/failover-drill.sh
# Needs: mariadb-server (mariadb-install-db, /usr/sbin/mariadbd, mariadb client), socat,
# python3, curl, jq. Its servers use their own datadirs, ports and sockets under
# ${TMPDIR:-/tmp}; the shared server on 3306 is never touched. Uses target/release/giftcodes
# (built if missing; BIN=... to use another build).
# Knobs (env): STORM_SECONDS_BEFORE (5), STORM_SECONDS_AFTER (10), WORKERS (16),
# RECOVERY_TARGET_S (5), DB_TIMEOUT_MS (1000).
# Exits 0 and prints PASS when every check holds; otherwise FAIL with the failed checks and
# the logs' tails. Everything it started is stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

STORM_SECONDS_BEFORE=${STORM_SECONDS_BEFORE:-5}
STORM_SECONDS_AFTER=${STORM_SECONDS_AFTER:-10}
WORKERS=${WORKERS:-16}
RECOVERY_TARGET_S=${RECOVERY_TARGET_S:-5}
DB_TIMEOUT_MS=${DB_TIMEOUT_MS:-1000}
BIN=${BIN:-target/release/giftcodes}
ADMIN=drill-admin-token-0123456789
CLIENT=drill-client-token-0123456789

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$1; while port_busy "$p"; do p=$((p + 1)); done; echo "$p"; }
log() { printf '[failover-drill] %s\n' "$*"; }
die() { log "ERROR: $*"; exit 1; }
for tool in mariadb-install-db mariadb socat python3 curl jq; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install mariadb-server socat jq curl)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-failover.XXXXXX")
PIDS=()
FAILS=() REPORT=()
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    for f in app1.log app2.log primary.err replica.err; do
      log "--- tail of $f ---"; tail -n 15 "$WORK/$f" 2>/dev/null || true
    done
  fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -f "socat TCP-LISTEN:$FWD_PORT," 2>/dev/null || true
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit "$rc"
}
PRIMARY_PORT=$(free_port 13407)
REPLICA_PORT=$(free_port $((PRIMARY_PORT + 1)))
FWD_PORT=$(free_port $((REPLICA_PORT + 1)))
APP1_PORT=$(free_port 18191)
APP2_PORT=$(free_port $((APP1_PORT + 1)))
trap cleanup EXIT
trap 'exit 130' INT TERM
check() { if eval "$1"; then REPORT+=("ok    $2"); else REPORT+=("FAIL  $2"); FAILS+=("$2"); fi; }

sql() { local name=$1; shift; mariadb --no-defaults -uroot --socket="$WORK/$name.sock" "$@"; }

start_server() { # NAME PORT SERVER_ID [extra mariadbd args]
  local name=$1 port=$2 id=$3; shift 3
  mariadb-install-db --no-defaults --datadir="$WORK/$name" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >"$WORK/$name.install" 2>&1 \
    || { cat "$WORK/$name.install"; die "mariadb-install-db $name failed"; }
  /usr/sbin/mariadbd --no-defaults --datadir="$WORK/$name" --port="$port" \
    --socket="$WORK/$name.sock" --bind-address=127.0.0.1 --skip-name-resolve --user=root \
    --pid-file="$WORK/$name.pid" --log-error="$WORK/$name.err" --server-id="$id" \
    --log-bin="$name-bin" --binlog-format=ROW --gtid-strict-mode=1 "$@" \
    >>"$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 150); do
    sql "$name" -e 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$name did not answer within 30 s"
}

FWD_PID=''
forward_to() { # PORT: (re)starts the forwarder; connections it already carries stay where they are
  # Only the listening parent is replaced: its forked children keep their connections open,
  # as a cluster endpoint's DNS change leaves open sockets on the old writer.
  if [ -n "$FWD_PID" ]; then kill "$FWD_PID"; wait "$FWD_PID" 2>/dev/null || true; fi
  socat "TCP-LISTEN:$FWD_PORT,fork,reuseaddr,bind=127.0.0.1" "TCP:127.0.0.1:$1" \
    >>"$WORK/socat.log" 2>&1 &
  FWD_PID=$!
  PIDS+=("$FWD_PID")
  for _ in $(seq 50); do port_busy "$FWD_PORT" && return 0; sleep 0.05; done
  die "the forwarder did not listen"
}

# --- 0. binary -------------------------------------------------------------------------------
if [ ! -x "$BIN" ]; then log "building $BIN"; cargo build --release --locked --bin giftcodes; fi

# --- 1. primary -> replica, forwarder ------------------------------------------------------
log "primary on $PRIMARY_PORT, replica on $REPLICA_PORT, forwarder on $FWD_PORT"
start_server primary "$PRIMARY_PORT" 1
start_server replica "$REPLICA_PORT" 2 --read-only=1
sql primary -e "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
  GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
sql replica -e "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$PRIMARY_PORT,
  MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos; START SLAVE;"
sql primary -e "CREATE DATABASE giftcodes;
  CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app';
  GRANT ALL PRIVILEGES ON giftcodes.* TO 'app'@'127.0.0.1';"
forward_to "$PRIMARY_PORT"
URL=mysql://app:app@127.0.0.1:$FWD_PORT/giftcodes

# --- 2. two instances, a campaign, codes -----------------------------------------------------
DATABASE_URL=$URL "$BIN" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; die "migrate failed"; }
for n in 1 2; do
  port_var=APP${n}_PORT
  GIFTCODES_LISTEN=127.0.0.1:${!port_var} DATABASE_URL=$URL GIFTCODES_MIGRATE=false \
  GIFTCODES_ADMIN_TOKEN=$ADMIN GIFTCODES_CLIENT_TOKENS=$CLIENT \
  GIFTCODES_DB_TIMEOUT_MS=$DB_TIMEOUT_MS RUST_LOG=warn \
    "$BIN" serve >"$WORK/app$n.log" 2>&1 &
  PIDS+=($!)
done
for port in "$APP1_PORT" "$APP2_PORT"; do
  for _ in $(seq 150); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
done
BASE1=http://127.0.0.1:$APP1_PORT BASE2=http://127.0.0.1:$APP2_PORT
CAMPAIGN=$(curl -fsS -X POST "$BASE1/v1/admin/campaigns" -H "authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' -d '{"name":"failover drill"}' | jq -r .id)
seq -f 'DRILL-%07g' 1 200000 | curl -fsS -o /dev/null -X POST \
  "$BASE1/v1/admin/campaigns/$CAMPAIGN/batches" -H "authorization: Bearer $ADMIN" \
  -H 'content-type: text/plain' --data-binary @- || die "upload failed"
log "campaign $CAMPAIGN with 200,000 codes; storm of $WORKERS workers over both instances"

# --- 3. storm, then the drill -----------------------------------------------------------------
STORM_BASES=$BASE1,$BASE2 STORM_CAMPAIGN=$CAMPAIGN STORM_CLIENT_TOKEN=$CLIENT \
STORM_WORKERS=$WORKERS STORM_STOP_FILE=$WORK/stop STORM_OUT=$WORK/storm.jsonl \
  python3 scripts/failover-storm.py &
STORM_PID=$!
PIDS+=("$STORM_PID")
sleep "$STORM_SECONDS_BEFORE"
drill_start=$(date +%s.%N)
sql primary -e "SET GLOBAL read_only = 1"
log "primary read-only; waiting for the replica to catch up"
pos=$(sql primary -N -e "SELECT @@gtid_binlog_pos")
caught_up=$(sql replica -N -e "SELECT MASTER_GTID_WAIT('$pos', 30)")
[ "$caught_up" = 0 ] || die "the replica did not catch up with $pos"
sql replica -e "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0"
forward_to "$REPLICA_PORT"
switch=$(date +%s.%N)
log "replica promoted and the forwarder switched ($(awk -v a="$drill_start" -v b="$switch" 'BEGIN{printf "%.2f", b-a}') s after read-only)"
sleep "$STORM_SECONDS_AFTER"
touch "$WORK/stop"
wait "$STORM_PID" || true

# --- 4. what the clients saw, and what the new primary holds -----------------------------------
sql replica -N -B -e "SELECT issued_to, code FROM giftcodes.codes WHERE status = 1" >"$WORK/rows.tsv"
counters=$(sql replica -N -e "SELECT COUNT(*) FROM giftcodes.campaign_day_counters d
  WHERE d.issued <> (SELECT COUNT(*) FROM giftcodes.codes c WHERE c.campaign_id = d.campaign_id
  AND c.status = 1 AND c.issue_day = d.day)")
read -r total created s500 s503 other none recovery first_fail distinct missing < <(python3 - "$WORK/storm.jsonl" "$WORK/rows.tsv" "$switch" <<'PY'
import json, sys
answers = [json.loads(line) for line in open(sys.argv[1])]
rows = dict(line.rstrip("\n").split("\t") for line in open(sys.argv[2]) if line.strip())
switch = float(sys.argv[3])
by = lambda s: sum(1 for a in answers if a["status"] == s)
created = [a for a in answers if a["status"] == 201]
other = sum(1 for a in answers if a["status"] not in (0, 201, 500, 503))
# Recovered: from the last refusal after the switch on, every claim succeeds (on both
# instances), and some do.
failures = sorted(a["t"] for a in answers if a["status"] != 201)
last_fail_after = [t for t in failures if t >= switch]
recovery = (last_fail_after[-1] - switch) if last_fail_after else 0.0
if not any(a["t"] > switch + recovery for a in created):
    recovery = -1
first_fail = failures[0] - switch if failures else 0
codes = [a["code"] for a in created]
missing = sum(1 for a in created if rows.get(a["user"]) != a["code"])
print(len(answers), len(created), by(500), by(503), other, by(0), f"{recovery:.2f}",
      f"{first_fail:.2f}", int(len(set(codes)) == len(codes)), missing)
PY
)
log "answers: $total in all: $created x 201, $s503 x 503, $s500 x 500, $other other, $none without an answer"
log "first refusal ${first_fail} s from the switch; every claim succeeds from ${recovery} s after it"
check '[ "$s500" = 0 ]' "claims answered 500: $s500"
check '[ "$other" = 0 ]' "answers other than 201/503: $other"
check 'awk -v r="$recovery" -v t="$RECOVERY_TARGET_S" "BEGIN{exit !(r >= 0 && r <= t)}"' \
  "every claim succeeds again ${recovery} s after the switch (target <= ${RECOVERY_TARGET_S} s)"
check '[ "$distinct" = 1 ]' "every 201's code is distinct"
check '[ "$missing" = 0 ]' "every 201 is a row on the new primary, issued to that user ($missing missing)"
check '[ "$counters" = 0 ]' "every day counter equals its COUNT on the new primary ($counters differ)"
check 'curl -fsS "$BASE1/readyz" >/dev/null && curl -fsS "$BASE2/readyz" >/dev/null' \
  "both instances ready again after the failover"
printf '%s\n' "${REPORT[@]}"
if [ "${#FAILS[@]}" -eq 0 ]; then log "PASS"; else log "FAIL (${#FAILS[@]} checks)"; exit 1; fi

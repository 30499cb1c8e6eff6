#!/usr/bin/env bash
# Acceptance test (issue 7): during a 1,000,000-code upload, a PATCH of that campaign answers
# 200 within 1 s, and claims of that campaign keep p99 <= 50 ms.
#
# What it does
#   1. builds the release binaries (giftcodes, and loadgen from bench/), ensures the MariaDB
#      login (scripts/mariadb-test-login.sh), creates a throw-away database
#      giftcodes_bench_patch_<random>, runs `giftcodes migrate` and starts the service on a
#      free port;
#   2. creates a campaign (daily_limit DAILY_LIMIT, UTC) and loads PRELOAD codes into it;
#   3. starts a steady claim probe on that campaign: bench's `loadgen`, open loop at PROBE_RATE
#      claims/s over PROBE_CONNECTIONS connections, every request a new user, every request's
#      send time, latency and outcome written down (--samples-file);
#   4. after PROBE_LEAD_SECONDS, starts the upload of CODES codes into the same campaign (one
#      streamed text/plain POST …/batches, as bench/upload-1m.sh sends it) and, while it runs,
#      sends PATCHes to the campaign PATCH_INTERVAL seconds apart: daily_limit up, an end date,
#      active false then at once true, the end removed, daily_limit back. Each PATCH's status
#      and latency (curl's time_total) is recorded, and whether the upload was still running
#      when it was answered;
#   5. waits for the upload (201, inserted == CODES) and the probe, and takes the probe's
#      requests sent during the upload window: count, claims/s, p50/p99/max, errors by
#      "<status> <code>" (409 campaign_inactive is expected, and not counted, only for a claim
#      that overlaps the time between the PATCH to inactive and the answer of the PATCH back);
#   6. checks in SQL (bench/lib.sh): no code issued twice, no claim id twice, no user twice,
#      counter = COUNT(*) per campaign-day, cap respected, no row half issued; every 201 of
#      the probe is an issued row; the campaign holds PRELOAD + CODES codes; and the campaign
#      ends as the last PATCHes left it;
#   7. prints the figures with PASS/FAIL against the targets and writes
#      bench/results/<UTC YYYYmmdd-HHMMSS>-<git short hash>-upload-patch.json.
#   Targets: every PATCH during the upload 200 and <= 1 s; at least MIN_PATCHES of them were
#   answered while the upload ran; claims during the upload p99 <= 50 ms; no errors besides
#   the expected refusals.
#
# How to run (from anywhere; needs the local MariaDB answering as root on its socket, cargo,
# curl, jq, the mariadb client):
#   bash bench/upload-patch.sh
# Everything it made (service, database, temp files) is removed on exit.
#
# Exit status: non-zero when the upload, the probe or a check fails. Missing a target is not a
# failure: it is printed and recorded ("targets", "pass": false).
#
# Environment knobs (optional):
#   CODES=1000000  PRELOAD=10000  PROBE_RATE=150  PROBE_CONNECTIONS=8  PROBE_SECONDS=45
#   PROBE_LEAD_SECONDS=3  PATCH_INTERVAL=0.5  MIN_PATCHES=4  DAILY_LIMIT=1000000
#   BENCH_SKIP_BUILD=1 (use the existing release binaries). GIFTCODES_* settings pass through.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CODES=${CODES:-1000000}
PRELOAD=${PRELOAD:-10000}
PROBE_RATE=${PROBE_RATE:-150}
PROBE_CONNECTIONS=${PROBE_CONNECTIONS:-8}
PROBE_SECONDS=${PROBE_SECONDS:-45}
PROBE_LEAD_SECONDS=${PROBE_LEAD_SECONDS:-3}
PATCH_INTERVAL=${PATCH_INTERVAL:-0.5}
MIN_PATCHES=${MIN_PATCHES:-4}
DAILY_LIMIT=${DAILY_LIMIT:-1000000}
TARGET_PATCH_S=1
TARGET_P99_MS=50
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/giftcodes"
LOADGEN_BIN="$TARGET_DIR/release/loadgen"

log() { printf '[upload-patch] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

for tool in cargo curl jq mariadb awk seq ss; do
  command -v "$tool" >/dev/null || die "needs '$tool' on PATH"
done
for n in "$CODES" "$PRELOAD" "$PROBE_RATE" "$PROBE_CONNECTIONS" "$PROBE_SECONDS" "$PROBE_LEAD_SECONDS" "$MIN_PATCHES" "$DAILY_LIMIT"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "knobs must be whole numbers, got '$n'"
done
[ "$PRELOAD" -gt 0 ] && [ "$PROBE_RATE" -gt 0 ] || die "PRELOAD and PROBE_RATE must be positive"
[ $(( PROBE_RATE * (PROBE_SECONDS + 1) )) -lt "$PRELOAD" ] \
  || log "warning: the probe may draw more than the PRELOAD codes before the upload commits"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# --- cleanup --------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-bench-patch.XXXXXX")
: >"$WORK/service.log"
DB_NAME="giftcodes_bench_patch_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
SERVICE_PIDS=()
PROBE_PID=""
UPLOAD_PID=""
DB_CREATED=0

cleanup() {
  local status=$?
  set +e
  [ -n "$PROBE_PID" ] && stop_pid "$PROBE_PID"
  [ -n "$UPLOAD_PID" ] && stop_pid "$UPLOAD_PID"
  stop_giftcodes_all
  if [ "$DB_CREATED" = 1 ]; then sql -e "DROP DATABASE IF EXISTS \`$DB_NAME\`"; fi
  finish_cleanup "$status"
}
set_cleanup_traps

# --- build, login, database, service ---------------------------------------------------------
build_release "$BIN" "$LOADGEN_BIN"
log "ensuring the MariaDB login"
bash "$ROOT/scripts/mariadb-test-login.sh"
DATABASE_URL_BENCH="mysql://$DB_USER:$DB_PASS@$DB_HOST:$DB_PORT/$DB_NAME"
DB_CREATED=1
create_migrated_database "$DB_NAME" "$DATABASE_URL_BENCH"
ADMIN_TOKEN=$(bench_token bench-admin)
CLIENT_TOKEN=$(bench_token bench-client)
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
log "starting the service on $BASE (database $DB_NAME)"
start_giftcodes "$PORT" "$DATABASE_URL_BENCH" "$WORK/service.log"
SERVICE_PID=${SERVICE_PIDS[0]}

CAMPAIGN=$(create_campaign "upload-patch" "$DAILY_LIMIT")
log "campaign $CAMPAIGN: loading $PRELOAD codes"
load_codes "$CAMPAIGN" PRE "$PRELOAD"
seq -f 'UP-%010.0f' 1 "$CODES" >"$WORK/upload.txt"
now() { date +%s.%N; }

# --- probe, upload, PATCHes ---------------------------------------------------------------------
log "claim probe: $PROBE_RATE/s over $PROBE_CONNECTIONS connections for 1+$PROBE_SECONDS s"
LOADGEN_TOKEN="$CLIENT_TOKEN" "$LOADGEN_BIN" --base "$BASE" --campaign "$CAMPAIGN" \
  --rate "$PROBE_RATE" --connections "$PROBE_CONNECTIONS" --seconds "$PROBE_SECONDS" \
  --warmup-seconds 1 --samples-file "$WORK/samples.txt" >"$WORK/probe.json" 2>"$WORK/probe-err.txt" &
PROBE_PID=$!
sleep "$PROBE_LEAD_SECONDS"

log "uploading $CODES codes into the same campaign"
UPLOAD_START=$(now)
curl -sS -X POST -T "$WORK/upload.txt" "$BASE/v1/admin/campaigns/$CAMPAIGN/batches?label=upload-patch" \
  -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: text/plain' -H 'Expect:' \
  -o "$WORK/upload.json" -w '%{http_code} %{time_total}' >"$WORK/upload-status.txt" 2>"$WORK/upload-err.txt" &
UPLOAD_PID=$!
sleep 1

# One PATCH: appends {body, status, seconds, sent_at, answered_at, during_upload} to patches.jsonl.
: >"$WORK/patches.jsonl"
patch_campaign() { # JSON body
  local sent answered out code secs during=false
  sent=$(now)
  out=$(curl -sS -o "$WORK/patch-answer.json" -w '%{http_code} %{time_total}' -X PATCH \
    "$BASE/v1/admin/campaigns/$CAMPAIGN" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'content-type: application/json' -d "$1") || out="000 0"
  answered=$(now)
  kill -0 "$UPLOAD_PID" 2>/dev/null && during=true
  read -r code secs <<<"$out"
  jq -cn --argjson body "$1" --argjson status "$code" --argjson seconds "$secs" \
    --argjson sent "$sent" --argjson answered "$answered" --argjson during "$during" \
    '{body: $body, status: $status, seconds: $seconds, sent_at: $sent, answered_at: $answered, during_upload: $during}' \
    >>"$WORK/patches.jsonl"
  log "PATCH $1: $code in ${secs}s$([ "$during" = true ] || echo ' (the upload had finished)')"
}
patch_campaign "{\"daily_limit\": $(( DAILY_LIMIT * 2 ))}"; sleep "$PATCH_INTERVAL"
patch_campaign '{"ends_at": "2037-12-31T00:00:00Z"}'; sleep "$PATCH_INTERVAL"
INACTIVE_FROM=$(now)
patch_campaign '{"active": false}'
patch_campaign '{"active": true}'
INACTIVE_TO=$(now)
sleep "$PATCH_INTERVAL"
patch_campaign '{"ends_at": null}'; sleep "$PATCH_INTERVAL"
patch_campaign "{\"daily_limit\": $DAILY_LIMIT}"

UPLOAD_OK=1
wait "$UPLOAD_PID" || UPLOAD_OK=0
UPLOAD_PID=""
UPLOAD_END=$(now)
read -r UPLOAD_HTTP UPLOAD_SECONDS <"$WORK/upload-status.txt" || true
if [ "$UPLOAD_OK" = 0 ] || [ "${UPLOAD_HTTP:-}" != 201 ] \
  || [ "$(jq -r .inserted "$WORK/upload.json" 2>/dev/null)" != "$CODES" ]; then
  cat "$WORK/upload-err.txt" >&2; head -c 2000 "$WORK/upload.json" >&2 || true
  die "the upload failed (HTTP ${UPLOAD_HTTP:-none})"
fi
log "upload done in ${UPLOAD_SECONDS}s; waiting for the probe to finish"
wait "$PROBE_PID" || { cat "$WORK/probe-err.txt" >&2; PROBE_PID=""; die "the claim probe failed"; }
PROBE_PID=""
kill -0 "$SERVICE_PID" 2>/dev/null || die "the service died"
PROBE_END=$(jq -r '.seconds' "$WORK/probe.json")
[ -s "$WORK/samples.txt" ] || die "the probe wrote no samples"
LAST_SAMPLE=$(tail -n 1 "$WORK/samples.txt" | awk '{ print $1 }')
awk -v a="$LAST_SAMPLE" -v b="$UPLOAD_END" 'BEGIN { exit !(a >= b) }' \
  || log "warning: the probe ended (${PROBE_END} s) before the upload did: raise PROBE_SECONDS"

# --- the probe during the upload -----------------------------------------------------------------
# Requests sent in [UPLOAD_START, UPLOAD_END]; campaign_inactive is expected for a request
# that overlaps [INACTIVE_FROM, INACTIVE_TO].
awk -v from="$UPLOAD_START" -v to="$UPLOAD_END" '$1 >= from && $1 <= to' "$WORK/samples.txt" >"$WORK/window.txt"
awk '{ print $2 }' "$WORK/window.txt" | sort -n >"$WORK/window-latency.txt"
# nearest rank, as bench/src/lib.rs percentile_ms
rank_ms() { # quantile
  awk -v q="$1" '{ v[NR] = $1 } END { if (NR == 0) { print 0; exit }
    r = q * NR; r = (r == int(r)) ? r : int(r) + 1; if (r < 1) r = 1; print v[r] }' "$WORK/window-latency.txt"
}
awk -v from="$UPLOAD_START" -v to="$UPLOAD_END" -v i0="$INACTIVE_FROM" -v i1="$INACTIVE_TO" \
  -v p50="$(rank_ms 0.50)" -v p99="$(rank_ms 0.99)" -v max="$(tail -n 1 "$WORK/window-latency.txt")" '
  {
    n++
    key = $3; for (i = 4; i <= NF; i++) key = key " " $i
    if (key == "201") created++
    else if (key == "409 campaign_inactive" && $1 <= i1 && $1 + $2 / 1000 >= i0) expected++
    else errors[key]++
  }
  END {
    printf "{\"requests\": %d, \"created\": %d, \"expected_refusals\": %d, \"claims_per_s\": %.1f, ",
      n, created, expected, (to > from) ? created / (to - from) : 0
    printf "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, \"errors\": {", p50, p99, max
    sep = ""; for (k in errors) { printf "%s\"%s\": %d", sep, k, errors[k]; sep = ", " }
    printf "}}\n"
  }' "$WORK/window.txt" >"$WORK/window.json"
jq -e . "$WORK/window.json" >/dev/null || die "could not summarise the probe"

# --- checks ----------------------------------------------------------------------------------------
log "checking the database"
CHECKS_FILE="$WORK/checks.jsonl"
: >"$CHECKS_FILE"
claim_data_checks "$DB_NAME"
CAMPAIGN_HEX=${CAMPAIGN//-/}
ISSUED=$(sql "$DB_NAME" -e "SELECT COUNT(*) FROM codes WHERE status = 1 AND campaign_id = UNHEX('$CAMPAIGN_HEX')")
ROWS=$(sql "$DB_NAME" -e "SELECT COUNT(*) FROM codes WHERE campaign_id = UNHEX('$CAMPAIGN_HEX')")
CREATED_ALL=$(jq .created_all "$WORK/probe.json")
check_json "every 201 is an issued row" "$([ "$ISSUED" -ge "$CREATED_ALL" ] && echo true || echo false)" \
  "$ISSUED issued rows, $CREATED_ALL answers 201"
check_json "the campaign holds every code loaded" "$([ "$ROWS" = $(( PRELOAD + CODES )) ] && echo true || echo false)" \
  "$ROWS rows, $PRELOAD + $CODES loaded"
FINAL=$(admin "$BASE/v1/admin/campaigns/$CAMPAIGN") || die "could not read the campaign back"
FINAL_OK=$(jq --argjson limit "$DAILY_LIMIT" '.daily_limit == $limit and .active == true and .ends_at == null' <<<"$FINAL")
check_json "the campaign ends as the last PATCHes left it" "$FINAL_OK" \
  "$(jq -c '{daily_limit, active, ends_at}' <<<"$FINAL")"

# --- result ----------------------------------------------------------------------------------------
COMMIT=$(result_commit)
DIRTY=$(result_dirty)
STAMP=$(date -u +%Y%m%d-%H%M%S)
DATE_ISO=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$ROOT/bench/results"
RESULT="$ROOT/bench/results/$STAMP-$COMMIT-upload-patch.json"
jq -n \
  --arg commit "$COMMIT" --argjson dirty "$DIRTY" --arg date "$DATE_ISO" \
  --arg mariadb "$(sql -e 'SELECT VERSION()')" --argjson cpus "$(nproc)" \
  --argjson service_env "$(service_env_json)" \
  --argjson codes "$CODES" --argjson preload "$PRELOAD" --argjson probe_rate "$PROBE_RATE" \
  --argjson probe_connections "$PROBE_CONNECTIONS" --argjson min_patches "$MIN_PATCHES" \
  --argjson upload_seconds "$UPLOAD_SECONDS" --argjson upload_start "$UPLOAD_START" --argjson upload_end "$UPLOAD_END" \
  --slurpfile patches "$WORK/patches.jsonl" --slurpfile window "$WORK/window.json" \
  --slurpfile probe "$WORK/probe.json" --slurpfile checks "$CHECKS_FILE" \
  --argjson t_patch "$TARGET_PATCH_S" --argjson t_p99 "$TARGET_P99_MS" \
  '($patches | map(select(.during_upload))) as $during
  | ($window[0]) as $w
  | {
      commit: $commit, dirty: $dirty, date: $date,
      host: {cpus: $cpus, mariadb: $mariadb, note: "shared machine; other work may run meanwhile"},
      settings: {codes: $codes, preload: $preload, probe_rate: $probe_rate,
                 probe_connections: $probe_connections, min_patches: $min_patches, service_env: $service_env},
      upload: {seconds: $upload_seconds, started_at: $upload_start, ended_at: $upload_end},
      patches: $patches,
      claims_during_upload: $w,
      probe_whole_run: ($probe[0] | del(.created_all_by_campaign)),
      targets: {
        patch_status_200: {target: "every PATCH during the upload 200", measured: ($during | map(.status)),
                           met: ($during | all(.status == 200))},
        patch_seconds: {target: "<= \($t_patch) s", measured: ($during | map(.seconds) | max),
                        met: ($during | all(.seconds <= $t_patch))},
        patches_during_upload: {target: ">= \($min_patches)", measured: ($during | length),
                                met: (($during | length) >= $min_patches)},
        claims_p99_ms: {target: "<= \($t_p99) ms", measured: $w.p99_ms, met: ($w.requests > 0 and $w.p99_ms <= $t_p99)},
        claims_errors: {target: "0 besides expected refusals", measured: ($w.errors | add // 0),
                        met: (($w.errors | add // 0) == 0)}
      },
      checks: $checks
    }
  | .pass = ([.targets[].met] | all)
  | .checks_pass = (.checks | all(.pass))' >"$RESULT"

printf '\nupload + PATCH, commit %s%s, %s\n' "$COMMIT" "$([ "$DIRTY" = true ] && echo ' (dirty)')" "$DATE_ISO"
printf 'upload of %s codes into a campaign holding %s: %s s (HTTP %s)\n' "$CODES" "$PRELOAD" "$UPLOAD_SECONDS" "$UPLOAD_HTTP"
printf '\n%-40s %6s %9s %s\n' "PATCH" status seconds "during upload"
jq -r '.patches[] | [(.body | tostring), .status, .seconds, .during_upload] | @tsv' "$RESULT" |
while IFS=$'\t' read -r body status secs during; do
  printf '%-40s %6s %9s %s\n' "$body" "$status" "$secs" "$during"
done
printf '\nclaims sent during the upload (probe %s/s, %s connections, every request a new user)\n' "$PROBE_RATE" "$PROBE_CONNECTIONS"
jq -r '.claims_during_upload | "  requests \(.requests), 201 \(.created), claims/s \(.claims_per_s), p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms",
  "  expected refusals (campaign_inactive while inactive) \(.expected_refusals), errors \(.errors | if length == 0 then "none" else tostring end)"' "$RESULT"
printf '\ntargets\n'
jq -r '.targets | to_entries[] | [.key, .value.target, (.value.measured | tostring), (if .value.met then "PASS" else "FAIL" end)] | @tsv' "$RESULT" |
while IFS=$'\t' read -r name target measured met; do
  printf '  %-22s %-36s measured %-18s %s\n' "$name" "$target" "$measured" "$met"
done
print_checks "$RESULT"
printf '\npass: %s\nresult: %s\n' "$(jq .pass "$RESULT")" "${RESULT#"$ROOT"/}"

[ "$(jq .checks_pass "$RESULT")" = true ] || die "a check failed"

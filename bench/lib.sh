# Helpers shared by the bench scripts (sourced, not run). The caller defines log() and die(),
# and may set DB_USER, DB_PASS, DB_HOST, DB_PORT (the bench login on the local MariaDB by default).
DB_USER=${DB_USER:-giftcodes}
DB_PASS=${DB_PASS:-giftcodes}
DB_HOST=${DB_HOST:-127.0.0.1}
DB_PORT=${DB_PORT:-3306}

# The MariaDB client logged in as the bench user, tab-separated, no headers.
sql() { mariadb -u"$DB_USER" -p"$DB_PASS" -h"$DB_HOST" -P"$DB_PORT" --batch --skip-column-names "$@"; }

# A port below the kernel's ephemeral range (so no outgoing connection can take it meanwhile)
# with no socket on it in any state.
free_port() {
  local low port
  low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 100); do
    port=$(( 20000 + RANDOM % (low - 20000) ))
    if ! ss -Htan "sport = :$port" | grep -q .; then echo "$port"; return; fi
  done
  die "no free port found"
}

# A fresh bearer token with the given prefix.
bench_token() { echo "$1-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"; }

# CPU seconds (user + system) a process has used so far; 0 when there is no such process.
cpu_seconds() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# --- a script's frame -----------------------------------------------------------------------------
# Installs the traps: `cleanup` (the caller's) on exit, exit 130 on INT/TERM, and a line naming
# the command that failed.
set_cleanup_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  trap 'log "FAILED: command at line $LINENO exited $?"' ERR
}

# The end of a cleanup: on failure the service log's last lines; WORK removed; exit `status`.
finish_cleanup() { # status
  if [ "$1" != 0 ] && [ -s "$WORK/service.log" ]; then
    log "last lines of the service log:"
    tail -n 20 "$WORK/service.log" >&2
  fi
  rm -rf "$WORK"
  exit "$1"
}

# Builds giftcodes and the bench tools in release mode (unless BENCH_SKIP_BUILD=1), then checks
# that the named binaries are there.
build_release() { # binaries
  local b
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --locked --quiet -p giftcodes -p giftcodes-bench)
  fi
  for b in "$@"; do [ -x "$b" ] || die "no binary at $b"; done
}

# Creates database DB (as the bench user) and applies the migrations with `giftcodes migrate`.
create_migrated_database() { # database, its URL
  sql -e "CREATE DATABASE \`$1\`"
  DATABASE_URL="$2" RUST_LOG=warn "$BIN" migrate >"$WORK/migrate.log" 2>&1 \
    || { cat "$WORK/migrate.log" >&2; die "migrate failed"; }
}

# --- the service and its admin API --------------------------------------------------------------
# These expect BIN (the giftcodes binary), ADMIN_TOKEN and CLIENT_TOKEN, and (load_codes) WORK.

# Starts `giftcodes serve` on 127.0.0.1:PORT over DATABASE_URL (migrations not applied: run
# `giftcodes migrate` first), its output appended to LOG; appends its pid to SERVICE_PIDS and
# returns once /healthz answers (dies when it exits or 30 s pass). GIFTCODES_* settings in the
# caller's environment pass through.
start_giftcodes() { # port, database url, log file
  local base="http://127.0.0.1:$1" pid i
  GIFTCODES_LISTEN="127.0.0.1:$1" \
  DATABASE_URL="$2" \
  GIFTCODES_ADMIN_TOKEN="$ADMIN_TOKEN" \
  GIFTCODES_CLIENT_TOKENS="$CLIENT_TOKEN" \
  GIFTCODES_MIGRATE=false \
  RUST_LOG=${BENCH_SERVICE_LOG_LEVEL:-warn} \
    "$BIN" serve >>"$3" 2>&1 &
  pid=$!
  SERVICE_PIDS+=("$pid")
  for i in $(seq 300); do
    if curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "the service on port $1 exited during start-up"
    [ "$i" = 300 ] && die "the service on port $1 did not answer /healthz within 30 s"
    sleep 0.1
  done
}

# SIGTERM, up to 15 s to finish, then SIGKILL; reaps the process.
stop_pid() { # pid
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Stops every process in SERVICE_PIDS.
stop_giftcodes_all() {
  local pid
  for pid in "${SERVICE_PIDS[@]}"; do stop_pid "$pid"; done
  SERVICE_PIDS=()
}

# curl with the admin token; fails on an HTTP error. BASE is the service to ask.
admin() { curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$@"; }

create_campaign() { # name, daily_limit JSON (a number or null)
  local answer
  answer=$(admin -X POST "$BASE/v1/admin/campaigns" -H 'content-type: application/json' \
    -d "{\"name\":\"$1\",\"daily_limit\":$2,\"time_zone\":\"UTC\"}") \
    || die "could not create campaign $1"
  jq -er .id <<<"$answer" || die "no campaign id in: $answer"
}

# Loads `count` codes PREFIX-0000000001 … in text/plain uploads of at most 1,000,000 lines each
# (safe to run several at once in background jobs: each has its own temp file).
load_codes() { # campaign id, prefix, count
  local campaign=$1 prefix=$2 count=$3 first=1 last part=0 answer file="$WORK/codes.$BASHPID.txt"
  while [ "$first" -le "$count" ]; do
    last=$(( first + 999999 )); [ "$last" -gt "$count" ] && last=$count
    part=$(( part + 1 ))
    seq -f "$prefix-%010.0f" "$first" "$last" >"$file"
    answer=$(admin -X POST -T "$file" -H 'content-type: text/plain' -H 'Expect:' \
      "$BASE/v1/admin/campaigns/$campaign/batches?label=$prefix-$part") \
      || die "upload of $prefix part $part failed"
    [ "$(jq -r .inserted <<<"$answer")" = $(( last - first + 1 )) ] \
      || die "upload of $prefix part $part: unexpected answer $answer"
    first=$(( last + 1 ))
  done
  rm -f "$file"
}

# Runs `function <line>` for each line of FILE as background jobs, at most JOBS at once, and
# waits for them all (the caller checks what they made: a job's failure only ends that job).
# Other background jobs of the caller (a running service) are neither counted nor waited for.
run_parallel() { # jobs, file, function
  local line pid pids=() live
  while read -r line; do
    while [ "${#pids[@]}" -ge "$1" ]; do
      wait -n "${pids[@]}" 2>/dev/null || true
      live=()
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && live+=("$pid"); done
      pids=("${live[@]}")
    done
    # shellcheck disable=SC2086 # the line's words are the function's arguments
    "$3" $line &
    pids+=("$!")
  done <"$2"
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# --- checks after a run ---------------------------------------------------------------------------
# check_json appends {name, pass, detail} to CHECKS_FILE and clears CHECKS_OK on a failure.
CHECKS_OK=true
check_json() { # name, ok (true/false), detail
  [ "$2" = true ] || CHECKS_OK=false
  jq -cn --arg name "$1" --argjson ok "$2" --arg detail "$3" '{name: $name, pass: $ok, detail: $detail}' >>"$CHECKS_FILE"
}
is_zero() { [ "$1" = 0 ] && echo true || echo false; }
count_rows() { sql "$1" -e "SELECT COUNT(*) FROM ($2) AS t"; } # database, query

# The invariants of the claim path over a whole database, as checks: no code issued twice, no
# claim id twice, no user twice per campaign, every campaign-day counter equals COUNT(*) of that
# day's issued codes (and no issued day lacks a counter), issued per day <= daily_limit, and no
# row half issued.
claim_data_checks() { # database
  local db=$1 dup_codes dup_claims dup_users bad_counters missing_counters over_cap inconsistent
  dup_codes=$(count_rows "$db" "SELECT campaign_id, code FROM codes WHERE status = 1 GROUP BY campaign_id, code HAVING COUNT(*) > 1")
  dup_claims=$(count_rows "$db" "SELECT claim_id FROM codes WHERE claim_id IS NOT NULL GROUP BY claim_id HAVING COUNT(*) > 1")
  dup_users=$(count_rows "$db" "SELECT campaign_id, issued_to FROM codes WHERE issued_to IS NOT NULL GROUP BY campaign_id, issued_to HAVING COUNT(*) > 1")
  bad_counters=$(count_rows "$db" "SELECT d.campaign_id, d.day FROM campaign_day_counters d
    LEFT JOIN codes c ON c.campaign_id = d.campaign_id AND c.issue_day = d.day AND c.status = 1
    GROUP BY d.campaign_id, d.day, d.issued HAVING d.issued <> COUNT(c.id)")
  missing_counters=$(count_rows "$db" "SELECT c.campaign_id, c.issue_day FROM codes c
    LEFT JOIN campaign_day_counters d ON d.campaign_id = c.campaign_id AND d.day = c.issue_day
    WHERE c.status = 1 AND d.campaign_id IS NULL GROUP BY c.campaign_id, c.issue_day")
  over_cap=$(count_rows "$db" "SELECT c.campaign_id, c.issue_day FROM codes c JOIN campaigns k ON k.id = c.campaign_id
    WHERE c.status = 1 AND k.daily_limit IS NOT NULL
    GROUP BY c.campaign_id, c.issue_day HAVING COUNT(*) > MAX(k.daily_limit)")
  inconsistent=$(sql "$db" -e "SELECT COUNT(*) FROM codes WHERE (status = 1) <> (issued_to IS NOT NULL AND claim_id IS NOT NULL AND issue_day IS NOT NULL AND issued_at IS NOT NULL)")
  check_json "no code issued twice" "$(is_zero "$dup_codes")" "$dup_codes duplicated (campaign, code)"
  check_json "no claim id twice" "$(is_zero "$dup_claims")" "$dup_claims duplicated claim ids"
  check_json "no user twice per campaign" "$(is_zero "$dup_users")" "$dup_users duplicated (campaign, user)"
  check_json "counter = COUNT(*) per campaign-day" "$(is_zero "$((bad_counters + missing_counters))")" \
    "$bad_counters counters differ, $missing_counters issued days without a counter"
  check_json "cap respected (issued per day <= daily_limit)" "$(is_zero "$over_cap")" "$over_cap campaign-days over the limit"
  check_json "issued rows are complete" "$(is_zero "$inconsistent")" "$inconsistent rows half issued"
}

# Prints the "checks" of a result JSON, one line each with PASS/FAIL.
print_checks() { # result file
  printf '\nchecks after the run\n'
  jq -r '.checks[] | [(if .pass then "PASS" else "FAIL" end), .name, .detail] | @tsv' "$1" |
  while IFS=$'\t' read -r verdict name detail; do
    printf '  %-4s  %-46s %s\n' "$verdict" "$name" "$detail"
  done
}

# --- results ----------------------------------------------------------------------------------------
# The short commit hash, and whether the code a benchmark measures differs from it.
result_commit() { git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown; }
result_dirty() {
  [ -n "$(git -C "$ROOT" status --porcelain -- src entity migration bench/src bench/Cargo.toml Cargo.toml Cargo.lock 2>/dev/null)" ] \
    && echo true || echo false
}

# The GIFTCODES_* settings of this environment (tokens and URLs left out), as a JSON object.
service_env_json() {
  { env | grep -E '^GIFTCODES_' | grep -vE 'TOKEN|DATABASE_URL' || true; } \
    | jq -R 'split("=") | {(.[0]): (.[1:] | join("="))}' | jq -s 'add // {}'
}

# python3 with matplotlib, pip-installed when missing (a failure only warns: the plot is extra).
ensure_matplotlib() {
  python3 -c 'import matplotlib' 2>/dev/null && return 0
  log "installing matplotlib (pip)"
  python3 -m pip install --quiet --disable-pip-version-check matplotlib >&2 \
    || log "warning: pip install matplotlib failed"
}

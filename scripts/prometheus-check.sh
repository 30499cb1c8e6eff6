#!/usr/bin/env bash
# Alerting, end to end with a real Prometheus (part of scripts/test; ~20 s once built).
#
#   bash scripts/prometheus-check.sh
#
# 1. Installs Debian's `prometheus` package (Prometheus 2.42 and promtool) when promtool is
#    missing; no Prometheus service is started by the package here (no systemd).
# 2. `promtool check rules deploy/prometheus/alerts.yml` and `promtool test rules
#    deploy/prometheus/alerts.test.yml` (each rule fires on synthetic series, and only then).
# 3. (After step 5) checks that every metric the Grafana dashboard queries (deploy/grafana/giftcodes.json;
#    `cargo test --test api dashboard` checks it against src/metrics.rs) is in a live scrape.
# 4. Starts target/debug/giftcodes (built if needed) on SQLite in a temporary directory, on
#    loopback, with JSON logs and a metrics token; starts Prometheus on loopback with
#    alerts.yml, scraping the service every second with that token.
# 5. Creates a campaign, loads 100 codes and drains 90 of them with claims (one of them with
#    `X-Request-Id: prometheus-check-1`), then polls Prometheus' API until GiftcodesLowStock
#    fires for that campaign (at most 30 s) and prints the alert, the stock series and the
#    scrape target's health.
# 6. Checks the service's JSON log: the access line of the tagged request carries its request
#    id, route, status and latency, and the claim writer's debug line names the request id.
# Prints a summary; exits non-zero on any failure. Everything it started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$SECONDS
say() { echo "== $*"; }
fail() { echo "prometheus-check: FAILED: $*" >&2; exit 1; }

# 1. Tools.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
say "tools: $(prometheus --version 2>&1 | head -1)"

# 2. The rules.
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)

# 4. The service and Prometheus.
bin="${CARGO_TARGET_DIR:-$repo/target}/debug/giftcodes"
cargo build --locked --quiet --bin giftcodes
work=$(mktemp -d)
service_pid= prometheus_pid=
cleanup() {
  for pid in $prometheus_pid $service_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in $prometheus_pid $service_pid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
prom_port=$(free_port)
base="http://127.0.0.1:$port"
prom="http://127.0.0.1:$prom_port"
admin="prom-check-admin-$RANDOM$RANDOM$RANDOM"
client="prom-check-client-$RANDOM$RANDOM$RANDOM"
scrape_token="prom-check-scrape-$RANDOM$RANDOM$RANDOM"
GIFTCODES_LISTEN="127.0.0.1:$port" DATABASE_URL="sqlite://$work/giftcodes.db?mode=rwc" \
  GIFTCODES_ADMIN_TOKEN="$admin" GIFTCODES_CLIENT_TOKENS="$client" \
  GIFTCODES_METRICS_TOKEN="$scrape_token" GIFTCODES_LOG_FORMAT=json \
  RUST_LOG=info,giftcodes::claim=debug "$bin" serve >"$work/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$service_pid" 2>/dev/null || { cat "$work/service.log"; fail "the service exited"; }
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || fail "the service did not start"

printf '%s' "$scrape_token" >"$work/scrape-token"
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $repo/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: giftcodes
    authorization:
      type: Bearer
      credentials_file: $work/scrape-token
    static_configs:
      - targets: ["127.0.0.1:$port"]
YAML
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
for _ in $(seq 100); do
  curl -fsS "$prom/-/ready" >/dev/null 2>&1 && break
  kill -0 "$prometheus_pid" 2>/dev/null || { cat "$work/prometheus.log"; fail "prometheus exited"; }
  sleep 0.2
done
curl -fsS "$prom/-/ready" >/dev/null || fail "prometheus did not become ready"
say "service on $base, prometheus on $prom (scraping every 1 s)"

# 5. Drain a campaign.
campaign=$(curl -fsS -X POST "$base/v1/admin/campaigns" -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' -d '{"name":"Drained in the check","daily_limit":1000}' | jq -er .id)
seq -f 'PROM-%05g' 1 100 | curl -fsS -X POST "$base/v1/admin/campaigns/$campaign/batches" \
  -H "Authorization: Bearer $admin" -H 'content-type: text/plain' --data-binary @- >/dev/null
curl -fsS -o /dev/null -X POST "$base/v1/campaigns/$campaign/claims" -H "Authorization: Bearer $client" \
  -H 'content-type: application/json' -H 'X-Request-Id: prometheus-check-1' -d '{"user_id":"user-0"}'
for i in $(seq 1 89); do
  curl -fsS -o /dev/null -X POST "$base/v1/campaigns/$campaign/claims" -H "Authorization: Bearer $client" \
    -H 'content-type: application/json' -d "{\"user_id\":\"user-$i\"}"
done
view=$(curl -fsS "$base/v1/admin/campaigns/$campaign" -H "Authorization: Bearer $admin")
say "campaign after the drain: $(jq -c '{available, issued_today, claims_per_hour, stock_runs_out_at}' <<<"$view")"

# 3. The dashboard, against the names this build exports.
curl -fsS -H "Authorization: Bearer $scrape_token" "$base/metrics" >"$work/metrics.txt"
for name in $(grep -oE 'giftcodes_[a-z_]+' deploy/grafana/giftcodes.json | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
  grep -q "^# TYPE $name " "$work/metrics.txt" || fail "the dashboard queries $name, which /metrics does not list"
done
say "dashboard: every metric it queries is in the scrape"

firing=
for _ in $(seq 60); do
  alerts=$(curl -fsS "$prom/api/v1/alerts")
  firing=$(jq -c --arg c "$campaign" '.data.alerts[] | select(.labels.alertname == "GiftcodesLowStock" and .labels.campaign_id == $c and .state == "firing")' <<<"$alerts")
  [[ -n "$firing" ]] && break
  sleep 0.5
done
[[ -n "$firing" ]] || { echo "$alerts"; fail "GiftcodesLowStock did not fire within 30 s"; }
say "alert firing: $(jq -c '{labels: .labels | {alertname, campaign, campaign_id, severity}, state, activeAt, value}' <<<"$firing")"
stock=$(curl -fsS "$prom/api/v1/query" --data-urlencode "query=giftcodes_campaign_stock_seconds_left{campaign_id=\"$campaign\"}")
say "query giftcodes_campaign_stock_seconds_left: $(jq -c '.data.result[] | {campaign: .metric.campaign, value: .value[1]}' <<<"$stock")"
issued=$(curl -fsS "$prom/api/v1/query" --data-urlencode 'query=sum(giftcodes_claims_total{outcome="issued"})' | jq -r '.data.result[0].value[1]')
[[ "$issued" == 90 ]] || fail "giftcodes_claims_total{outcome=\"issued\"} is $issued, expected 90"
target=$(curl -fsS "$prom/api/v1/targets" | jq -c '.data.activeTargets[] | {job: .labels.job, health, lastError}')
say "scrape target: $target"
others=$(jq -r '[.data.alerts[] | select(.state == "firing") | .labels.alertname] | unique | join(",")' <<<"$alerts")
[[ "$others" == GiftcodesLowStock ]] || fail "unexpected alerts firing: $others"

# 6. The request's log lines.
access=$(grep '"request_id":"prometheus-check-1"' "$work/service.log" | grep '"message":"answered"' | head -1)
[[ -n "$access" ]] || { tail -5 "$work/service.log"; fail "no access line with the request id"; }
jq -e '.fields.status == 201 and (.fields.latency_ms | type == "number") and .span.route == "/v1/campaigns/{campaign_id}/claims"' <<<"$access" >/dev/null \
  || fail "the access line lacks status, latency or route: $access"
# One grep: with pipefail, `grep | grep -q` fails when -q stops reading early (SIGPIPE).
grep -q '"message":"claim round".*prometheus-check-1' "$work/service.log" \
  || fail "the claim writer's round line does not name the request id"
say "log: access line $(jq -c '{request_id: .span.request_id, route: .span.route, status: .fields.status, latency_ms: .fields.latency_ms}' <<<"$access"); the claim round line names it"

echo
echo "prometheus-check passed ($((SECONDS - started)) s)"

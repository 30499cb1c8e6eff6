// Shared helpers for the giftcodes k6 scenarios (smoke.js, campaign-open.js, mixed.js).
//
// Environment (all optional):
//   BASE_URL      service address (default http://127.0.0.1:8080)
//   ADMIN_TOKEN   bearer token for /v1/admin routes
//   CLIENT_TOKEN  bearer token for client routes
//   SUMMARY_PATH  where handleSummary writes the JSON summary
//                 (default bench/results/k6-<scenario>-summary.json, relative to the cwd)
//   RUN_ID        prefix for user ids and codes (default: random per run)
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || 'k6-admin-token-0123456789';
export const CLIENT_TOKEN = __ENV.CLIENT_TOKEN || 'k6-client-token-0123456789';

/** The trend stats every scenario reports (p(99) only shows up if it is listed here). */
export const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

/** Responses >= 500, whatever the route: every scenario wants this at zero. */
export const serverErrors = new Counter('server_errors');

/** Reads a number from the environment, with a default. */
export function envNumber(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name} must be a number, got ${raw}`);
  return value;
}

/** A short random id, distinct per run, so repeated runs never collide on users or codes. */
export function newRunId() {
  if (__ENV.RUN_ID) return __ENV.RUN_ID;
  const rand = Math.floor(Math.random() * 0xffffffff).toString(36);
  return `k6${Date.now().toString(36)}${rand}`;
}

/** A random RFC 4122 v4 uuid (for "unknown id" requests). */
export function randomUuid() {
  const hex = '0123456789abcdef';
  let out = '';
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) out += '-';
    else if (i === 14) out += '4';
    else if (i === 19) out += hex[8 + Math.floor(Math.random() * 4)];
    else out += hex[Math.floor(Math.random() * 16)];
  }
  return out;
}

/**
 * An IANA zone (`Etc/GMT±N`) in which it is currently around noon, so a run never straddles the
 * campaign's local midnight (the daily counter would reset under our feet). TIME_ZONE overrides.
 */
export function noonTimeZone() {
  if (__ENV.TIME_ZONE) return __ENV.TIME_ZONE;
  const offset = 12 - new Date().getUTCHours(); // hours east of UTC, in -11..=12
  if (offset === 0) return 'Etc/GMT';
  // Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
  return offset > 0 ? `Etc/GMT-${offset}` : `Etc/GMT+${-offset}`;
}

export function adminHeaders(extra) {
  return Object.assign({ Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' }, extra || {});
}

export function clientHeaders(extra) {
  return Object.assign({ Authorization: `Bearer ${CLIENT_TOKEN}`, 'Content-Type': 'application/json' }, extra || {});
}

/** Counts 5xx answers; call on every response. */
export function track(res) {
  if (res.status >= 500 || res.status === 0) serverErrors.add(1, { status: String(res.status) });
  return res;
}

/** The parsed JSON body, or null when the body is not JSON. */
export function body(res) {
  try {
    return res.json();
  } catch (_) {
    return null;
  }
}

/** The error code of a JSON error body, or null. */
export function errorCode(res) {
  const b = body(res);
  return b && typeof b === 'object' ? b.code : null;
}

/** Check: status and error `code` (and the error body shape). */
export function checkError(res, status, code, label, tags) {
  const b = body(res);
  return check(
    res,
    {
      [`${label}: status ${status}`]: (r) => r.status === status,
      [`${label}: code ${code}`]: () => b !== null && b.code === code && typeof b.message === 'string',
    },
    tags,
  );
}

// ---- admin calls used by setup() of every scenario ----

export function createCampaign(fields, tags) {
  const res = track(
    http.post(`${BASE_URL}/v1/admin/campaigns`, JSON.stringify(fields), {
      headers: adminHeaders(),
      tags: Object.assign({ name: 'POST /v1/admin/campaigns' }, tags || {}),
    }),
  );
  return res;
}

export function getCampaign(id, tags) {
  return track(
    http.get(`${BASE_URL}/v1/admin/campaigns/${id}`, {
      headers: adminHeaders(),
      tags: Object.assign({ name: 'GET /v1/admin/campaigns/{id}' }, tags || {}),
    }),
  );
}

/** Loads codes as a text/plain batch (one code per line). */
export function loadTextBatch(campaignId, codes, label, tags) {
  const query = label ? `?label=${encodeURIComponent(label)}` : '';
  return track(
    http.post(`${BASE_URL}/v1/admin/campaigns/${campaignId}/batches${query}`, codes.join('\n') + '\n', {
      headers: adminHeaders({ 'Content-Type': 'text/plain' }),
      tags: Object.assign({ name: 'POST /v1/admin/campaigns/{id}/batches' }, tags || {}),
    }),
  );
}

export function claim(campaignId, userId, tags, params) {
  return track(
    http.post(`${BASE_URL}/v1/campaigns/${campaignId}/claims`, JSON.stringify({ user_id: userId }), Object.assign(
      {
        headers: clientHeaders(),
        tags: Object.assign({ name: 'POST /v1/campaigns/{id}/claims' }, tags || {}),
      },
      params || {},
    )),
  );
}

export function getClaim(campaignId, userId, tags, params) {
  return track(
    http.get(`${BASE_URL}/v1/campaigns/${campaignId}/claims/${encodeURIComponent(userId)}`, Object.assign(
      {
        headers: clientHeaders(),
        tags: Object.assign({ name: 'GET /v1/campaigns/{id}/claims/{user_id}' }, tags || {}),
      },
      params || {},
    )),
  );
}

/** Fails setup loudly when a precondition request did not do what it must. */
export function mustStatus(res, status, what) {
  if (res.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${res.status}: ${String(res.body).slice(0, 500)}`);
  }
  return body(res);
}

// ---- end-of-test summary ----

function fmtNum(v, unit) {
  if (v === undefined || v === null) return '-';
  if (unit === 'ms') return v >= 1000 ? `${(v / 1000).toFixed(2)}s` : `${v.toFixed(2)}ms`;
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(4);
}

function metricLine(name, m) {
  const v = m.values || {};
  const time = m.contains === 'time';
  switch (m.type) {
    case 'trend':
      return `${name}: avg=${fmtNum(v.avg, time && 'ms')} med=${fmtNum(v.med, time && 'ms')} p(95)=${fmtNum(
        v['p(95)'],
        time && 'ms',
      )} p(99)=${fmtNum(v['p(99)'], time && 'ms')} max=${fmtNum(v.max, time && 'ms')} count=${fmtNum(v.count)}`;
    case 'rate':
      return `${name}: ${(100 * (v.rate || 0)).toFixed(2)}% (${v.passes || 0} of ${(v.passes || 0) + (v.fails || 0)})`;
    case 'counter':
      return `${name}: ${fmtNum(v.count)} (${fmtNum(v.rate)}/s)`;
    case 'gauge':
      return `${name}: ${fmtNum(v.value)}`;
    default:
      return `${name}: ${JSON.stringify(v)}`;
  }
}

function collectChecks(group, out) {
  for (const c of group.checks || []) out.push(c);
  for (const g of group.groups || []) collectChecks(g, out);
  return out;
}

/** A plain-text summary (no remote jslib needed): thresholds, failed checks, key metrics. */
export function textSummary(data, scenario, extraLines) {
  const lines = [];
  const metrics = data.metrics || {};
  lines.push('');
  lines.push(`==== k6 ${scenario} summary ====`);
  let allOk = true;
  const thresholdLines = [];
  for (const name of Object.keys(metrics).sort()) {
    const th = metrics[name].thresholds;
    if (!th) continue;
    for (const expr of Object.keys(th)) {
      const ok = th[expr].ok;
      allOk = allOk && ok;
      thresholdLines.push(`  ${ok ? 'PASS' : 'FAIL'} ${name} ${expr}   [${metricLine(name, metrics[name]).replace(/^[^:]*: /, '')}]`);
    }
  }
  lines.push(`thresholds: ${allOk ? 'all passed' : 'SOME FAILED'}`);
  lines.push(...thresholdLines);
  const checks = collectChecks(data.root_group || {}, []);
  const failed = checks.filter((c) => c.fails > 0);
  const passes = checks.reduce((a, c) => a + c.passes, 0);
  const fails = checks.reduce((a, c) => a + c.fails, 0);
  lines.push(`checks: ${passes} passed, ${fails} failed (${checks.length} distinct)`);
  for (const c of failed) lines.push(`  FAILED CHECK ${c.name}: ${c.fails} failed, ${c.passes} passed`);
  lines.push('metrics:');
  const keep = /^(http_reqs|http_req_duration|http_req_failed|iterations|dropped_iterations|vus_max|checks)(\{|$)/;
  for (const name of Object.keys(metrics).sort()) {
    const builtin = keep.test(name);
    const custom = !/^(http_|data_|iteration_duration|vus|group_duration|checks|iterations|dropped_iterations)/.test(name);
    if (builtin || custom) lines.push(`  ${metricLine(name, metrics[name])}`);
  }
  for (const l of extraLines || []) lines.push(l);
  lines.push('');
  return lines.join('\n');
}

/** handleSummary for a scenario: the JSON next to the bench results, plus text on stdout. */
export function summaryOutputs(data, scenario, extraLines) {
  const path = __ENV.SUMMARY_PATH || `bench/results/k6-${scenario}-summary.json`;
  const text = textSummary(data, scenario, extraLines);
  return { [path]: JSON.stringify(data, null, 2), stdout: text + `summary JSON: ${path}\n` };
}

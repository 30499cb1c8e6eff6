// Smoke: every route once, success and error paths, checked on status and body.
// One VU, one iteration, a few seconds. Passes only if every check passes.
//
//   BASE_URL=... ADMIN_TOKEN=... CLIENT_TOKEN=... k6 run k6/smoke.js
//   (or: k6/run.sh smoke)
import http from 'k6/http';
import { check, group } from 'k6';
import { Counter } from 'k6/metrics';
import {
  BASE_URL,
  ADMIN_TOKEN,
  CLIENT_TOKEN,
  TREND_STATS,
  adminHeaders,
  clientHeaders,
  body,
  checkError,
  claim,
  createCampaign,
  getCampaign,
  getClaim,
  loadTextBatch,
  mustStatus,
  newRunId,
  randomUuid,
  summaryOutputs,
  track,
} from './lib.js';

const completed = new Counter('smoke_completed');

export const options = {
  scenarios: {
    smoke: { executor: 'shared-iterations', vus: 1, iterations: 1, maxDuration: '60s' },
  },
  thresholds: {
    // k6 1.1.0 exits 0 when an iteration dies of an uncaught exception: only an iteration that
    // reached its last line counts here, so a script that stopped early fails.
    smoke_completed: ['count==1'],
    checks: ['rate==1.0'],
    server_errors: ['count==0'],
    'http_req_duration{scenario:smoke}': ['p(99)<2000'],
  },
  summaryTrendStats: TREND_STATS,
  setupTimeout: '30s',
};

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function isCampaign(c) {
  return (
    c !== null &&
    UUID.test(c.id) &&
    typeof c.name === 'string' &&
    typeof c.time_zone === 'string' &&
    typeof c.active === 'boolean' &&
    ISO.test(c.created_at) &&
    ISO.test(c.updated_at) &&
    Number.isInteger(c.available) &&
    Number.isInteger(c.issued_total) &&
    Number.isInteger(c.issued_today) &&
    'starts_at' in c &&
    'ends_at' in c &&
    'daily_limit' in c &&
    'remaining_today' in c
  );
}

function isClaim(c, campaignId, userId) {
  return (
    c !== null &&
    UUID.test(c.claim_id) &&
    c.campaign_id === campaignId &&
    c.user_id === userId &&
    typeof c.code === 'string' &&
    c.code.length > 0 &&
    ISO.test(c.issued_at) &&
    /^\d{4}-\d{2}-\d{2}$/.test(c.day)
  );
}

export function setup() {
  const runId = newRunId();
  const res = createCampaign({ name: `k6 smoke ${runId}`, daily_limit: 10, time_zone: 'Europe/Berlin' });
  const c = body(res);
  check(res, {
    'setup create campaign: 201': (r) => r.status === 201,
    'setup create campaign: body': () =>
      isCampaign(c) &&
      c.daily_limit === 10 &&
      c.time_zone === 'Europe/Berlin' &&
      c.active === true &&
      c.available === 0 &&
      c.issued_total === 0 &&
      c.issued_today === 0 &&
      c.remaining_today === 10 &&
      c.starts_at === null &&
      c.ends_at === null,
  });
  mustStatus(res, 201, 'create campaign');
  return { runId, campaignId: c.id };
}

export default function (data) {
  const { runId, campaignId } = data;
  const admin = { headers: adminHeaders() };
  const client = { headers: clientHeaders() };
  const campaignUrl = `${BASE_URL}/v1/admin/campaigns/${campaignId}`;
  const claimsUrl = `${BASE_URL}/v1/campaigns/${campaignId}/claims`;
  const code = (n) => `SMOKE-${runId}-${n}`;

  group('ops', () => {
    for (const path of ['/healthz', '/readyz']) {
      const res = track(http.get(`${BASE_URL}${path}`));
      check(res, {
        [`GET ${path}: 200`]: (r) => r.status === 200,
        [`GET ${path}: status ok`]: (r) => (body(r) || {}).status === 'ok',
      });
    }
    const spec = track(http.get(`${BASE_URL}/openapi.yaml`));
    check(spec, {
      'GET /openapi.yaml: 200': (r) => r.status === 200,
      'GET /openapi.yaml: an OpenAPI document with the claim route': (r) =>
        /^openapi: /m.test(r.body) && r.body.includes('/v1/campaigns/{campaign_id}/claims'),
    });
    const docs = track(http.get(`${BASE_URL}/docs`));
    check(docs, {
      'GET /docs: 200': (r) => r.status === 200,
      'GET /docs: html': (r) => /html/i.test(r.headers['Content-Type'] || '') && /<html/i.test(r.body),
    });
    const none = track(http.get(`${BASE_URL}/no/such/route`));
    check(none, { 'unknown route: 404 JSON error': (r) => r.status === 404 && typeof errorCodeOf(r) === 'string' });
  });

  group('auth', () => {
    checkError(track(http.get(campaignUrl)), 401, 'unauthorized', 'admin GET without token');
    checkError(
      track(http.get(campaignUrl, { headers: { Authorization: `Bearer ${CLIENT_TOKEN}` } })),
      401,
      'unauthorized',
      'admin GET with the client token',
    );
    checkError(
      track(http.post(claimsUrl, JSON.stringify({ user_id: 'nobody' }), { headers: { 'Content-Type': 'application/json' } })),
      401,
      'unauthorized',
      'claim without token',
    );
    checkError(
      track(
        http.post(claimsUrl, JSON.stringify({ user_id: 'nobody' }), {
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ADMIN_TOKEN}x` },
        }),
      ),
      401,
      'unauthorized',
      'claim with a wrong token',
    );
  });

  group('campaigns', () => {
    const res = getCampaign(campaignId);
    const c = body(res);
    check(res, {
      'GET campaign: 200': (r) => r.status === 200,
      'GET campaign: body': () => isCampaign(c) && c.id === campaignId && c.daily_limit === 10 && c.available === 0,
    });
    checkError(getCampaign(randomUuid()), 404, 'campaign_not_found', 'GET unknown campaign');
    checkError(getCampaign('not-a-uuid'), 400, 'invalid_request', 'GET campaign with a bad uuid');
    checkError(
      track(http.post(`${BASE_URL}/v1/admin/campaigns`, JSON.stringify({ name: 'x', colour: 'red' }), admin)),
      400,
      'invalid_request',
      'create campaign with an unknown field',
    );
    checkError(
      track(http.post(`${BASE_URL}/v1/admin/campaigns`, JSON.stringify({ name: 'x', time_zone: 'Mars/Olympus' }), admin)),
      400,
      'invalid_request',
      'create campaign with a bad time zone',
    );
    checkError(
      track(http.post(`${BASE_URL}/v1/admin/campaigns`, '{"name": ', admin)),
      400,
      'invalid_request',
      'create campaign with broken JSON',
    );
    checkError(
      track(http.patch(campaignUrl, JSON.stringify({ name: 'renamed' }), admin)),
      400,
      'invalid_request',
      'PATCH campaign with an unknown field',
    );
    checkError(
      track(http.patch(`${BASE_URL}/v1/admin/campaigns/${randomUuid()}`, JSON.stringify({ active: true }), admin)),
      404,
      'campaign_not_found',
      'PATCH unknown campaign',
    );
  });

  let jsonBatchId;
  let csvBatchId;
  group('batches', () => {
    // JSON, text/plain and text/csv uploads.
    const json = track(
      http.post(
        `${campaignUrl}/batches`,
        JSON.stringify({ label: 'json batch', codes: [code(1), code(2), code(3)] }),
        admin,
      ),
    );
    const jb = body(json);
    check(json, {
      'load JSON batch: 201': (r) => r.status === 201,
      'load JSON batch: body': () =>
        jb !== null && UUID.test(jb.id) && jb.campaign_id === campaignId && jb.label === 'json batch' && jb.inserted === 3,
    });
    jsonBatchId = jb && jb.id;

    const text = loadTextBatch(campaignId, [code(4), code(5)], 'text batch');
    const tb = body(text);
    check(text, {
      'load text/plain batch: 201': (r) => r.status === 201,
      'load text/plain batch: body': () => tb !== null && tb.label === 'text batch' && tb.inserted === 2,
    });

    const csv = track(
      http.post(`${campaignUrl}/batches?label=csv`, `${code(6)}\r\n${code(7)}\r\n\r\n${code(8)}\r\n`, {
        headers: adminHeaders({ 'Content-Type': 'text/csv' }),
      }),
    );
    const cb = body(csv);
    check(csv, {
      'load text/csv batch: 201': (r) => r.status === 201,
      'load text/csv batch: body (CRLF, empty line skipped)': () => cb !== null && cb.label === 'csv' && cb.inserted === 3,
    });
    csvBatchId = cb && cb.id;

    // invalid_codes: line 2 has a space, line 3 is too long; nothing is written.
    const invalid = loadTextBatch(campaignId, [code(100), 'has space', 'x'.repeat(129), code(101)], 'bad');
    const ib = body(invalid);
    checkError(invalid, 400, 'invalid_codes', 'load batch with invalid lines');
    check(invalid, {
      'invalid_codes: problems name lines 2 and 3': () =>
        ib !== null &&
        ib.problem_count === 2 &&
        Array.isArray(ib.problems) &&
        ib.problems.length === 2 &&
        ib.problems[0].line === 2 &&
        ib.problems[1].line === 3 &&
        typeof ib.problems[0].code === 'string' &&
        typeof ib.problems[0].reason === 'string',
    });
    const invalidJson = track(
      http.post(`${campaignUrl}/batches`, JSON.stringify({ codes: [code(102), ''] }), admin),
    );
    checkError(invalidJson, 400, 'invalid_codes', 'load JSON batch with an empty code');

    // duplicate_codes: one code exists already, one repeats inside the batch.
    const dup = loadTextBatch(campaignId, [code(200), code(1), code(201), code(201)], 'dup');
    const db = body(dup);
    checkError(dup, 409, 'duplicate_codes', 'load batch with duplicate codes');
    check(dup, {
      'duplicate_codes: problems name line 2 (in campaign) and 4 (in batch)': () =>
        db !== null &&
        db.problem_count === 2 &&
        Array.isArray(db.problems) &&
        db.problems
          .map((p) => `${p.line}:${p.reason}`)
          .sort()
          .join(',') === '2:already_in_campaign,4:duplicate_in_batch',
    });
    checkError(
      track(http.post(`${campaignUrl}/batches`, JSON.stringify({ codes: [code(4)] }), admin)),
      409,
      'duplicate_codes',
      'load JSON batch with an existing code',
    );
    checkError(
      track(http.post(`${campaignUrl}/batches`, JSON.stringify({ codes: [code(300)], extra: 1 }), admin)),
      400,
      'invalid_request',
      'load JSON batch with an unknown field',
    );
    checkError(
      loadTextBatch(randomUuid(), [code(400)], 'nowhere'),
      404,
      'campaign_not_found',
      'load batch into an unknown campaign',
    );

    // Nothing of the refused batches was written.
    const after = body(getCampaign(campaignId));
    check(after, { 'refused batches wrote nothing: available == 8': (c) => c !== null && c.available === 8 });

    const got = track(http.get(`${campaignUrl}/batches/${jsonBatchId}`, admin));
    const g = body(got);
    check(got, {
      'GET batch: 200': (r) => r.status === 200,
      'GET batch: body': () =>
        g !== null &&
        g.id === jsonBatchId &&
        g.campaign_id === campaignId &&
        g.label === 'json batch' &&
        g.size === 3 &&
        g.available === 3 &&
        g.issued === 0 &&
        g.revoked === 0 &&
        g.revoked_at === null &&
        ISO.test(g.created_at),
    });
    checkError(
      track(http.get(`${campaignUrl}/batches/${randomUuid()}`, admin)),
      404,
      'batch_not_found',
      'GET unknown batch',
    );
  });

  group('revoke', () => {
    const res = track(http.post(`${campaignUrl}/batches/${csvBatchId}/revoke`, null, admin));
    const b = body(res);
    check(res, {
      'revoke batch: 200': (r) => r.status === 200,
      'revoke batch: all 3 revoked': () =>
        b !== null && b.id === csvBatchId && b.size === 3 && b.revoked === 3 && b.available === 0 && ISO.test(b.revoked_at),
    });
    const again = track(http.post(`${campaignUrl}/batches/${csvBatchId}/revoke`, null, admin));
    const a = body(again);
    check(again, {
      'revoke again: 200, unchanged': (r) => r.status === 200 && a !== null && a.revoked === 3 && a.revoked_at === b.revoked_at,
    });
    const c = body(getCampaign(campaignId));
    check(c, { 'after revoke: available == 5': (x) => x !== null && x.available === 5 });
  });

  group('claims', () => {
    const user = `smoke user ${runId}@example.com/é`; // needs URL-encoding in the GET path
    const first = claim(campaignId, user);
    const f = body(first);
    check(first, {
      'claim: 201': (r) => r.status === 201,
      'claim: body': () => isClaim(f, campaignId, user),
      'claim: no replay header': (r) => !r.headers['Idempotent-Replayed'],
      'claim: code from a live batch': () =>
        f !== null && [code(1), code(2), code(3), code(4), code(5)].includes(f.code),
    });

    const replay = claim(campaignId, user);
    const rb = body(replay);
    check(replay, {
      'claim again: 200': (r) => r.status === 200,
      'claim again: Idempotent-Replayed: true': (r) => r.headers['Idempotent-Replayed'] === 'true',
      'claim again: same claim': () => sameClaim(f, rb, 'replay'),
    });

    const lookup = getClaim(campaignId, user);
    const lb = body(lookup);
    check(lookup, {
      'GET claim: 200': (r) => r.status === 200,
      'GET claim: same claim': () => sameClaim(f, lb, 'GET claim'),
    });
    checkError(getClaim(campaignId, `never-claimed-${runId}`), 404, 'claim_not_found', 'GET claim of an unknown user');
    checkError(getClaim(randomUuid(), 'someone'), 404, 'campaign_not_found', 'GET claim in an unknown campaign');
    checkError(claim(randomUuid(), 'someone'), 404, 'campaign_not_found', 'claim in an unknown campaign');
    checkError(
      track(http.post(claimsUrl, JSON.stringify({}), client)),
      400,
      'invalid_request',
      'claim without user_id',
    );
    checkError(claim(campaignId, ' padded '), 400, 'invalid_request', 'claim with a padded user_id');
    checkError(claim(campaignId, 'u'.repeat(129)), 400, 'invalid_request', 'claim with a 129-char user_id');

    const stock = body(getCampaign(campaignId));
    check(stock, {
      'after claim: issued 1, available 4, remaining 9': (c) =>
        c !== null && c.issued_total === 1 && c.issued_today === 1 && c.available === 4 && c.remaining_today === 9,
    });
    const jb = body(track(http.get(`${campaignUrl}/batches/${jsonBatchId}`, admin)));
    check(jb, {
      'batch counts add up': (b) => b !== null && b.size === b.available + b.issued + b.revoked,
    });
  });

  group('limits and refusals', () => {
    // Daily limit down to what is issued: the next new user is refused with Retry-After.
    const lowered = track(http.patch(campaignUrl, JSON.stringify({ daily_limit: 1 }), admin));
    const lb = body(lowered);
    check(lowered, {
      'PATCH daily_limit 1: 200': (r) => r.status === 200,
      'PATCH daily_limit 1: body': () => isCampaign(lb) && lb.daily_limit === 1 && lb.remaining_today === 0,
    });
    const limited = claim(campaignId, `limited-${runId}`);
    checkError(limited, 409, 'daily_limit_reached', 'claim over the daily limit');
    check(limited, {
      'daily_limit_reached: Retry-After seconds': (r) => /^\d+$/.test(r.headers['Retry-After'] || '') && Number(r.headers['Retry-After']) > 0 && Number(r.headers['Retry-After']) <= 86400 + 3600,
    });

    // No limit: the same user gets a code.
    const unlimited = track(http.patch(campaignUrl, JSON.stringify({ daily_limit: null }), admin));
    check(unlimited, {
      'PATCH daily_limit null: 200 and no limit': (r) =>
        r.status === 200 && (body(r) || {}).daily_limit === null && (body(r) || {}).remaining_today === null,
    });
    check(claim(campaignId, `limited-${runId}`), { 'claim after lifting the limit: 201': (r) => r.status === 201 });

    // Inactive campaign.
    const off = track(http.patch(campaignUrl, JSON.stringify({ active: false }), admin));
    check(off, { 'PATCH active false: 200': (r) => r.status === 200 && (body(r) || {}).active === false });
    checkError(claim(campaignId, `inactive-${runId}`), 409, 'campaign_inactive', 'claim in an inactive campaign');
    const on = track(http.patch(campaignUrl, JSON.stringify({ active: true }), admin));
    check(on, { 'PATCH active true: 200': (r) => r.status === 200 && (body(r) || {}).active === true });

    // ends_at in the past: inactive too; null reopens it.
    const ended = track(http.patch(campaignUrl, JSON.stringify({ ends_at: '2000-01-01T00:00:00Z' }), admin));
    check(ended, { 'PATCH ends_at past: 200': (r) => r.status === 200 && (body(r) || {}).ends_at !== null });
    checkError(claim(campaignId, `ended-${runId}`), 409, 'campaign_inactive', 'claim after ends_at');
    const reopened = track(http.patch(campaignUrl, JSON.stringify({ ends_at: null }), admin));
    check(reopened, { 'PATCH ends_at null: 200': (r) => r.status === 200 && (body(r) || {}).ends_at === null });

    // Out of stock: a campaign with a single code.
    const small = body(createCampaign({ name: `k6 smoke small ${runId}` }));
    const smallId = small && small.id;
    check(loadTextBatch(smallId, [`ONLY-${runId}`], 'one'), { 'small campaign batch: 201': (r) => r.status === 201 });
    const only = claim(smallId, 'first');
    check(only, { 'small campaign first claim: 201 with the only code': (r) => r.status === 201 && (body(r) || {}).code === `ONLY-${runId}` });
    checkError(claim(smallId, 'second'), 409, 'out_of_stock', 'claim when out of stock');
    check(claim(smallId, 'first'), { 'replay still works out of stock: 200': (r) => r.status === 200 });
  });
  completed.add(1);
}

/** Same claim field by field; logs the difference when not. */
function sameClaim(a, b, what) {
  if (a === null || b === null) return false;
  const keys = ['claim_id', 'campaign_id', 'user_id', 'code', 'issued_at', 'day'];
  const diff = keys.filter((k) => a[k] !== b[k]);
  if (diff.length > 0) console.warn(`${what}: differs in ${diff.map((k) => `${k}: ${a[k]} vs ${b[k]}`).join('; ')}`);
  return diff.length === 0;
}

function errorCodeOf(res) {
  const b = body(res);
  return b && b.code;
}

export function handleSummary(data) {
  return summaryOutputs(data, 'smoke');
}

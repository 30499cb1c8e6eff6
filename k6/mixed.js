// A real day: several scenarios at once against one campaign.
//   claimers  new users claiming a code (201)
//   retriers  users claiming again: a known user re-claims (200, Idempotent-Replayed: true, the
//             very same claim), and every 4th iteration a new user double-submits two claims at
//             once (exactly one 201 and one 200, same claim)
//   lookups   seed users reading their claim (200, the same claim); every 10th one an unknown
//             user (404 claim_not_found)
//   operator  every BATCH_EVERY seconds loads a text/plain batch of BATCH_SIZE new codes, reads
//             the batch back and reads the campaign's stock
// Setup creates the campaign, loads enough stock for the whole run and claims SEED_USERS users
// whose claims the retriers and lookups know. Thresholds per scenario: p(99), checks == 100%,
// no failed requests; and no 5xx anywhere.
//
// Environment (besides BASE_URL / ADMIN_TOKEN / CLIENT_TOKEN / SUMMARY_PATH, see lib.js):
//   DURATION          seconds the scenarios run                       (default 60)
//   CLAIM_RATE        new-user claims/s                               (default 40)
//   RETRY_RATE        retry iterations/s                              (default 10)
//   LOOKUP_RATE       claim look-ups/s                                (default 20)
//   BATCH_EVERY       seconds between operator batches                (default 5)
//   BATCH_SIZE        codes per operator batch                        (default 500)
//   SEED_USERS        users claimed in setup                          (default 100)
//   DAILY_LIMIT       campaign daily limit (default: none; set it above what the run claims)
//   CLAIM_P99_MS / RETRY_P99_MS / LOOKUP_P99_MS / OPERATOR_P99_MS
//                     p(99) bounds in ms                  (default 250 / 250 / 100 / 2000)
//   MAX_DROPPED       dropped iterations allowed             (default 1% of the planned ones)
//   TIME_ZONE         campaign zone (default: an Etc/GMT zone where it is about noon now)
import { check } from 'k6';
import http from 'k6/http';
import { Counter, Gauge } from 'k6/metrics';
import {
  BASE_URL,
  TREND_STATS,
  adminHeaders,
  body,
  clientHeaders,
  claim,
  createCampaign,
  envNumber,
  getCampaign,
  getClaim,
  loadTextBatch,
  mustStatus,
  newRunId,
  noonTimeZone,
  summaryOutputs,
  track,
} from './lib.js';

const DURATION = envNumber('DURATION', 60);
const CLAIM_RATE = envNumber('CLAIM_RATE', 40);
const RETRY_RATE = envNumber('RETRY_RATE', 10);
const LOOKUP_RATE = envNumber('LOOKUP_RATE', 20);
const BATCH_EVERY = envNumber('BATCH_EVERY', 5);
const BATCH_SIZE = envNumber('BATCH_SIZE', 500);
const SEED_USERS = envNumber('SEED_USERS', 100);
const DAILY_LIMIT = __ENV.DAILY_LIMIT ? envNumber('DAILY_LIMIT', 0) : null;
const PLANNED = Math.ceil((CLAIM_RATE + RETRY_RATE + LOOKUP_RATE) * DURATION + DURATION / BATCH_EVERY);
const MAX_DROPPED = envNumber('MAX_DROPPED', Math.ceil(PLANNED * 0.01));
// New users claim in claimers and in every 4th retry iteration.
const PLANNED_NEW_CLAIMS = Math.ceil((CLAIM_RATE + RETRY_RATE / 4) * DURATION);
// Setup stock covers every planned claim with room to spare; operator batches come on top.
const INITIAL_CODES = envNumber('INITIAL_CODES', Math.ceil(PLANNED_NEW_CLAIMS * 1.3) + SEED_USERS);

if (DAILY_LIMIT !== null && DAILY_LIMIT < PLANNED_NEW_CLAIMS * 1.3 + SEED_USERS) {
  throw new Error(`DAILY_LIMIT ${DAILY_LIMIT} is too low for ~${PLANNED_NEW_CLAIMS} claims; this scenario must not hit it`);
}

const claimsCreated = new Counter('claims_created'); // 201s during the scenarios
const replays = new Counter('claims_replayed'); // 200 + Idempotent-Replayed
const lookupsFound = new Counter('lookups_found');
const batchesLoaded = new Counter('batches_loaded');
const codesLoaded = new Counter('codes_loaded');
const stockReadSkew = new Counter('stock_read_skew');
const finalIssuedTotal = new Gauge('final_issued_total');
const finalAvailable = new Gauge('final_available');

const scenario = (exec, rate, timeUnit, pre, max) => ({
  executor: 'constant-arrival-rate',
  exec,
  rate,
  timeUnit,
  duration: `${DURATION}s`,
  preAllocatedVUs: pre,
  maxVUs: max,
  gracefulStop: '10s',
});

export const options = {
  scenarios: {
    claimers: scenario('claimers', CLAIM_RATE, '1s', 20, 200),
    retriers: scenario('retriers', RETRY_RATE, '1s', 10, 100),
    lookups: scenario('lookups', LOOKUP_RATE, '1s', 10, 100),
    operator: scenario('operator', 1, `${BATCH_EVERY}s`, 1, 3),
  },
  thresholds: {
    'http_req_duration{scenario:claimers}': [`p(99)<${envNumber('CLAIM_P99_MS', 250)}`],
    'http_req_duration{scenario:retriers}': [`p(99)<${envNumber('RETRY_P99_MS', 250)}`],
    'http_req_duration{scenario:lookups}': [`p(99)<${envNumber('LOOKUP_P99_MS', 100)}`],
    'http_req_duration{scenario:operator}': [`p(99)<${envNumber('OPERATOR_P99_MS', 2000)}`],
    'checks{scenario:claimers}': ['rate==1.0'],
    'checks{scenario:retriers}': ['rate==1.0'],
    'checks{scenario:lookups}': ['rate==1.0'],
    'checks{scenario:operator}': ['rate==1.0'],
    'http_req_failed{scenario:claimers}': ['rate==0'],
    'http_req_failed{scenario:retriers}': ['rate==0'],
    'http_req_failed{scenario:lookups}': ['rate==0'],
    'http_req_failed{scenario:operator}': ['rate==0'],
    checks: ['rate==1.0'], // setup and teardown too
    server_errors: ['count==0'],
    dropped_iterations: [`count<=${MAX_DROPPED}`],
    batches_loaded: [`count>=${Math.max(1, Math.floor(DURATION / BATCH_EVERY) - 1)}`],
  },
  summaryTrendStats: TREND_STATS,
  setupTimeout: '180s',
  teardownTimeout: '60s',
};

const CLAIM_FIELDS = ['claim_id', 'campaign_id', 'user_id', 'code', 'issued_at', 'day'];
function sameClaim(a, b) {
  return a !== null && b !== null && CLAIM_FIELDS.every((k) => a[k] === b[k]);
}
function known(claimBody) {
  const c = {};
  for (const k of CLAIM_FIELDS) c[k] = claimBody[k];
  return c;
}

export function setup() {
  const runId = newRunId();
  const timeZone = noonTimeZone();
  const fields = { name: `k6 mixed ${runId}`, time_zone: timeZone };
  if (DAILY_LIMIT !== null) fields.daily_limit = DAILY_LIMIT;
  const campaign = mustStatus(createCampaign(fields), 201, 'create campaign');
  for (let start = 0; start < INITIAL_CODES; start += 1000) {
    const codes = [];
    for (let i = start; i < Math.min(INITIAL_CODES, start + 1000); i++) codes.push(`MIX-${runId}-s${i}`);
    mustStatus(loadTextBatch(campaign.id, codes, `setup ${start}`), 201, `load setup batch ${start}`);
  }
  const seeds = [];
  for (let i = 0; i < SEED_USERS; i++) {
    const user = `${runId}-seed-${i}`;
    seeds.push(known(mustStatus(claim(campaign.id, user), 201, `seed claim ${i}`)));
  }
  console.log(
    `campaign ${campaign.id} (${timeZone}, limit ${DAILY_LIMIT}): ${INITIAL_CODES} codes, ${SEED_USERS} seed claims; ` +
      `${DURATION}s of claims ${CLAIM_RATE}/s, retries ${RETRY_RATE}/s, look-ups ${LOOKUP_RATE}/s, ` +
      `a batch of ${BATCH_SIZE} every ${BATCH_EVERY}s`,
  );
  return { runId, campaignId: campaign.id, seeds, initialCodes: INITIAL_CODES };
}

// Per VU: claims this VU made and knows the answer of.
const mine = [];
function remember(c) {
  if (mine.length < 500) mine.push(c);
  else mine[Math.floor(Math.random() * mine.length)] = c;
}
function someKnownClaim(data) {
  const pool = mine.length > 0 && Math.random() < 0.5 ? mine : data.seeds;
  return pool[Math.floor(Math.random() * pool.length)];
}

const expect200or201 = http.expectedStatuses(200, 201);
const expect404 = http.expectedStatuses(404);

export function claimers(data) {
  const user = `${data.runId}-c-${__VU}-${__ITER}`;
  const res = claim(data.campaignId, user);
  const b = body(res);
  const ok = check(res, {
    'claimers: 201': (r) => r.status === 201,
    'claimers: a code for this user': () =>
      b !== null && b.user_id === user && b.campaign_id === data.campaignId && /^MIX-/.test(b.code || ''),
    'claimers: not a replay': (r) => !r.headers['Idempotent-Replayed'],
  });
  if (res.status === 201) claimsCreated.add(1);
  if (ok) remember(known(b));
  else if (res.status !== 201) console.warn(`claimers: ${res.status} ${String(res.body).slice(0, 200)}`);
}

export function retriers(data) {
  if (__ITER % 4 === 0) {
    // A new user whose frontend double-submits: two claims at once.
    const user = `${data.runId}-r-${__VU}-${__ITER}`;
    const req = {
      method: 'POST',
      url: `${BASE_URL}/v1/campaigns/${data.campaignId}/claims`,
      body: JSON.stringify({ user_id: user }),
      params: {
        headers: clientHeaders(),
        tags: { name: 'POST /v1/campaigns/{id}/claims' },
        responseCallback: expect200or201,
      },
    };
    const [a, b] = http.batch([req, req]).map(track);
    const [ba, bb] = [body(a), body(b)];
    const statuses = [a.status, b.status].sort().join(',');
    const created = a.status === 201 ? a : b;
    const replayed = a.status === 201 ? b : a;
    check(null, {
      'retriers double-submit: one 201 and one 200': () => statuses === '200,201',
      'retriers double-submit: the 200 says Idempotent-Replayed': () =>
        replayed.status === 200 && replayed.headers['Idempotent-Replayed'] === 'true',
      'retriers double-submit: the same claim twice': () => sameClaim(ba, bb) && ba.user_id === user,
    });
    if (statuses !== '200,201') console.warn(`double-submit ${user}: ${a.status} ${a.body} / ${b.status} ${b.body}`);
    if (created.status === 201) claimsCreated.add(1);
    if (replayed.status === 200) replays.add(1);
    if (ba !== null && ba.code) remember(known(ba));
    return;
  }
  const prior = someKnownClaim(data);
  const res = claim(data.campaignId, prior.user_id);
  const b = body(res);
  check(res, {
    'retriers: 200': (r) => r.status === 200,
    'retriers: Idempotent-Replayed: true': (r) => r.headers['Idempotent-Replayed'] === 'true',
    'retriers: the same claim as before': () => sameClaim(prior, b),
  });
  if (res.status === 200) replays.add(1);
  else console.warn(`retry ${prior.user_id}: ${res.status} ${String(res.body).slice(0, 200)}`);
}

export function lookups(data) {
  if (__ITER % 10 === 5) {
    // A user who never claimed.
    const res = getClaim(data.campaignId, `${data.runId}-nobody-${__VU}-${__ITER}`, {}, { responseCallback: expect404 });
    check(res, {
      'lookups unknown user: 404 claim_not_found': (r) => r.status === 404 && (body(r) || {}).code === 'claim_not_found',
    });
    return;
  }
  const prior = someKnownClaim(data);
  const res = getClaim(data.campaignId, prior.user_id);
  const b = body(res);
  check(res, {
    'lookups: 200': (r) => r.status === 200,
    'lookups: the same claim': () => sameClaim(prior, b),
  });
  if (res.status === 200) lookupsFound.add(1);
}

let lastIssuedTotal = 0;
export function operator(data) {
  const codes = [];
  for (let i = 0; i < BATCH_SIZE; i++) codes.push(`MIX-${data.runId}-op${__VU}-${__ITER}-${i}`);
  const loaded = loadTextBatch(data.campaignId, codes, `operator ${__VU}-${__ITER}`);
  const lb = body(loaded);
  check(loaded, {
    'operator load batch: 201': (r) => r.status === 201,
    'operator load batch: all inserted': () => lb !== null && lb.inserted === BATCH_SIZE,
  });
  if (loaded.status === 201) {
    batchesLoaded.add(1);
    codesLoaded.add(BATCH_SIZE);
    const got = track(
      http.get(`${BASE_URL}/v1/admin/campaigns/${data.campaignId}/batches/${lb.id}`, {
        headers: adminHeaders(),
        tags: { name: 'GET /v1/admin/campaigns/{id}/batches/{batch_id}' },
      }),
    );
    const gb = body(got);
    check(got, {
      'operator read batch: 200': (r) => r.status === 200,
      'operator read batch: counts add up to its size': () =>
        gb !== null && gb.size === BATCH_SIZE && gb.available + gb.issued + gb.revoked === gb.size && gb.revoked === 0,
    });
  } else {
    console.warn(`operator batch: ${loaded.status} ${String(loaded.body).slice(0, 300)}`);
  }
  const stock = getCampaign(data.campaignId);
  const sb = body(stock);
  check(stock, {
    'operator read stock: 200': (r) => r.status === 200,
    'operator read stock: codes left': () => sb !== null && sb.available > 0,
    'operator read stock: issued never goes down': () => sb !== null && sb.issued_total >= lastIssuedTotal,
  });
  // The whole run is one local day, so issued_today should equal issued_total. The service reads
  // the two counts in separate queries (no snapshot), so under load they may differ by the claims
  // committed in between: counted and logged, not failed.
  if (sb !== null && sb.issued_today !== sb.issued_total) {
    stockReadSkew.add(1);
    console.warn(`stock read skew: issued_today=${sb.issued_today} issued_total=${sb.issued_total}`);
  }
  if (sb !== null) lastIssuedTotal = sb.issued_total;
}

export function teardown(data) {
  const res = getCampaign(data.campaignId);
  const c = body(res);
  check(res, {
    'teardown GET campaign: 200': (r) => r.status === 200,
    'teardown: stock left': () => c !== null && c.available > 0,
    'teardown (at rest): issued_today == issued_total': () => c !== null && c.issued_today === c.issued_total,
  });
  if (c !== null) {
    finalIssuedTotal.add(c.issued_total);
    finalAvailable.add(c.available);
  }
  console.log(`final stock: ${JSON.stringify(c)}`);
}

export function handleSummary(data) {
  const m = data.metrics;
  const count = (name) => (m[name] ? m[name].values.count : 0);
  const value = (name) => (m[name] ? m[name].values.value : undefined);
  const issuedBy = count('claims_created') + SEED_USERS;
  const issued = value('final_issued_total');
  const loaded = INITIAL_CODES + count('codes_loaded');
  const available = value('final_available');
  const consistent = issued === issuedBy && available === loaded - issued;
  return summaryOutputs(data, 'mixed', [
    `result: ${count('claims_created')} new claims (+${SEED_USERS} seeds), ${count('claims_replayed')} replays, ` +
      `${count('lookups_found')} look-ups found, ${count('batches_loaded')} operator batches, ${count('dropped_iterations')} dropped`,
    `consistency: service issued_total=${issued} vs 201s seen=${issuedBy}; available=${available} vs loaded-issued=${
      loaded - issued
    } -> ${consistent ? 'OK' : 'MISMATCH'}`,
  ]);
}

// Campaign opening: a rush of distinct users claiming, ramped until the daily limit is hit
// and beyond. Passes when exactly DAILY_LIMIT claims were created (no more, no fewer), the rest
// were refused with 409 daily_limit_reached, nothing answered 5xx, p(99) stayed under P99_MS,
// and the service's own stock agrees at the end (issued_today == daily_limit).
//
// Environment (besides BASE_URL / ADMIN_TOKEN / CLIENT_TOKEN / SUMMARY_PATH, see lib.js):
//   DAILY_LIMIT   the campaign's daily limit                         (default 3000)
//   EXTRA_CODES   codes loaded beyond the limit                       (default 20% of the limit)
//   BATCH_SIZE    codes per text/plain batch loaded in setup          (default 1000)
//   START_RATE    claims/s at the start of the ramp                   (default 10)
//   PEAK_RATE     claims/s at the top of the ramp                     (default 150)
//   RAMP          seconds to ramp from START_RATE to PEAK_RATE        (default 20)
//   HOLD          seconds at PEAK_RATE                                (default 20)
//   P99_MS        p(99) bound for claims, ms                          (default 250)
//   MAX_DROPPED   dropped iterations allowed          (default 1% of the planned iterations)
//   PRE_VUS / MAX_VUS   VUs for the arrival-rate executor             (default 50 / 300)
//   TIME_ZONE     the campaign's zone (default: an Etc/GMT zone where it is about noon now,
//                 so the run never crosses the campaign's midnight)
import { check } from 'k6';
import http from 'k6/http';
import { Counter, Gauge } from 'k6/metrics';
import {
  BASE_URL,
  TREND_STATS,
  adminHeaders,
  body,
  claim,
  createCampaign,
  envNumber,
  getCampaign,
  loadTextBatch,
  mustStatus,
  newRunId,
  noonTimeZone,
  summaryOutputs,
} from './lib.js';

const LIMIT = envNumber('DAILY_LIMIT', 3000);
const EXTRA = envNumber('EXTRA_CODES', Math.ceil(LIMIT * 0.2));
const BATCH_SIZE = envNumber('BATCH_SIZE', 1000);
const START_RATE = envNumber('START_RATE', 10);
const PEAK_RATE = envNumber('PEAK_RATE', 150);
const RAMP = envNumber('RAMP', 20);
const HOLD = envNumber('HOLD', 20);
const P99_MS = envNumber('P99_MS', 250);
const PLANNED = Math.round(((START_RATE + PEAK_RATE) / 2) * RAMP + PEAK_RATE * HOLD);
const MAX_DROPPED = envNumber('MAX_DROPPED', Math.ceil(PLANNED * 0.01));

if (EXTRA < 1) throw new Error('EXTRA_CODES must be at least 1: the stock must exceed the daily limit');
if (PLANNED < LIMIT * 1.1) {
  throw new Error(
    `the ramp plans only ${PLANNED} claims for a limit of ${LIMIT}; raise PEAK_RATE/HOLD or lower DAILY_LIMIT`,
  );
}

const claimsCreated = new Counter('claims_created'); // 201s
const limitRefusals = new Counter('limit_refusals'); // 409 daily_limit_reached
const otherAnswers = new Counter('unexpected_answers'); // anything else
const finalIssuedToday = new Gauge('final_issued_today');
const finalIssuedTotal = new Gauge('final_issued_total');

export const options = {
  scenarios: {
    open: {
      executor: 'ramping-arrival-rate',
      startRate: START_RATE,
      timeUnit: '1s',
      preAllocatedVUs: envNumber('PRE_VUS', 50),
      maxVUs: envNumber('MAX_VUS', 300),
      stages: [
        { target: PEAK_RATE, duration: `${RAMP}s` },
        { target: PEAK_RATE, duration: `${HOLD}s` },
      ],
      gracefulStop: '10s',
    },
  },
  thresholds: {
    [`http_req_duration{scenario:open}`]: [`p(99)<${P99_MS}`],
    'http_req_failed{scenario:open}': ['rate==0'],
    checks: ['rate==1.0'],
    server_errors: ['count==0'],
    unexpected_answers: ['count==0'],
    claims_created: [`count==${LIMIT}`],
    limit_refusals: ['count>0'],
    final_issued_today: [`value==${LIMIT}`],
    final_issued_total: [`value==${LIMIT}`],
    dropped_iterations: [`count<=${MAX_DROPPED}`],
  },
  summaryTrendStats: TREND_STATS,
  setupTimeout: '180s',
  teardownTimeout: '60s',
};

// 201 and 409 are both expected answers here (409 once the limit is reached).
const expected = http.expectedStatuses(201, 409);

export function setup() {
  const runId = newRunId();
  const timeZone = noonTimeZone();
  const created = createCampaign({ name: `k6 campaign-open ${runId}`, daily_limit: LIMIT, time_zone: timeZone });
  const campaign = mustStatus(created, 201, 'create campaign');
  const total = LIMIT + EXTRA;
  const batches = [];
  for (let start = 0; start < total; start += BATCH_SIZE) {
    const codes = [];
    for (let i = start; i < Math.min(total, start + BATCH_SIZE); i++) codes.push(`OPEN-${runId}-${i}`);
    const res = loadTextBatch(campaign.id, codes, `open ${start}`);
    const b = mustStatus(res, 201, `load batch at ${start}`);
    if (b.inserted !== codes.length) throw new Error(`batch at ${start}: inserted ${b.inserted} of ${codes.length}`);
    batches.push(b.id);
  }
  const stock = mustStatus(getCampaign(campaign.id), 200, 'read campaign');
  if (stock.available !== total || stock.remaining_today !== LIMIT) {
    throw new Error(`stock before opening: ${JSON.stringify(stock)}`);
  }
  console.log(
    `campaign ${campaign.id} (${timeZone}): limit ${LIMIT}, ${total} codes in ${batches.length} batches; ` +
      `${PLANNED} claims planned, ${START_RATE}->${PEAK_RATE}/s over ${RAMP}s then ${HOLD}s`,
  );
  return { runId, campaignId: campaign.id, total, batches };
}

export default function (data) {
  const user = `${data.runId}-${__VU}-${__ITER}`;
  const res = claim(data.campaignId, user, {}, { responseCallback: expected });
  const b = body(res);
  if (res.status === 201) {
    claimsCreated.add(1);
    check(res, {
      'claim 201: the claim for this user with a code': () =>
        b !== null && b.user_id === user && b.campaign_id === data.campaignId && /^OPEN-/.test(b.code || ''),
    });
  } else if (res.status === 409 && b !== null && b.code === 'daily_limit_reached') {
    limitRefusals.add(1);
    check(res, {
      'claim 409 daily_limit_reached: Retry-After': (r) => /^\d+$/.test(r.headers['Retry-After'] || ''),
    });
  } else {
    otherAnswers.add(1, { status: String(res.status), code: (b && b.code) || '' });
    check(res, { 'claim: 201 or 409 daily_limit_reached': () => false });
    if (__ITER % 50 === 0) {
      console.warn(`unexpected answer ${res.status}: ${String(res.body).slice(0, 200)}`);
    }
  }
}

export function teardown(data) {
  const res = getCampaign(data.campaignId);
  const c = body(res);
  if (c !== null) {
    finalIssuedToday.add(c.issued_today);
    finalIssuedTotal.add(c.issued_total);
  }
  check(res, {
    'teardown GET campaign: 200': (r) => r.status === 200,
    'teardown: issued_today == daily_limit': () => c !== null && c.issued_today === LIMIT,
    'teardown: remaining_today == 0': () => c !== null && c.remaining_today === 0,
    'teardown: available == stock - limit': () => c !== null && c.available === data.total - LIMIT,
  });
  // Codes issued per batch add up to the limit too (a code handed out twice would not count twice).
  let issued = 0;
  for (const id of data.batches) {
    const b = body(
      http.get(`${BASE_URL}/v1/admin/campaigns/${data.campaignId}/batches/${id}`, {
        headers: adminHeaders(),
        tags: { name: 'GET /v1/admin/campaigns/{id}/batches/{batch_id}' },
      }),
    );
    issued += (b && b.issued) || 0;
  }
  check(issued, { 'teardown: codes issued across batches == daily_limit': (n) => n === LIMIT });
  console.log(`final stock: ${JSON.stringify(c)}; codes issued across batches: ${issued}`);
}

export function handleSummary(data) {
  const m = data.metrics;
  const count = (name) => (m[name] ? m[name].values.count : 0);
  return summaryOutputs(data, 'campaign-open', [
    `result: ${count('claims_created')} claims created (limit ${LIMIT}), ${count('limit_refusals')} refused ` +
      `daily_limit_reached, ${count('unexpected_answers')} unexpected, ${count('dropped_iterations')} dropped`,
  ]);
}

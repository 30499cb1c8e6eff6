// Drives a live giftcodes service through the client @hey-api/openapi-ts generated (fetch client,
// responses validated by the generated zod schemas) from openapi.yaml: no hand-written HTTP.
// Run by scripts/client-e2e.sh with the client generated into ./generated and
// GIFTCODES_E2E_BASE_URL / _ADMIN_TOKEN / _CLIENT_TOKEN / _MAX_UPLOAD_BYTES set.
import { createClient } from './generated/client';
import {
  claimCode,
  createCampaign,
  exportClaims,
  getBatch,
  getCampaign,
  getClaim,
  healthz,
  listAudit,
  listBatches,
  listCampaigns,
  listClaims,
  loadBatch,
  metrics,
  readyz,
  updateCampaign,
  uploadBatch,
} from './generated/sdk.gen';
import type { ErrorBody, ErrorCode } from './generated/types.gen';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const baseUrl = env('GIFTCODES_E2E_BASE_URL');
const admin = createClient({ baseUrl, auth: env('GIFTCODES_E2E_ADMIN_TOKEN') });
const client = createClient({ baseUrl, auth: env('GIFTCODES_E2E_CLIENT_TOKEN') });
const wrong = createClient({ baseUrl, auth: 'not-a-token' });
const maxUpload = Number(env('GIFTCODES_E2E_MAX_UPLOAD_BYTES'));
let steps = 0;

function step(name: string, condition: boolean): void {
  if (!condition) {
    console.error(`typescript: FAILED: ${name}`);
    process.exit(1);
  }
  steps += 1;
  console.log(`typescript: ok: ${name}`);
}

type Outcome = { data?: unknown; error?: unknown; response?: Response };

/** A typed error: the documented status with an ErrorBody carrying the expected code. */
function refused(name: string, outcome: Outcome, status: number, code: ErrorCode): ErrorBody {
  const body = outcome.error as ErrorBody | undefined;
  step(`${name} -> ${status} ${code}`, outcome.response?.status === status && body?.code === code);
  return body as ErrorBody;
}

const file = (codes: string[]): Blob => new Blob(codes.map((code) => `${code}\n`));

async function main(): Promise<void> {
  const run = Math.random().toString(36).slice(2, 10).toUpperCase();
  step('healthz', (await healthz({ client })).response?.status === 200);
  step('readyz', (await readyz({ client })).response?.status === 200);

  const created = await createCampaign({ client: admin, body: { name: 'TypeScript e2e' } });
  const campaign = created.data;
  step(
    'create_campaign with defaults -> 201, nulls, times ending in Z (zod-validated)',
    created.response.status === 201 &&
      campaign !== undefined &&
      campaign.daily_limit === null &&
      campaign.starts_at === null &&
      campaign.ends_at === null &&
      campaign.remaining_today === null &&
      campaign.created_at.endsWith('Z'),
  );
  if (!campaign) return;
  const path = { campaign_id: campaign.id };

  const jsonBatch = await loadBatch({
    client: admin,
    path,
    body: { label: 'json', codes: [`TS-${run}-1`, `TS-${run}-2`] },
  });
  step('load_batch JSON -> 201', jsonBatch.response.status === 201 && jsonBatch.data?.label === 'json');
  const codes = Array.from({ length: 100 }, (_, i) => `TS-${run}-${i + 3}`);
  const fileBatch = await uploadBatch({ client: admin, path, query: { label: 'file' }, body: file(codes) });
  step(
    'upload_batch streamed file (Blob, application/octet-stream) -> 201',
    fileBatch.response.status === 201 && Number(fileBatch.data?.inserted) === 100 && fileBatch.data?.label === 'file',
  );
  const batch = await getBatch({ client: admin, path: { ...path, batch_id: fileBatch.data!.id } });
  step(
    'get_batch -> counts, null revoked_at',
    Number(batch.data?.size) === 100 && Number(batch.data?.available) === 100 && batch.data?.revoked_at === null,
  );
  const limited = await updateCampaign({ client: admin, path, body: { daily_limit: 5 } });
  step('update_campaign daily_limit 5', limited.data?.daily_limit === 5);
  const unlimited = await updateCampaign({ client: admin, path, body: { daily_limit: null } });
  step('update_campaign daily_limit null -> no limit', unlimited.response.status === 200 && unlimited.data?.daily_limit === null);

  const first = await claimCode({ client, path, body: { user_id: 'user-42' } });
  step('claim_code new -> 201', first.response.status === 201 && first.response.headers.get('idempotent-replayed') === null);
  const again = await claimCode({ client, path, body: { user_id: 'user-42' } });
  step(
    'claim_code again -> 200, Idempotent-Replayed, same code',
    again.response.status === 200 &&
      again.response.headers.get('idempotent-replayed') === 'true' &&
      again.data?.code === first.data?.code &&
      again.data?.claim_id === first.data?.claim_id,
  );
  const read = await getClaim({ client, path: { ...path, user_id: 'user-42' } });
  step('get_claim -> the same claim', read.data?.code === first.data?.code && read.data?.day === first.data?.day);
  const odd = 'a/b ?#%..';
  const oddClaim = await claimCode({ client, path, body: { user_id: odd } });
  const oddRead = await getClaim({ client, path: { ...path, user_id: odd } });
  step('a user id with / ? # % reads back through the URL', oddClaim.response.status === 201 && oddRead.data?.code === oddClaim.data?.code);
  const stock = await getCampaign({ client: admin, path });
  step(
    'get_campaign stock',
    Number(stock.data?.available) === 100 && Number(stock.data?.issued_total) === 2 && stock.data?.remaining_today === null,
  );

  step('get_campaign outlook', Number(stock.data?.claims_per_hour) > 0 && typeof stock.data?.stock_runs_out_at === 'string');

  const listed = await listCampaigns({ client: admin, query: { active: true, limit: 500 } });
  step('list_campaigns active -> a page holding the campaign', !!listed.data?.items.some((c) => c.id === path.campaign_id));
  const batches = await listBatches({ client: admin, path, query: { limit: 1 } });
  step('list_batches -> one per page, a cursor to the next', batches.data?.items.length === 1 && typeof batches.data?.next_cursor === 'string');
  const rest = await listBatches({ client: admin, path, query: { cursor: batches.data!.next_cursor! } });
  step('list_batches next page -> last page', rest.data?.items.length === 1 && rest.data?.next_cursor === null);
  const day = first.data!.day;
  const claims = await listClaims({ client: admin, path, query: { from: day, to: day } });
  step('list_claims for the day -> both claims', claims.data?.items.length === 2 && claims.data?.next_cursor === null);
  const csv = await exportClaims({ client: admin, path, query: { from: day, to: day }, parseAs: 'text' });
  const lines = String(csv.data).trim().split('\n');
  step(
    'export_claims -> text/csv, a header and two rows',
    csv.response.status === 200 && lines[0] === 'claim_id,campaign_id,user_id,code,issued_at,day' && lines.length === 3,
  );
  const trail = await listAudit({ client: admin, query: { campaign_id: path.campaign_id } });
  const actions = trail.data?.items.map((e) => e.action) ?? [];
  step(
    'list_audit -> the campaign actions, newest first, with the token id',
    actions[actions.length - 1] === 'create_campaign' && !!trail.data?.items.every((e) => e.actor.startsWith('tok_')),
  );
  const scrape = await metrics({ client: admin, parseAs: 'text' });
  step('metrics -> Prometheus text with the claims counted', String(scrape.data).includes('giftcodes_claims_total{outcome="issued"}'));

  const missing = crypto.randomUUID();
  refused('list_claims to before from', await listClaims({ client: admin, path, query: { from: day, to: '2000-01-01' } }), 400, 'invalid_request');
  refused('list_batches unknown campaign', await listBatches({ client: admin, path: { campaign_id: missing } }), 404, 'campaign_not_found');
  refused('list_audit wrong token', await listAudit({ client: wrong }), 401, 'unauthorized');
  refused('metrics client token', await metrics({ client }), 401, 'unauthorized');
  refused('create_campaign blank name', await createCampaign({ client: admin, body: { name: '   ' } }), 400, 'invalid_request');
  refused('claim_code user id ..', await claimCode({ client, path, body: { user_id: '..' } }), 400, 'invalid_request');
  const bad = refused('load_batch invalid code', await loadBatch({ client: admin, path, body: { codes: ['ok-1', 'not ok'] } }), 400, 'invalid_codes');
  step('invalid_codes names the line', Number(bad.problem_count) === 1 && Number(bad.problems?.[0]?.line) === 2);
  refused('load_batch label query with JSON', await loadBatch({ client: admin, path, query: { label: 'no' }, body: { codes: ['x'] } }), 400, 'invalid_request');
  refused('get_campaign wrong token', await getCampaign({ client: wrong, path }), 401, 'unauthorized');
  refused('claim_code wrong token', await claimCode({ client: wrong, path, body: { user_id: 'u' } }), 401, 'unauthorized');
  refused('get_campaign unknown', await getCampaign({ client: admin, path: { campaign_id: missing } }), 404, 'campaign_not_found');
  refused('get_batch unknown', await getBatch({ client: admin, path: { ...path, batch_id: missing } }), 404, 'batch_not_found');
  refused('get_claim unknown user', await getClaim({ client, path: { ...path, user_id: 'nobody' } }), 404, 'claim_not_found');
  const dup = refused('load_batch duplicate', await loadBatch({ client: admin, path, body: { codes: [`TS-${run}-1`] } }), 409, 'duplicate_codes');
  step('duplicate_codes names the line', Number(dup.problem_count) === 1);
  const big = new Blob([new Uint8Array(maxUpload + 1).fill(88)]);
  refused('upload_batch over the upload limit', await uploadBatch({ client: admin, path, body: big }), 413, 'payload_too_large');

  const empty = await createCampaign({ client: admin, body: { name: 'TypeScript empty' } });
  refused('claim_code no stock', await claimCode({ client, path: { campaign_id: empty.data!.id }, body: { user_id: 'u' } }), 409, 'out_of_stock');
  const capped = await createCampaign({ client: admin, body: { name: 'TypeScript capped', daily_limit: 0 } });
  const cappedPath = { campaign_id: capped.data!.id };
  await loadBatch({ client: admin, path: cappedPath, body: { codes: [`TS-${run}-CAP`] } });
  const limit = await claimCode({ client, path: cappedPath, body: { user_id: 'u' } });
  refused('claim_code daily limit 0', limit, 409, 'daily_limit_reached');
  step('daily_limit_reached has Retry-After', Number(limit.response.headers.get('retry-after')) > 0);
  await updateCampaign({ client: admin, path: cappedPath, body: { active: false } });
  refused('claim_code inactive', await claimCode({ client, path: cappedPath, body: { user_id: 'u' } }), 409, 'campaign_inactive');

  console.log(`typescript client scenario: ${steps} steps passed`);
}

main().catch((err: unknown) => {
  console.error('typescript: FAILED:', err);
  process.exit(1);
});

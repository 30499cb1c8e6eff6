"""Drives a live giftcodes service through the client openapi-python-client generated from
openapi.yaml: no hand-written HTTP. Run by scripts/client-e2e.sh with the generated package
`giftcodes_client` on PYTHONPATH and GIFTCODES_E2E_BASE_URL / _ADMIN_TOKEN / _CLIENT_TOKEN /
_MAX_UPLOAD_BYTES set. Exits non-zero on the first step that does not hold."""

import io
import os
import sys
import uuid

from giftcodes_client import AuthenticatedClient
from giftcodes_client.api.batches import get_batch, list_batches, load_batch
from giftcodes_client.api.campaigns import (
    create_campaign,
    get_campaign,
    list_campaigns,
    update_campaign,
)
from giftcodes_client.api.claims import claim_code, get_claim
from giftcodes_client.api.ops import healthz, metrics, readyz
from giftcodes_client.api.reports import export_claims, list_audit, list_claims
from giftcodes_client.models import (
    AuditAction,
    AuditPage,
    Batch,
    BatchPage,
    CampaignPage,
    ClaimPage,
    BatchCreated,
    Campaign,
    CampaignPatch,
    Claim,
    ClaimRequest,
    ErrorBody,
    ErrorCode,
    NewBatchJson,
    NewCampaignRequest,
)
from giftcodes_client.types import File

BASE = os.environ["GIFTCODES_E2E_BASE_URL"]
ADMIN = AuthenticatedClient(
    base_url=BASE, token=os.environ["GIFTCODES_E2E_ADMIN_TOKEN"], raise_on_unexpected_status=True
)
CLIENT = AuthenticatedClient(
    base_url=BASE, token=os.environ["GIFTCODES_E2E_CLIENT_TOKEN"], raise_on_unexpected_status=True
)
WRONG = AuthenticatedClient(base_url=BASE, token="not-a-token", raise_on_unexpected_status=True)
MAX_UPLOAD = int(os.environ["GIFTCODES_E2E_MAX_UPLOAD_BYTES"])
STEPS = 0


def step(name, condition):
    global STEPS
    if not condition:
        print(f"python: FAILED: {name}", file=sys.stderr)
        sys.exit(1)
    STEPS += 1
    print(f"python: ok: {name}")


def refused(name, response, status, code):
    """A typed error: the documented status, parsed into ErrorBody with its ErrorCode."""
    body = response.parsed
    step(
        f"{name} -> {status} {code.value}",
        response.status_code == status and isinstance(body, ErrorBody) and body.code == code,
    )
    return body


def new_campaign(**fields):
    response = create_campaign.sync_detailed(client=ADMIN, body=NewCampaignRequest(**fields))
    assert response.status_code == 201, response.content
    return response.parsed


def codes_file(codes):
    return File(payload=io.BytesIO("".join(f"{c}\n" for c in codes).encode()), file_name="codes.txt")


def main():
    run = uuid.uuid4().hex[:8].upper()
    step("healthz", healthz.sync_detailed(client=CLIENT).status_code == 200)
    step("readyz", readyz.sync_detailed(client=CLIENT).status_code == 200)

    created = create_campaign.sync_detailed(client=ADMIN, body=NewCampaignRequest(name="Python e2e"))
    campaign = created.parsed
    step(
        "create_campaign with defaults -> 201, nulls read as None, times in UTC",
        created.status_code == 201
        and isinstance(campaign, Campaign)
        and campaign.daily_limit is None
        and campaign.starts_at is None
        and campaign.ends_at is None
        and campaign.remaining_today is None
        and campaign.time_zone == "UTC"
        and campaign.created_at.utcoffset().total_seconds() == 0,
    )
    cid = campaign.id

    json_batch = load_batch.sync_detailed(
        cid, client=ADMIN, body=NewBatchJson(label="json", codes=[f"PY-{run}-1", f"PY-{run}-2"])
    )
    step(
        "load_batch JSON -> 201",
        json_batch.status_code == 201
        and isinstance(json_batch.parsed, BatchCreated)
        and json_batch.parsed.inserted == 2
        and json_batch.parsed.label == "json",
    )
    file_batch = load_batch.sync_detailed(
        cid, client=ADMIN, body=codes_file([f"PY-{run}-{i}" for i in range(3, 103)]), label="file"
    )
    step(
        "load_batch streamed file (application/octet-stream, label query) -> 201",
        file_batch.status_code == 201
        and file_batch.parsed.inserted == 100
        and file_batch.parsed.label == "file",
    )
    batch = get_batch.sync_detailed(cid, file_batch.parsed.id, client=ADMIN).parsed
    step(
        "get_batch -> counts, null revoked_at",
        isinstance(batch, Batch)
        and batch.size == 100
        and batch.available == 100
        and batch.revoked_at is None
        and batch.label == "file",
    )
    limited = update_campaign.sync_detailed(cid, client=ADMIN, body=CampaignPatch(daily_limit=5))
    step("update_campaign daily_limit 5", limited.parsed.daily_limit == 5)
    unlimited = update_campaign.sync_detailed(cid, client=ADMIN, body=CampaignPatch(daily_limit=None))
    step(
        "update_campaign daily_limit null -> no limit",
        unlimited.status_code == 200 and unlimited.parsed.daily_limit is None,
    )

    first = claim_code.sync_detailed(cid, client=CLIENT, body=ClaimRequest(user_id="user-42"))
    step(
        "claim_code new -> 201",
        first.status_code == 201 and isinstance(first.parsed, Claim) and "idempotent-replayed" not in first.headers,
    )
    again = claim_code.sync_detailed(cid, client=CLIENT, body=ClaimRequest(user_id="user-42"))
    step(
        "claim_code again -> 200, Idempotent-Replayed, same code",
        again.status_code == 200
        and again.headers.get("idempotent-replayed") == "true"
        and again.parsed.code == first.parsed.code
        and again.parsed.claim_id == first.parsed.claim_id,
    )
    read = get_claim.sync_detailed(cid, "user-42", client=CLIENT).parsed
    step(
        "get_claim -> the same claim, day as a date",
        isinstance(read, Claim) and read.code == first.parsed.code and read.day == first.parsed.day,
    )
    odd = "a/b ?#%.."
    odd_claim = claim_code.sync_detailed(cid, client=CLIENT, body=ClaimRequest(user_id=odd))
    step(
        "a user id with / ? # % reads back through the URL",
        odd_claim.status_code == 201
        and get_claim.sync_detailed(cid, odd, client=CLIENT).parsed.code == odd_claim.parsed.code,
    )
    stock = get_campaign.sync_detailed(cid, client=ADMIN).parsed
    step(
        "get_campaign stock",
        stock.available == 100 and stock.issued_total == 2 and stock.issued_today == 2
        and stock.remaining_today is None,
    )

    step("get_campaign outlook", stock.claims_per_hour > 0 and stock.stock_runs_out_at is not None)

    listed = list_campaigns.sync_detailed(client=ADMIN, active=True, limit=500).parsed
    step(
        "list_campaigns active -> a page holding the campaign",
        isinstance(listed, CampaignPage) and any(c.id == cid for c in listed.items),
    )
    batches = list_batches.sync_detailed(cid, client=ADMIN, limit=1).parsed
    step(
        "list_batches -> one per page, a cursor to the next",
        isinstance(batches, BatchPage) and len(batches.items) == 1 and batches.next_cursor is not None,
    )
    rest = list_batches.sync_detailed(cid, client=ADMIN, cursor=batches.next_cursor).parsed
    step("list_batches next page -> the file batch, last page", rest.items[0].label == "file" and rest.next_cursor is None)
    day = first.parsed.day
    claims = list_claims.sync_detailed(cid, client=ADMIN, from_=day, to=day).parsed
    step(
        "list_claims for the day -> both claims",
        isinstance(claims, ClaimPage)
        and sorted(c.user_id for c in claims.items) == sorted(["user-42", odd])
        and claims.next_cursor is None,
    )
    csv = export_claims.sync_detailed(cid, client=ADMIN, from_=day, to=day)
    lines = csv.content.decode().splitlines()
    step(
        "export_claims -> text/csv, a header and two rows",
        csv.status_code == 200
        and csv.headers["content-type"].startswith("text/csv")
        and lines[0] == "claim_id,campaign_id,user_id,code,issued_at,day"
        and len(lines) == 3,
    )
    trail = list_audit.sync_detailed(client=ADMIN, campaign_id=cid).parsed
    step(
        "list_audit -> the campaign's actions, newest first, with the token's id",
        isinstance(trail, AuditPage)
        and trail.items[-1].action == AuditAction.CREATE_CAMPAIGN
        and trail.items[0].action == AuditAction.UPDATE_CAMPAIGN
        and all(e.actor.startswith("tok_") for e in trail.items),
    )
    scrape = metrics.sync_detailed(client=ADMIN)
    step(
        "metrics -> Prometheus text with the claims counted",
        scrape.status_code == 200 and b'giftcodes_claims_total{outcome="issued"}' in scrape.content,
    )

    missing = uuid.uuid4()
    refused("list_claims to before from", list_claims.sync_detailed(
        cid, client=ADMIN, from_=day, to=day.replace(year=day.year - 1)), 400, ErrorCode.INVALID_REQUEST)
    refused("list_campaigns bad cursor", list_campaigns.sync_detailed(
        client=ADMIN, cursor="nope"), 400, ErrorCode.INVALID_REQUEST)
    refused("list_batches unknown campaign", list_batches.sync_detailed(
        missing, client=ADMIN), 404, ErrorCode.CAMPAIGN_NOT_FOUND)
    refused("export_claims unknown campaign", export_claims.sync_detailed(
        missing, client=ADMIN, from_=day, to=day), 404, ErrorCode.CAMPAIGN_NOT_FOUND)
    refused("list_audit wrong token", list_audit.sync_detailed(client=WRONG), 401, ErrorCode.UNAUTHORIZED)
    refused("metrics client token", metrics.sync_detailed(client=CLIENT), 401, ErrorCode.UNAUTHORIZED)
    refused("create_campaign blank name", create_campaign.sync_detailed(
        client=ADMIN, body=NewCampaignRequest(name="   ")), 400, ErrorCode.INVALID_REQUEST)
    refused("claim_code user id ..", claim_code.sync_detailed(
        cid, client=CLIENT, body=ClaimRequest(user_id="..")), 400, ErrorCode.INVALID_REQUEST)
    bad = refused("load_batch invalid code", load_batch.sync_detailed(
        cid, client=ADMIN, body=NewBatchJson(codes=["ok-1", "not ok"])), 400, ErrorCode.INVALID_CODES)
    step("invalid_codes names the line", bad.problem_count == 1 and bad.problems[0].line == 2)
    refused("load_batch label query with JSON", load_batch.sync_detailed(
        cid, client=ADMIN, body=NewBatchJson(codes=["x"]), label="no"), 400, ErrorCode.INVALID_REQUEST)
    refused("get_campaign wrong token", get_campaign.sync_detailed(
        cid, client=WRONG), 401, ErrorCode.UNAUTHORIZED)
    refused("claim_code wrong token", claim_code.sync_detailed(
        cid, client=WRONG, body=ClaimRequest(user_id="u")), 401, ErrorCode.UNAUTHORIZED)
    refused("get_campaign unknown", get_campaign.sync_detailed(
        missing, client=ADMIN), 404, ErrorCode.CAMPAIGN_NOT_FOUND)
    refused("get_batch unknown", get_batch.sync_detailed(
        cid, missing, client=ADMIN), 404, ErrorCode.BATCH_NOT_FOUND)
    refused("get_claim unknown user", get_claim.sync_detailed(
        cid, "nobody", client=CLIENT), 404, ErrorCode.CLAIM_NOT_FOUND)
    dup = refused("load_batch duplicate", load_batch.sync_detailed(
        cid, client=ADMIN, body=NewBatchJson(codes=[f"PY-{run}-1"])), 409, ErrorCode.DUPLICATE_CODES)
    step("duplicate_codes names the line", dup.problem_count == 1)
    big = io.BytesIO(b"X" * (MAX_UPLOAD + 1))
    refused("load_batch over the upload limit", load_batch.sync_detailed(
        cid, client=ADMIN, body=File(payload=big)), 413, ErrorCode.PAYLOAD_TOO_LARGE)

    empty = new_campaign(name="Python empty")
    refused("claim_code no stock", claim_code.sync_detailed(
        empty.id, client=CLIENT, body=ClaimRequest(user_id="u")), 409, ErrorCode.OUT_OF_STOCK)
    capped = new_campaign(name="Python capped", daily_limit=0)
    load_batch.sync_detailed(capped.id, client=ADMIN, body=NewBatchJson(codes=[f"PY-{run}-CAP"]))
    limit = claim_code.sync_detailed(capped.id, client=CLIENT, body=ClaimRequest(user_id="u"))
    refused("claim_code daily limit 0", limit, 409, ErrorCode.DAILY_LIMIT_REACHED)
    step("daily_limit_reached has Retry-After", int(limit.headers["retry-after"]) > 0)
    update_campaign.sync_detailed(capped.id, client=ADMIN, body=CampaignPatch(active=False))
    refused("claim_code inactive", claim_code.sync_detailed(
        capped.id, client=CLIENT, body=ClaimRequest(user_id="u")), 409, ErrorCode.CAMPAIGN_INACTIVE)

    print(f"python client scenario: {STEPS} steps passed")


if __name__ == "__main__":
    main()

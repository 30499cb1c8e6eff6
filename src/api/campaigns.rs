//! Operator routes for campaigns: create, list, read with stock and outlook, change; each
//! change recorded in the audit trail.
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::campaigns;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::TransactionTrait;
use serde_json::json;
use uuid::Uuid;

use super::json_string::NameText;
use super::wire::{Nullable, PageLimit, UtcTime, parse_uuid_cursor};
use super::{AdminAuth, ApiTags, AppState, JsonString};
use crate::domain::{
    CampaignName, CampaignTimeZone, DailyLimit, RecentIssues, StockOutlook, local_day, outlook,
};
use crate::error::{AppError, operation_errors};
use crate::store;
use crate::store::audit::NewEntry;

/// A campaign to create.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewCampaignRequest {
    /// Display name, 1..=200 characters, not all white space.
    pub name: JsonString<NameText>,
    /// Most codes issued per local day (0..=1,000,000,000); omitted or null: no limit.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub daily_limit: Option<Nullable<i32>>,
    /// IANA time zone whose midnight starts a new day for the daily limit; omitted or null:
    /// `UTC`.
    pub time_zone: Option<Nullable<JsonString>>,
    /// Claims are refused before this instant (RFC 3339, 1970-01-01T00:00:01Z to
    /// 2038-01-19T03:14:07Z); omitted or null: open at once.
    pub starts_at: Option<Nullable<UtcTime>>,
    /// Claims are refused from this instant on (RFC 3339, 1970-01-01T00:00:01Z to
    /// 2038-01-19T03:14:07Z, after `starts_at`); omitted or null: open-ended.
    pub ends_at: Option<Nullable<UtcTime>>,
}

/// Changes to a campaign; omitted fields stay as they are.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CampaignPatch {
    /// New daily limit (0..=1,000,000,000); `null` removes the limit.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub daily_limit: MaybeUndefined<Nullable<i32>>,
    /// New end instant (RFC 3339, 1970-01-01T00:00:01Z to 2038-01-19T03:14:07Z, after
    /// `starts_at`); `null` makes the campaign open-ended.
    pub ends_at: MaybeUndefined<Nullable<UtcTime>>,
    /// Whether claims are accepted at all; omitted or null: unchanged.
    pub active: Option<Nullable<bool>>,
}

/// A campaign with its stock.
#[derive(Debug, Object)]
pub struct Campaign {
    /// Campaign id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Most codes issued per local day (0..=1,000,000,000); null: no limit.
    pub daily_limit: Nullable<i32>,
    /// IANA time zone of the campaign's days.
    pub time_zone: String,
    /// Claims are refused before this instant; null: open since creation.
    pub starts_at: Nullable<UtcTime>,
    /// Claims are refused from this instant on; null: open-ended.
    pub ends_at: Nullable<UtcTime>,
    /// Whether claims are accepted (subject to `starts_at` / `ends_at`).
    pub active: bool,
    /// When the campaign was created.
    pub created_at: UtcTime,
    /// When the campaign was last changed.
    pub updated_at: UtcTime,
    /// Codes that can still be issued.
    pub available: i64,
    /// Codes issued so far, all days together.
    pub issued_total: i64,
    /// Codes issued on the current local day.
    pub issued_today: i64,
    /// Codes that may still be issued today; null when there is no daily limit.
    pub remaining_today: Nullable<i64>,
    /// Codes issued per hour lately: over the last 24 hours, or since the campaign opened
    /// (created or `starts_at`) if that is later; computed from the day counters, taking
    /// yesterday's issues as spread evenly over the day.
    pub claims_per_hour: f64,
    /// When the available codes run out at `claims_per_hour`: now when none is left; null
    /// when nothing was issued lately (no rate to go by).
    pub stock_runs_out_at: Nullable<UtcTime>,
}

/// One page of campaigns.
#[derive(Debug, Object)]
pub struct CampaignPage {
    /// The campaigns, oldest first.
    pub items: Vec<Campaign>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Nullable<String>,
}

#[derive(ApiResponse)]
enum CampaignsListed {
    /// A page of campaigns with their stock.
    #[oai(status = 200)]
    Ok(Json<CampaignPage>),
}

#[derive(ApiResponse)]
enum CampaignCreated {
    /// The campaign was created.
    #[oai(status = 201)]
    Created(Json<Campaign>),
}

#[derive(ApiResponse)]
enum CampaignFound {
    /// The campaign and its stock.
    #[oai(status = 200)]
    Ok(Json<Campaign>),
}

operation_errors! {
    /// Why a campaign was not created.
    enum CreateCampaignError {
        bad_request: "`invalid_request`: malformed JSON, a wrong type, an unknown field, a bad \
                      name, time zone, limit or instant, or `ends_at` not after `starts_at`.",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
        payload_too_large: "`payload_too_large`: the body exceeds `GIFTCODES_MAX_BODY_BYTES`.",
        unsupported_media_type: "`unsupported_media_type`: the body is not JSON.",
    }
}

operation_errors! {
    /// Why campaigns could not be listed.
    enum ListCampaignsError {
        bad_request: "`invalid_request`: a malformed `cursor`, `limit` outside 1..=500, or \
                      `active` not a boolean.",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
    }
}

operation_errors! {
    /// Why a campaign could not be read.
    enum GetCampaignError {
        bad_request: "`invalid_request`: the campaign id is not a UUID.",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
        not_found: "`campaign_not_found`: no campaign has this id.",
    }
}

operation_errors! {
    /// Why a campaign was not changed.
    enum UpdateCampaignError {
        bad_request: "`invalid_request`: the campaign id is not a UUID, malformed JSON, a wrong \
                      type, an unknown field, a bad limit or instant, or `ends_at` not after \
                      `starts_at`.",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
        not_found: "`campaign_not_found`: no campaign has this id.",
        payload_too_large: "`payload_too_large`: the body exceeds `GIFTCODES_MAX_BODY_BYTES`.",
        unsupported_media_type: "`unsupported_media_type`: the body is not JSON.",
    }
}

pub struct CampaignsApi;

#[OpenApi(prefix_path = "/v1/admin/campaigns", tag = "ApiTags::Campaigns")]
impl CampaignsApi {
    /// Create a campaign
    ///
    /// Creates an active campaign with no codes yet; load codes with the batches route.
    #[oai(path = "/", method = "post", operation_id = "create_campaign")]
    async fn create(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// The campaign to create.
        body: Json<NewCampaignRequest>,
    ) -> Result<CampaignCreated, CreateCampaignError> {
        let new = parse_new_campaign(body.0)?;
        let now = state.clock.now();
        let txn = state.db.begin().await?;
        let campaign = store::campaigns::insert(&txn, new, now).await?;
        let changes = json!({
            "name": campaign.name,
            "daily_limit": campaign.daily_limit,
            "time_zone": campaign.time_zone,
            "starts_at": campaign.starts_at,
            "ends_at": campaign.ends_at,
        });
        let entry = NewEntry {
            actor: &auth.0,
            action: "create_campaign",
            campaign_id: campaign.id,
            batch_id: None,
            changes,
        };
        store::audit::record(&txn, entry, now).await?;
        txn.commit().await?;
        Ok(CampaignCreated::Created(Json(
            view_campaign(&state, campaign).await?,
        )))
    }

    /// List campaigns
    ///
    /// Campaigns in creation order with their stock, a page at a time: pass the answer's
    /// `next_cursor` as `cursor` for the next page.
    #[oai(path = "/", method = "get", operation_id = "list_campaigns")]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Only campaigns whose `active` flag is this; omitted: all.
        active: Query<Option<bool>>,
        /// The `next_cursor` of the previous page; omitted: the first page.
        cursor: Query<Option<String>>,
        /// Campaigns per page, 1..=500; omitted: 100.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> Result<CampaignsListed, ListCampaignsError> {
        let after = parse_uuid_cursor(cursor.0.as_deref())?;
        let limit = PageLimit::new(limit.0);
        let mut page = store::campaigns::page(&state.db, active.0, after, limit.fetch()).await?;
        let next_cursor = limit.next_cursor(&mut page, |last| last.id.to_string());
        Ok(CampaignsListed::Ok(Json(CampaignPage {
            items: view_campaigns(&state, page).await?,
            next_cursor: next_cursor.into(),
        })))
    }

    /// Read a campaign
    ///
    /// The campaign with its stock: available codes, codes issued in all and today, and what
    /// today's limit still allows.
    #[oai(path = "/:campaign_id", method = "get", operation_id = "get_campaign")]
    async fn get(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
    ) -> Result<CampaignFound, GetCampaignError> {
        let campaign = find_campaign(&state, campaign_id.0).await?;
        Ok(CampaignFound::Ok(Json(
            view_campaign(&state, campaign).await?,
        )))
    }

    /// Change a campaign
    ///
    /// Changes the daily limit, the end instant or the active flag. A lower limit takes effect
    /// for the next claims; codes already issued stay issued.
    #[oai(
        path = "/:campaign_id",
        method = "patch",
        operation_id = "update_campaign"
    )]
    async fn update(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// The fields to change.
        body: Json<CampaignPatch>,
    ) -> Result<CampaignFound, UpdateCampaignError> {
        let changes = parse_patch(body.0)?;
        let current = find_campaign(&state, campaign_id.0).await?;
        if let (Some(starts), Some(Some(ends))) = (current.starts_at, changes.ends_at)
            && ends <= starts
        {
            return Err(invalid("ends_at must be after starts_at").into());
        }
        let now = state.clock.now();
        let before = current.clone();
        let txn = state.db.begin().await?;
        let campaign = store::campaigns::update(&txn, current, changes, now).await?;
        let entry = NewEntry {
            actor: &auth.0,
            action: "update_campaign",
            campaign_id: campaign.id,
            batch_id: None,
            changes: patch_changes(&before, &campaign),
        };
        store::audit::record(&txn, entry, now).await?;
        txn.commit().await?;
        Ok(CampaignFound::Ok(Json(
            view_campaign(&state, campaign).await?,
        )))
    }
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::InvalidRequest(message.into())
}

/// The instants every supported database stores faithfully (MySQL's and MariaDB's timestamp
/// range); anything outside is refused rather than stored as NULL.
fn storable_instant(field: &str, instant: DateTime<Utc>) -> Result<DateTime<Utc>, AppError> {
    let first = DateTime::from_timestamp(1, 0).expect("valid instant");
    let last = DateTime::from_timestamp(i64::from(i32::MAX), 0).expect("valid instant");
    if instant < first || instant > last {
        return Err(invalid(format!(
            "{field} must be between 1970-01-01T00:00:01Z and 2038-01-19T03:14:07Z"
        )));
    }
    Ok(instant)
}

/// The value of an optional, nullable request field (omitted and `null` alike: `None`).
fn given<T>(field: Option<Nullable<T>>) -> Option<T> {
    field.and_then(|nullable| nullable.0)
}

fn parse_new_campaign(body: NewCampaignRequest) -> Result<store::campaigns::NewCampaign, AppError> {
    let starts_at = given(body.starts_at)
        .map(|t| storable_instant("starts_at", t.0))
        .transpose()?;
    let ends_at = given(body.ends_at)
        .map(|t| storable_instant("ends_at", t.0))
        .transpose()?;
    if let (Some(starts), Some(ends)) = (starts_at, ends_at)
        && ends <= starts
    {
        return Err(invalid("ends_at must be after starts_at"));
    }
    let time_zone = given(body.time_zone);
    Ok(store::campaigns::NewCampaign {
        name: CampaignName::parse(body.name.as_str()).map_err(invalid)?,
        daily_limit: given(body.daily_limit)
            .map(|limit| DailyLimit::parse(limit.into()))
            .transpose()
            .map_err(invalid)?,
        time_zone: CampaignTimeZone::parse(time_zone.as_ref().map_or("UTC", JsonString::as_str))
            .map_err(invalid)?,
        starts_at,
        ends_at,
    })
}

fn parse_patch(body: CampaignPatch) -> Result<store::campaigns::CampaignChanges, AppError> {
    let daily_limit = match body.daily_limit {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null | MaybeUndefined::Value(Nullable(None)) => Some(None),
        MaybeUndefined::Value(Nullable(Some(limit))) => {
            Some(Some(DailyLimit::parse(limit.into()).map_err(invalid)?))
        }
    };
    let ends_at = match body.ends_at {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null | MaybeUndefined::Value(Nullable(None)) => Some(None),
        MaybeUndefined::Value(Nullable(Some(ends))) => {
            Some(Some(storable_instant("ends_at", ends.0)?))
        }
    };
    Ok(store::campaigns::CampaignChanges {
        daily_limit,
        ends_at,
        active: given(body.active),
    })
}

/// The campaign `id`, or 404 `campaign_not_found`.
pub(super) async fn find_campaign(
    state: &AppState,
    id: Uuid,
) -> Result<campaigns::Model, AppError> {
    store::campaigns::find(&state.db, id)
        .await?
        .ok_or(AppError::CampaignNotFound)
}

/// What a PATCH changed: `{field: {"from": old, "to": new}}` for each field that differs.
fn patch_changes(before: &campaigns::Model, after: &campaigns::Model) -> serde_json::Value {
    let mut changed = serde_json::Map::new();
    let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            changed.insert(field.to_owned(), json!({ "from": from, "to": to }));
        }
    };
    note(
        "daily_limit",
        json!(before.daily_limit),
        json!(after.daily_limit),
    );
    note("ends_at", json!(before.ends_at), json!(after.ends_at));
    note("active", json!(before.active), json!(after.active));
    serde_json::Value::Object(changed)
}

/// The campaign's time zone (validated when it was created).
pub(super) fn time_zone_of(campaign: &campaigns::Model) -> Result<Tz, AppError> {
    CampaignTimeZone::parse(&campaign.time_zone)
        .map(|tz| tz.tz())
        .map_err(|err| {
            tracing::error!(campaign_id = %campaign.id, %err, "stored time zone does not parse");
            AppError::Internal
        })
}

/// The local day before the campaign's current day: the earliest day counter its outlook
/// reads.
pub(super) fn yesterday_of(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    local_day(now, tz) - Duration::days(1)
}

/// A campaign's day and outlook figures from its available codes and its day counters.
pub(super) struct DayStock {
    pub issued_today: i64,
    pub remaining_today: Option<i64>,
    pub outlook: StockOutlook,
}

pub(super) fn day_stock(
    campaign: &campaigns::Model,
    tz: Tz,
    now: DateTime<Utc>,
    available: i64,
    counters: &HashMap<(Uuid, NaiveDate), i64>,
) -> DayStock {
    let today = local_day(now, tz);
    let counted = |day| counters.get(&(campaign.id, day)).copied().unwrap_or(0);
    let issued_today = counted(today);
    let opened_at = campaign.starts_at.map_or(campaign.created_at, |starts| {
        starts.max(campaign.created_at)
    });
    let recent = RecentIssues {
        opened_at,
        today: issued_today,
        yesterday: counted(yesterday_of(now, tz)),
        available,
    };
    DayStock {
        issued_today,
        remaining_today: campaign
            .daily_limit
            .map(|limit| (i64::from(limit) - issued_today).max(0)),
        outlook: outlook(now, tz, recent),
    }
}

async fn view_campaign(state: &AppState, campaign: campaigns::Model) -> Result<Campaign, AppError> {
    let mut views = view_campaigns(state, vec![campaign]).await?;
    views.pop().ok_or(AppError::Internal)
}

/// The campaigns with their stock, all counts read in one snapshot.
async fn view_campaigns(
    state: &AppState,
    list: Vec<campaigns::Model>,
) -> Result<Vec<Campaign>, AppError> {
    let now = state.database_now().await?;
    let zones = list
        .iter()
        .map(time_zone_of)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<Uuid> = list.iter().map(|c| c.id).collect();
    let since = zones
        .iter()
        .map(|tz| yesterday_of(now, *tz))
        .min()
        .unwrap_or_else(|| now.date_naive());
    let snapshot = store::read_snapshot(&state.db).await?;
    let counts = store::stock::campaign_counts(&snapshot, &ids).await?;
    let counters = store::stock::day_counters_since(&snapshot, &ids, since).await?;
    snapshot.commit().await?;
    Ok(list
        .into_iter()
        .zip(zones)
        .map(|(campaign, tz)| {
            let counts = counts.get(&campaign.id).copied().unwrap_or_default();
            let stock = day_stock(&campaign, tz, now, counts.available, &counters);
            Campaign {
                id: campaign.id,
                name: campaign.name,
                daily_limit: campaign.daily_limit.into(),
                time_zone: campaign.time_zone,
                starts_at: campaign.starts_at.map(UtcTime).into(),
                ends_at: campaign.ends_at.map(UtcTime).into(),
                active: campaign.active,
                created_at: UtcTime(campaign.created_at),
                updated_at: UtcTime(campaign.updated_at),
                available: counts.available,
                issued_total: counts.issued,
                issued_today: stock.issued_today,
                remaining_today: stock.remaining_today.into(),
                claims_per_hour: stock.outlook.claims_per_hour,
                stock_runs_out_at: stock.outlook.runs_out_at.map(UtcTime).into(),
            }
        })
        .collect())
}

//! Operator reports: the claims a campaign issued over a range of days (JSON pages, or one
//! streamed CSV), and the audit trail of operator actions.
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use futures_util::stream;
use poem::Body;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::campaigns::find_campaign;
use super::claims::Claim;
use super::wire::{Csv, Day, Nullable, PageLimit, UtcTime, csv_field};
use super::{AdminAuth, ApiTags, AppState};
use crate::error::{AppError, operation_errors};
use crate::store;
use crate::store::codes::{ClaimCursor, IssuedClaim};

/// Claims read per statement while a CSV export streams: the export holds about one page
/// (~2 MB) at a time, whatever its length.
const CSV_PAGE: u64 = 10_000;

/// One page of a campaign's claims.
#[derive(Debug, Object)]
pub struct ClaimPage {
    /// The claims, by local day and then in the campaign's code order.
    pub items: Vec<Claim>,
    /// Pass as `cursor` (with the same `from` and `to`) for the next page; null on the last.
    pub next_cursor: Nullable<String>,
}

#[derive(ApiResponse)]
enum ClaimsListed {
    /// A page of claims.
    #[oai(status = 200)]
    Ok(Json<ClaimPage>),
}

#[derive(ApiResponse)]
enum ClaimsExported {
    /// Every claim of the range as CSV with a header line:
    /// `claim_id,campaign_id,user_id,code,issued_at,day` (RFC 4180 quoting), streamed.
    #[oai(status = 200)]
    Ok(Csv),
}

operation_errors! {
    /// Why claims could not be listed or exported.
    enum ClaimsReportError {
        bad_request: "`invalid_request`: the campaign id is not a UUID, `from` or `to` is not a \
                      `YYYY-MM-DD` day, `to` is before `from`, a malformed `cursor`, or `limit` \
                      outside 1..=1000.",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
        not_found: "`campaign_not_found`: no campaign has this id.",
    }
}

/// What an operator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum AuditAction {
    CreateCampaign,
    UpdateCampaign,
    LoadBatch,
    RevokeBatch,
}

impl AuditAction {
    fn parse(stored: &str) -> Option<Self> {
        Some(match stored {
            "create_campaign" => Self::CreateCampaign,
            "update_campaign" => Self::UpdateCampaign,
            "load_batch" => Self::LoadBatch,
            "revoke_batch" => Self::RevokeBatch,
            _ => return None,
        })
    }
}

/// One operator action.
#[derive(Debug, Object)]
pub struct AuditEntry {
    /// Position in the trail (later actions have higher ids).
    pub id: i64,
    /// When it was done.
    pub at: UtcTime,
    /// Which admin token did it: `tok_` and 12 hex digits of the token's SHA-256 (the service
    /// logs its own admin token's id at start); never the token.
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// The campaign it concerned.
    pub campaign_id: Uuid,
    /// The batch it concerned (`load_batch`, `revoke_batch`); null otherwise.
    pub batch_id: Nullable<Uuid>,
    /// What changed: the new campaign's fields (`create_campaign`), `{field: {from, to}}` for
    /// each changed field (`update_campaign`), `{label, inserted}` (`load_batch`), or
    /// `{revoked_codes}` (`revoke_batch`).
    pub changes: serde_json::Value,
}

/// One page of the audit trail.
#[derive(Debug, Object)]
pub struct AuditPage {
    /// The entries, newest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Nullable<String>,
}

#[derive(ApiResponse)]
enum AuditListed {
    /// A page of the audit trail.
    #[oai(status = 200)]
    Ok(Json<AuditPage>),
}

operation_errors! {
    /// Why the audit trail could not be read.
    enum AuditError {
        bad_request: "`invalid_request`: `campaign_id` is not a UUID, a malformed `cursor`, or \
                      `limit` outside 1..=500.",
        unauthorized: "`unauthorized`: the admin bearer token is missing or wrong.",
    }
}

pub struct ReportsApi;

#[OpenApi(prefix_path = "/v1/admin", tag = "ApiTags::Reports")]
impl ReportsApi {
    /// List a campaign's claims
    ///
    /// The claims the campaign issued on its local days `from` through `to`, a page at a time,
    /// ordered by day: pass the answer's `next_cursor` as `cursor` for the next page. A day
    /// still in progress may gain claims between pages; reconcile closed days.
    #[oai(
        path = "/campaigns/:campaign_id/claims",
        method = "get",
        operation_id = "list_claims"
    )]
    // poem-openapi reads each parameter from the handler's signature.
    #[allow(clippy::too_many_arguments)]
    async fn list_claims(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// First local day (campaign time zone), `YYYY-MM-DD`.
        from: Query<Day>,
        /// Last local day, `YYYY-MM-DD`, not before `from`.
        to: Query<Day>,
        /// The `next_cursor` of the previous page; omitted: the first page.
        cursor: Query<Option<String>>,
        /// Claims per page, 1..=1000; omitted: 100.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<ClaimsListed, ClaimsReportError> {
        let range = DayRange::parse(from.0, to.0)?;
        let after = match cursor.0.as_deref() {
            Some(text) => parse_claim_cursor(text)?,
            None => range.start(),
        };
        find_campaign(&state, campaign_id.0).await?;
        let limit = PageLimit::new(limit.0);
        let mut rows = store::codes::issued_page(
            &state.db,
            campaign_id.0,
            range.from,
            range.to,
            after,
            limit.fetch(),
        )
        .await?;
        let next_cursor = limit.next_cursor(&mut rows, |(cursor, _)| {
            format!("{}_{}", cursor.day.format("%Y-%m-%d"), cursor.id)
        });
        Ok(ClaimsListed::Ok(Json(ClaimPage {
            items: rows.into_iter().map(|(_, claim)| claim.into()).collect(),
            next_cursor: next_cursor.into(),
        })))
    }

    /// Export a campaign's claims as CSV
    ///
    /// Every claim the campaign issued on its local days `from` through `to`, as one CSV
    /// document streamed while it is read (any length, in flat memory). If the database fails
    /// midway the connection is cut, so a partial export never looks complete. A day still in
    /// progress may gain claims meanwhile; reconcile closed days.
    #[oai(
        path = "/campaigns/:campaign_id/claims.csv",
        method = "get",
        operation_id = "export_claims"
    )]
    async fn export_claims(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// First local day (campaign time zone), `YYYY-MM-DD`.
        from: Query<Day>,
        /// Last local day, `YYYY-MM-DD`, not before `from`.
        to: Query<Day>,
    ) -> Result<ClaimsExported, ClaimsReportError> {
        let range = DayRange::parse(from.0, to.0)?;
        find_campaign(&state, campaign_id.0).await?;
        let body = csv_export(state.db.clone(), campaign_id.0, range);
        Ok(ClaimsExported::Ok(Csv(body)))
    }

    /// Read the audit trail
    ///
    /// Operator actions (campaign created or changed, batch loaded or revoked), newest first,
    /// a page at a time: when, which admin token (its id), and what changed.
    #[oai(path = "/audit", method = "get", operation_id = "list_audit")]
    async fn list_audit(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// Only this campaign's actions; omitted: all.
        campaign_id: Query<Option<Uuid>>,
        /// The `next_cursor` of the previous page; omitted: the newest page.
        cursor: Query<Option<String>>,
        /// Entries per page, 1..=500; omitted: 100.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
    ) -> Result<AuditListed, AuditError> {
        let before = cursor
            .0
            .as_deref()
            .map(|text| text.parse::<i64>().map_err(|_| bad_cursor()))
            .transpose()?;
        let limit = PageLimit::new(limit.0);
        let mut rows = store::audit::page(&state.db, campaign_id.0, before, limit.fetch()).await?;
        let next_cursor = limit.next_cursor(&mut rows, |last| last.id.to_string());
        let items = rows
            .into_iter()
            .map(|row| {
                let action = AuditAction::parse(&row.action).ok_or_else(|| {
                    tracing::error!(id = row.id, action = %row.action, "unknown audit action");
                    AppError::Internal
                })?;
                Ok(AuditEntry {
                    id: row.id,
                    at: UtcTime(row.at),
                    actor: row.actor,
                    action,
                    campaign_id: row.campaign_id,
                    batch_id: row.batch_id.into(),
                    changes: serde_json::from_str(&row.changes).unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(AuditListed::Ok(Json(AuditPage {
            items,
            next_cursor: next_cursor.into(),
        })))
    }
}

fn bad_cursor() -> AppError {
    AppError::InvalidRequest("cursor is not one this service gave".into())
}

/// Local days `from..=to`.
#[derive(Debug, Clone, Copy)]
struct DayRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl DayRange {
    fn parse(from: Day, to: Day) -> Result<Self, AppError> {
        if to.0 < from.0 {
            return Err(AppError::InvalidRequest(
                "to must not be before from".into(),
            ));
        }
        Ok(Self {
            from: from.0,
            to: to.0,
        })
    }

    /// A cursor before every claim of the range.
    fn start(self) -> ClaimCursor {
        ClaimCursor {
            day: self.from - Duration::days(1),
            id: i64::MAX,
        }
    }
}

/// `YYYY-MM-DD_<id>`, as `list_claims` writes it.
fn parse_claim_cursor(text: &str) -> Result<ClaimCursor, AppError> {
    let (day, id) = text.split_once('_').ok_or_else(bad_cursor)?;
    Ok(ClaimCursor {
        day: NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad_cursor())?,
        id: id.parse().map_err(|_| bad_cursor())?,
    })
}

/// The CSV document, read a page at a time as the client takes it.
fn csv_export(db: DatabaseConnection, campaign_id: Uuid, range: DayRange) -> Body {
    let header = b"claim_id,campaign_id,user_id,code,issued_at,day\n".to_vec();
    let first = Some((Some(header), range.start()));
    let pages = stream::unfold(first, move |state| {
        let db = db.clone();
        async move {
            let (header, after) = state?;
            let rows = match store::codes::issued_page(
                &db,
                campaign_id,
                range.from,
                range.to,
                after,
                CSV_PAGE,
            )
            .await
            {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::error!(%campaign_id, error = %err, "claims export failed midway");
                    return Some((Err(std::io::Error::other(err)), None));
                }
            };
            let mut out = header.unwrap_or_default();
            out.reserve(rows.len() * 160);
            for (_, claim) in &rows {
                csv_row(&mut out, claim);
            }
            let next = (rows.len() as u64 == CSV_PAGE)
                .then(|| rows.last().map(|(cursor, _)| (None, *cursor)))
                .flatten();
            if out.is_empty() {
                return None;
            }
            Some((Ok(out), next))
        }
    });
    Body::from_bytes_stream(pages)
}

fn csv_row(out: &mut Vec<u8>, claim: &IssuedClaim) {
    use std::io::Write;
    let issued_at = UtcTime(claim.issued_at);
    let issued_at = poem_openapi::types::ToJSON::to_json(&issued_at);
    let _ = write!(out, "{},{},", claim.claim_id, claim.campaign_id);
    csv_field(out, &claim.user_id);
    out.push(b',');
    csv_field(out, &claim.code);
    let _ = writeln!(
        out,
        ",{},{}",
        issued_at.as_ref().and_then(|v| v.as_str()).unwrap_or(""),
        claim.day.format("%Y-%m-%d")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_cursor_reads_back_what_a_page_wrote() {
        let cursor = parse_claim_cursor("2026-11-23_42").unwrap();
        assert_eq!(cursor.id, 42);
        assert_eq!(cursor.day.to_string(), "2026-11-23");
        for bad in ["", "2026-11-23", "x_1", "2026-11-23_x"] {
            assert!(parse_claim_cursor(bad).is_err(), "{bad}");
        }
    }
}

//! Client routes: claim a code for a user, read a user's claim.
use std::sync::Arc;

use poem::web::{Data, RemoteAddr};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::campaigns::find_campaign;
use super::json_string::UserIdText;
use super::wire::{Day, UtcTime};
use super::{ApiTags, AppState, ClientAuth, JsonString};
use crate::claim::{ClaimOutcome, ConnectionKey, IssuedClaim};
use crate::domain::UserId;
use crate::error::{AppError, operation_errors};
use crate::store::codes::issued_to_users;

/// Who asks for a code.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The frontend's id of the user: 1..=128 characters, no control characters, no leading
    /// or trailing white space, not `.` or `..` (it must survive a URL path, where it is read
    /// back). One code per user per campaign.
    pub user_id: JsonString<UserIdText>,
}

/// A code issued to a user.
#[derive(Debug, Object)]
pub struct Claim {
    /// Id of this claim.
    pub claim_id: Uuid,
    /// The campaign.
    pub campaign_id: Uuid,
    /// The user it was issued to.
    pub user_id: String,
    /// The gift-certificate code.
    pub code: String,
    /// When it was issued (UTC, whole seconds).
    pub issued_at: UtcTime,
    /// The local day (campaign time zone) it counts against, `YYYY-MM-DD`.
    pub day: Day,
}

impl From<IssuedClaim> for Claim {
    fn from(claim: IssuedClaim) -> Self {
        Self {
            claim_id: claim.claim_id,
            campaign_id: claim.campaign_id,
            user_id: claim.user_id,
            code: claim.code,
            issued_at: UtcTime(claim.issued_at),
            day: Day(claim.day),
        }
    }
}

#[derive(ApiResponse)]
enum ClaimAnswer {
    /// A code was issued to the user by this request.
    #[oai(status = 201)]
    Created(Json<Claim>),
    /// The user already had a code: the very same claim, unchanged.
    #[oai(status = 200)]
    Replayed(
        Json<Claim>,
        /// Always `true`: this answer repeats an earlier claim.
        #[oai(header = "Idempotent-Replayed")]
        bool,
    ),
}

#[derive(ApiResponse)]
enum ClaimFound {
    /// The user's claim.
    #[oai(status = 200)]
    Ok(Json<Claim>),
}

operation_errors! {
    /// Why no code was issued.
    enum ClaimCodeError {
        bad_request: "`invalid_request`: the campaign id is not a UUID, malformed JSON, a wrong \
                      type, an unknown field, or a user id that breaks its rules.",
        unauthorized: "`unauthorized`: the client bearer token is missing or wrong.",
        not_found: "`campaign_not_found`: no campaign has this id.",
        conflict: "`campaign_inactive` (inactive, not started or ended), `out_of_stock` (no \
                   code left), or `daily_limit_reached` (with `Retry-After`: seconds until the \
                   campaign's next local midnight).",
        payload_too_large: "`payload_too_large`: the body exceeds `GIFTCODES_MAX_BODY_BYTES`.",
        unsupported_media_type: "`unsupported_media_type`: the body is not JSON.",
    }
}

operation_errors! {
    /// Why a claim could not be read.
    enum GetClaimError {
        bad_request: "`invalid_request`: the campaign id is not a UUID or the user id breaks \
                      its rules.",
        unauthorized: "`unauthorized`: the client bearer token is missing or wrong.",
        not_found: "`campaign_not_found`, or `claim_not_found` (the user has no claim in this \
                    campaign).",
    }
}

pub struct ClaimsApi;

#[OpenApi(prefix_path = "/v1/campaigns", tag = "ApiTags::Claims")]
impl ClaimsApi {
    /// Claim a code
    ///
    /// Gives the user one available code of the campaign, answered only after it is committed.
    /// Asking again (a retry, another instance, concurrently) returns the same claim with 200
    /// and `Idempotent-Replayed: true`. Refusals: 409 `campaign_inactive`,
    /// `daily_limit_reached` (with `Retry-After` until local midnight) or `out_of_stock`.
    #[oai(
        path = "/:campaign_id/claims",
        method = "post",
        operation_id = "claim_code"
    )]
    async fn claim(
        &self,
        _auth: ClientAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// The user asking for a code.
        body: Json<ClaimRequest>,
        peer: &RemoteAddr,
    ) -> Result<ClaimAnswer, ClaimCodeError> {
        let connection = ConnectionKey::of_peer(peer.as_socket_addr());
        let outcome = match UserId::parse(body.user_id.as_str()) {
            Ok(user) => state.claims.claim(campaign_id.0, user, connection).await,
            Err(message) => Err(AppError::InvalidRequest(message)),
        };
        state.metrics.claim_outcome(match &outcome {
            Ok(ClaimOutcome::Issued(_)) => "issued",
            Ok(ClaimOutcome::Replayed(_)) => "replayed",
            Err(refusal) => refusal.code(),
        });
        Ok(match outcome? {
            ClaimOutcome::Issued(claim) => ClaimAnswer::Created(Json(claim.into())),
            ClaimOutcome::Replayed(claim) => ClaimAnswer::Replayed(Json(claim.into()), true),
        })
    }

    /// Read a user's claim
    ///
    /// The code the user was issued in this campaign, or 404 `claim_not_found`.
    #[oai(
        path = "/:campaign_id/claims/:user_id",
        method = "get",
        operation_id = "get_claim"
    )]
    async fn get(
        &self,
        _auth: ClientAuth,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        campaign_id: Path<Uuid>,
        /// The user's id (URL-encoded), as claimed.
        user_id: Path<JsonString<UserIdText>>,
    ) -> Result<ClaimFound, GetClaimError> {
        let user = UserId::parse(user_id.0.as_str()).map_err(AppError::InvalidRequest)?;
        find_campaign(&state, campaign_id.0).await?;
        let found = issued_to_users(&state.db, campaign_id.0, &[user.as_str()]).await?;
        let row = found.into_iter().next().ok_or(AppError::ClaimNotFound)?;
        Ok(ClaimFound::Ok(Json(row.into())))
    }
}

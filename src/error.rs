//! The crate-wide error: what can go wrong, its stable `code`, and the HTTP answer it becomes.
use poem_openapi::{ApiResponse, Object, payload::Json};
use sea_orm::DbErr;

use crate::store::failure::{DbFailure, classify};

/// One offending line of an uploaded batch.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct LineProblem {
    /// 1-based line number in the upload (for JSON uploads, the 1-based position in `codes`).
    pub line: u64,
    /// The offending code as sent (cut to 128 characters).
    pub code: String,
    /// Why the line was refused: `invalid`, `duplicate_in_batch`, `already_in_campaign`, or
    /// `already_in_other_campaign` (a code exists once in the whole service).
    pub reason: String,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct ErrorBody {
    /// Stable, machine-readable error code (e.g. `campaign_not_found`).
    pub code: String,
    /// Human-readable explanation; wording may change.
    pub message: String,
    /// For `invalid_codes` and `duplicate_codes`: the first 100 offending lines.
    #[oai(skip_serializing_if_is_none)]
    pub problems: Option<Vec<LineProblem>>,
    /// For `invalid_codes` and `duplicate_codes`: how many lines were refused in all.
    #[oai(skip_serializing_if_is_none)]
    pub problem_count: Option<u64>,
}

/// Everything the service can refuse or fail with; `code()` is the stable error code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{count} line(s) of the batch are not valid codes; nothing was written")]
    InvalidCodes {
        problems: Vec<LineProblem>,
        count: u64,
    },
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("no campaign with this id")]
    CampaignNotFound,
    #[error("no batch with this id in this campaign")]
    BatchNotFound,
    #[error("this user has no claim in this campaign")]
    ClaimNotFound,
    #[error(
        "{count} code(s) of the batch repeat inside it or exist already (codes are unique across campaigns); nothing was written"
    )]
    DuplicateCodes {
        problems: Vec<LineProblem>,
        count: u64,
    },
    #[error("the request conflicts with existing data")]
    Conflict,
    #[error("the campaign is not open for claims now")]
    CampaignInactive,
    #[error("the campaign's daily limit is reached; try again after local midnight")]
    DailyLimitReached { retry_after_secs: u64 },
    #[error("the campaign has no available code left")]
    OutOfStock,
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("the database cannot be reached; try again shortly")]
    Unavailable { retry_after_secs: u64 },
    #[error("internal error")]
    Internal,
}

/// How long clients are asked to wait when the database is unreachable.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

impl AppError {
    /// The stable error code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidRequest(_) => "invalid_request",
            AppError::InvalidCodes { .. } => "invalid_codes",
            AppError::Unauthorized => "unauthorized",
            AppError::CampaignNotFound => "campaign_not_found",
            AppError::BatchNotFound => "batch_not_found",
            AppError::ClaimNotFound => "claim_not_found",
            AppError::DuplicateCodes { .. } => "duplicate_codes",
            AppError::Conflict => "conflict",
            AppError::CampaignInactive => "campaign_inactive",
            AppError::DailyLimitReached { .. } => "daily_limit_reached",
            AppError::OutOfStock => "out_of_stock",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::Unavailable { .. } => "unavailable",
            AppError::Internal => "internal",
        }
    }

    fn body(&self) -> Json<ErrorBody> {
        let (problems, problem_count) = match self {
            AppError::InvalidCodes { problems, count }
            | AppError::DuplicateCodes { problems, count } => {
                (Some(problems.clone()), Some(*count))
            }
            _ => (None, None),
        };
        Json(ErrorBody {
            code: self.code().to_owned(),
            message: self.to_string(),
            problems,
            problem_count,
        })
    }
}

impl From<DbErr> for AppError {
    /// Unique-key violations become 409 `conflict`; every transient failure (unreachable,
    /// read-only after a failover, killed, lock contention, too many connections) 503
    /// `unavailable` (retry later); anything else is logged here and answered as an opaque 500.
    fn from(err: DbErr) -> Self {
        match classify(&err) {
            DbFailure::DuplicateKey => AppError::Conflict,
            DbFailure::Statement => {
                tracing::error!(error = %err, "database error");
                AppError::Internal
            }
            failure => {
                tracing::warn!(?failure, error = %err, "database unavailable");
                AppError::Unavailable {
                    retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
                }
            }
        }
    }
}

/// The HTTP form of [`AppError`]: one variant per status; the body's `code` says which error.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// 400 — `invalid_request` (malformed JSON, wrong types, bad uuid, bad time zone, bad field
    /// value) or `invalid_codes` (an uploaded line is not a valid code; nothing was written).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// 401 — `unauthorized`: the bearer token is missing or wrong.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// 404 — `campaign_not_found`, `batch_not_found` or `claim_not_found`.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// 409 — `duplicate_codes`, `conflict`, `campaign_inactive`, `out_of_stock`, or
    /// `daily_limit_reached` (then `Retry-After` gives the seconds until the next local midnight).
    #[oai(status = 409)]
    Conflict(
        Json<ErrorBody>,
        /// Seconds until the campaign's next local midnight (`daily_limit_reached` only).
        #[oai(header = "Retry-After")]
        Option<u64>,
    ),
    /// 413 — `payload_too_large`: the body exceeds the configured limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// 500 — `internal`: an unexpected fault, logged on the server.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// 503 — `unavailable`: the database cannot be reached; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorBody>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

/// Gives errors raised before a handler runs (routing, authentication, parsing a parameter or
/// a body) the same `{code, message}` body as every other error.
pub fn uniform_error_response(err: poem::Error) -> poem::Response {
    use poem::IntoResponse;
    use poem::http::StatusCode;
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let (code, message) = match status {
        StatusCode::UNAUTHORIZED => return ApiError::from(AppError::Unauthorized).into_response(),
        StatusCode::BAD_REQUEST => {
            return ApiError::from(AppError::InvalidRequest(err.to_string())).into_response();
        }
        StatusCode::NOT_FOUND => ("not_found", "no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", err.to_string()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", err.to_string()),
        _ => ("internal", err.to_string()),
    };
    Json(ErrorBody {
        code: code.to_owned(),
        message,
        problems: None,
        problem_count: None,
    })
    .with_status(status)
    .into_response()
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        let body = err.body();
        match err {
            AppError::InvalidRequest(_) | AppError::InvalidCodes { .. } => {
                ApiError::BadRequest(body)
            }
            AppError::Unauthorized => ApiError::Unauthorized(body),
            AppError::CampaignNotFound | AppError::BatchNotFound | AppError::ClaimNotFound => {
                ApiError::NotFound(body)
            }
            AppError::DailyLimitReached { retry_after_secs } => {
                ApiError::Conflict(body, Some(retry_after_secs))
            }
            AppError::DuplicateCodes { .. }
            | AppError::Conflict
            | AppError::CampaignInactive
            | AppError::OutOfStock => ApiError::Conflict(body, None),
            AppError::PayloadTooLarge { .. } => ApiError::PayloadTooLarge(body),
            AppError::Internal => ApiError::Internal(body),
            AppError::Unavailable { retry_after_secs } => {
                ApiError::Unavailable(body, retry_after_secs)
            }
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        AppError::from(err).into()
    }
}

/// What API operations return on failure.
pub type ApiResult<T> = Result<T, ApiError>;

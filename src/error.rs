//! The crate-wide error: what can go wrong, its stable `code`, and the HTTP answer it becomes.
use poem_openapi::{ApiResponse, Enum, Object, payload::Json};
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

/// Every stable error `code`. Each operation lists, per status, the codes it can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidCodes,
    Unauthorized,
    CampaignNotFound,
    BatchNotFound,
    ClaimNotFound,
    NotFound,
    MethodNotAllowed,
    DuplicateCodes,
    Conflict,
    CampaignInactive,
    DailyLimitReached,
    OutOfStock,
    PayloadTooLarge,
    UnsupportedMediaType,
    Internal,
    Unavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidCodes => "invalid_codes",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::CampaignNotFound => "campaign_not_found",
            ErrorCode::BatchNotFound => "batch_not_found",
            ErrorCode::ClaimNotFound => "claim_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::DuplicateCodes => "duplicate_codes",
            ErrorCode::Conflict => "conflict",
            ErrorCode::CampaignInactive => "campaign_inactive",
            ErrorCode::DailyLimitReached => "daily_limit_reached",
            ErrorCode::OutOfStock => "out_of_stock",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct ErrorBody {
    /// Stable, machine-readable error code (e.g. `campaign_not_found`).
    pub code: ErrorCode,
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
        self.error_code().as_str()
    }

    /// The stable error code as the API's enum.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            AppError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            AppError::InvalidCodes { .. } => ErrorCode::InvalidCodes,
            AppError::Unauthorized => ErrorCode::Unauthorized,
            AppError::CampaignNotFound => ErrorCode::CampaignNotFound,
            AppError::BatchNotFound => ErrorCode::BatchNotFound,
            AppError::ClaimNotFound => ErrorCode::ClaimNotFound,
            AppError::DuplicateCodes { .. } => ErrorCode::DuplicateCodes,
            AppError::Conflict => ErrorCode::Conflict,
            AppError::CampaignInactive => ErrorCode::CampaignInactive,
            AppError::DailyLimitReached { .. } => ErrorCode::DailyLimitReached,
            AppError::OutOfStock => ErrorCode::OutOfStock,
            AppError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            AppError::Unavailable { .. } => ErrorCode::Unavailable,
            AppError::Internal => ErrorCode::Internal,
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
            code: self.error_code(),
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
    /// 415 — `unsupported_media_type`: the body's media type is not one the operation reads.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
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
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, err.to_string()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            return ApiError::UnsupportedMediaType(Json(ErrorBody {
                code: ErrorCode::UnsupportedMediaType,
                message: err.to_string(),
                problems: None,
                problem_count: None,
            }))
            .into_response();
        }
        _ => (ErrorCode::Internal, err.to_string()),
    };
    Json(ErrorBody {
        code,
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

/// Declares the error answers of one operation: only the statuses listed (each with the codes it
/// can carry, as its description), 500 `internal` and 503 `unavailable` always. An error whose
/// status the operation does not list is logged and answered as 500 `internal`, so an operation
/// never answers what its schema does not promise.
macro_rules! operation_errors {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(bad_request: $bad_request:literal,)?
            $(unauthorized: $unauthorized:literal,)?
            $(not_found: $not_found:literal,)?
            $(conflict: $conflict:literal,)?
            $(payload_too_large: $too_large:literal,)?
            $(unsupported_media_type: $unsupported:literal,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, poem_openapi::ApiResponse)]
        $vis enum $name {
            $(
                #[doc = $bad_request]
                #[oai(status = 400)]
                BadRequest(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            )?
            $(
                #[doc = $unauthorized]
                #[oai(status = 401)]
                Unauthorized(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            )?
            $(
                #[doc = $not_found]
                #[oai(status = 404)]
                NotFound(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            )?
            $(
                #[doc = $conflict]
                #[oai(status = 409)]
                Conflict(
                    poem_openapi::payload::Json<$crate::error::ErrorBody>,
                    /// Seconds until the campaign's next local midnight (`daily_limit_reached`
                    /// only).
                    #[oai(header = "Retry-After")]
                    Option<u64>,
                ),
            )?
            $(
                #[doc = $too_large]
                #[oai(status = 413)]
                PayloadTooLarge(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            )?
            $(
                #[doc = $unsupported]
                #[oai(status = 415)]
                UnsupportedMediaType(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            )?
            /// `internal`: an unexpected fault, logged on the server.
            #[oai(status = 500)]
            Internal(poem_openapi::payload::Json<$crate::error::ErrorBody>),
            /// `unavailable`: the database cannot be reached or is busy; retry after
            /// `Retry-After` seconds.
            #[oai(status = 503)]
            Unavailable(
                poem_openapi::payload::Json<$crate::error::ErrorBody>,
                /// Seconds to wait before retrying.
                #[oai(header = "Retry-After")]
                u64,
            ),
        }

        impl From<$crate::error::ApiError> for $name {
            fn from(err: $crate::error::ApiError) -> Self {
                use $crate::error::ApiError;
                match err {
                    $(ApiError::BadRequest(body) => $crate::error::listed!($bad_request, Self::BadRequest(body)),)?
                    $(ApiError::Unauthorized(body) => $crate::error::listed!($unauthorized, Self::Unauthorized(body)),)?
                    $(ApiError::NotFound(body) => $crate::error::listed!($not_found, Self::NotFound(body)),)?
                    $(ApiError::Conflict(body, retry) => $crate::error::listed!($conflict, Self::Conflict(body, retry)),)?
                    $(ApiError::PayloadTooLarge(body) => $crate::error::listed!($too_large, Self::PayloadTooLarge(body)),)?
                    $(ApiError::UnsupportedMediaType(body) => $crate::error::listed!($unsupported, Self::UnsupportedMediaType(body)),)?
                    ApiError::Unavailable(body, retry) => Self::Unavailable(body, retry),
                    other => Self::Internal($crate::error::unlisted(stringify!($name), other)),
                }
            }
        }

        impl From<$crate::error::AppError> for $name {
            fn from(err: $crate::error::AppError) -> Self {
                $crate::error::ApiError::from(err).into()
            }
        }

        impl From<sea_orm::DbErr> for $name {
            fn from(err: sea_orm::DbErr) -> Self {
                $crate::error::ApiError::from(err).into()
            }
        }
    };
}
pub(crate) use operation_errors;

/// The answer of a status an operation lists (`$description` only selects the arm).
macro_rules! listed {
    ($description:literal, $answer:expr) => {
        $answer
    };
}
pub(crate) use listed;

/// An error of a status the operation does not document: logged, answered as 500 `internal`.
pub(crate) fn unlisted(operation: &str, err: ApiError) -> Json<ErrorBody> {
    tracing::error!(operation, error = ?err, "an error of an undocumented status");
    AppError::Internal.body()
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    use super::*;

    #[test]
    fn error_codes_are_written_as_their_stable_strings() {
        let codes = [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidCodes,
            ErrorCode::Unauthorized,
            ErrorCode::CampaignNotFound,
            ErrorCode::BatchNotFound,
            ErrorCode::ClaimNotFound,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::DuplicateCodes,
            ErrorCode::Conflict,
            ErrorCode::CampaignInactive,
            ErrorCode::DailyLimitReached,
            ErrorCode::OutOfStock,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ];
        for code in codes {
            assert_eq!(code.to_json(), Some(serde_json::Value::from(code.as_str())));
        }
    }
}

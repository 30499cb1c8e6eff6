//! Liveness and readiness probes.
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiTags, AppState};
use crate::error::{AppError, UNAVAILABLE_RETRY_AFTER_SECS, operation_errors};

/// A probe's answer.
#[derive(Debug, Object)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

#[derive(ApiResponse)]
enum Healthy {
    /// The probe passed.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

fn ok() -> Healthy {
    Healthy::Ok(Json(Health {
        status: "ok".to_owned(),
    }))
}

operation_errors! {
    /// Why the service is not ready.
    enum NotReady {}
}

pub struct OpsApi;

#[OpenApi(tag = "ApiTags::Ops")]
impl OpsApi {
    /// Liveness
    ///
    /// 200 while the process serves HTTP; says nothing about the database.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Healthy {
        ok()
    }

    /// Readiness
    ///
    /// 200 when the database answers a ping, 503 `unavailable` when it does not.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> Result<Healthy, NotReady> {
        match state.db.ping().await {
            Ok(()) => Ok(ok()),
            Err(err) => {
                tracing::warn!(error = %err, "readiness: database ping failed");
                Err(AppError::Unavailable {
                    retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
                }
                .into())
            }
        }
    }
}

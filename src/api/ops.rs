//! Liveness and readiness probes.
use std::sync::Arc;
use std::sync::atomic::Ordering;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiTags, AppState};
use crate::error::{AppError, UNAVAILABLE_RETRY_AFTER_SECS, operation_errors};
use crate::store;

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
    /// 200 when the database answers and takes writes; 503 `unavailable` when it does not
    /// answer, when it is read-only (the old writer after a failover), and from the moment
    /// the service is told to stop (so a load balancer drains it).
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> Result<Healthy, NotReady> {
        let unavailable = || {
            AppError::Unavailable {
                retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
            }
            .into()
        };
        if state.draining.load(Ordering::Relaxed) {
            return Err(unavailable());
        }
        match store::accepts_writes(&state.db).await {
            Ok(true) => Ok(ok()),
            Ok(false) => {
                tracing::warn!("readiness: the database is read-only");
                Err(unavailable())
            }
            Err(err) => {
                tracing::warn!(error = %err, "readiness: database check failed");
                Err(unavailable())
            }
        }
    }
}

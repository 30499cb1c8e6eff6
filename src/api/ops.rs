//! Liveness and readiness probes, and the Prometheus scrape.
use std::sync::Arc;
use std::sync::atomic::Ordering;

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::campaigns::{day_stock, time_zone_of, yesterday_of};
use super::{ApiTags, AppState, MetricsAuth};
use crate::error::{AppError, UNAVAILABLE_RETRY_AFTER_SECS, operation_errors};
use crate::metrics::{CampaignSample, ScrapeSample};
use crate::store;

/// Most campaigns the per-campaign series cover (bounded cardinality); all are counted in
/// `giftcodes_campaigns_active`.
const SCRAPED_CAMPAIGNS: u64 = 1000;

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

#[derive(ApiResponse)]
enum MetricsText {
    /// The Prometheus text exposition format (version 0.0.4).
    #[oai(status = 200)]
    Ok(PlainText<String>),
}

operation_errors! {
    /// Why the metrics could not be read.
    enum MetricsError {
        unauthorized: "`unauthorized`: neither the metrics token nor the admin token was given.",
    }
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

    /// Prometheus metrics
    ///
    /// HTTP requests, claims by outcome, claim transactions, the claim queue, the database
    /// pool, uploads, and per campaign open for claims its stock and outlook, in the
    /// Prometheus text format. The database figures are read at each scrape. Needs
    /// `GIFTCODES_METRICS_TOKEN` (for Prometheus) or the admin token.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(
        &self,
        _auth: MetricsAuth,
        state: Data<&Arc<AppState>>,
    ) -> Result<MetricsText, MetricsError> {
        if !state.metrics.enabled() {
            return Ok(MetricsText::Ok(PlainText(
                state.metrics.render(&empty_sample()),
            )));
        }
        // Scrapes set shared gauges before rendering them: one at a time.
        let _one_at_a_time = state.scrape.lock().await;
        let sample = scrape(&state).await;
        Ok(MetricsText::Ok(PlainText(state.metrics.render(&sample))))
    }
}

fn empty_sample() -> ScrapeSample {
    ScrapeSample {
        queue_depth: 0,
        pool_in_use: 0,
        pool_idle: 0,
        pool_max: 0,
        acquire_wait: None,
        db_up: false,
        campaigns_active: 0,
        campaigns: Vec::new(),
    }
}

/// Reads what the scrape reports from the process and the database; a database that does
/// not answer leaves `db_up` 0 and no per-campaign series.
async fn scrape(state: &AppState) -> ScrapeSample {
    let (open, idle) = store::pool_connections(&state.db);
    let acquire_wait = store::acquire_wait(&state.db).await;
    let db_up = acquire_wait.is_some()
        && tokio::time::timeout(state.db_timeout, store::accepts_writes(&state.db))
            .await
            .is_ok_and(|answer| answer.is_ok_and(|writable| writable));
    let mut sample = ScrapeSample {
        queue_depth: state.claims.queued(),
        pool_in_use: open.saturating_sub(idle),
        pool_idle: idle,
        pool_max: state.db_max_connections,
        acquire_wait,
        db_up,
        ..empty_sample()
    };
    if db_up {
        match campaign_samples(state).await {
            Ok((active, campaigns)) => {
                sample.campaigns_active = active;
                sample.campaigns = campaigns;
            }
            Err(err) => tracing::warn!(error = %err, "metrics: campaign stock not read"),
        }
    }
    sample
}

async fn campaign_samples(state: &AppState) -> Result<(usize, Vec<CampaignSample>), AppError> {
    let now = state.database_now().await?;
    let (open, total) = store::stock::open_campaigns(&state.db, now, SCRAPED_CAMPAIGNS).await?;
    let zones = open
        .iter()
        .map(time_zone_of)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<Uuid> = open.iter().map(|campaign| campaign.id).collect();
    let since = zones.iter().map(|tz| yesterday_of(now, *tz)).min();
    let Some(since) = since else {
        return Ok((total as usize, Vec::new()));
    };
    let available = store::stock::campaign_available(&state.db, &ids).await?;
    let counters = store::stock::day_counters_since(&state.db, &ids, since).await?;
    let samples = open
        .into_iter()
        .zip(zones)
        .map(|(campaign, tz)| {
            let available = available.get(&campaign.id).copied().unwrap_or(0);
            let stock = day_stock(&campaign, tz, now, available, &counters);
            CampaignSample {
                id: campaign.id.to_string(),
                name: campaign.name,
                available,
                issued_today: stock.issued_today,
                remaining_today: stock.remaining_today,
                claims_per_hour: stock.outlook.claims_per_hour,
                seconds_left: stock.outlook.seconds_left(now),
            }
        })
        .collect();
    Ok((total as usize, samples))
}

//! Prometheus instruments, built once per application and handed to what records them (the
//! HTTP layer, the claim handler, the claim writer, uploads), and the text that `GET /metrics`
//! renders with the gauges read at scrape time (pool, queue, per-campaign stock).
//!
//! Recording is a few atomic adds per request; `GIFTCODES_METRICS=false` turns every
//! instrument into a no-op (what `bench/metrics-overhead.sh` compares against).
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Claims carried by one claim transaction (at most `GIFTCODES_CLAIM_MAX_BATCH`, 1,000).
const CLAIMS_PER_TRANSACTION_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0,
];
/// Upload durations in seconds.
const UPLOAD_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Every metric name the service exports, with its help text (what the README lists and the
/// Grafana dashboard test checks against).
pub const METRIC_NAMES: [(&str, &str); 19] = [
    (
        "giftcodes_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
    ),
    (
        "giftcodes_http_request_duration_seconds",
        "Time from a request's arrival to its answer, by route template and method.",
    ),
    (
        "giftcodes_claims_total",
        "Claim requests by outcome: issued, replayed, or the refusal's error code.",
    ),
    (
        "giftcodes_claim_transaction_seconds",
        "Time one claim transaction (one campaign's share of a coalesced group) took, retries included.",
    ),
    (
        "giftcodes_claim_transaction_claims",
        "Claim requests answered by one claim transaction.",
    ),
    (
        "giftcodes_claim_queue_depth",
        "Claims waiting for a writer, read at scrape time.",
    ),
    (
        "giftcodes_db_pool_connections",
        "Database connections of this process, by state (in_use, idle), read at scrape time.",
    ),
    (
        "giftcodes_db_pool_max_connections",
        "Most database connections this process opens (GIFTCODES_DB_MAX_CONNECTIONS).",
    ),
    (
        "giftcodes_db_pool_acquire_wait_seconds",
        "How long the scrape waited for a database connection.",
    ),
    (
        "giftcodes_db_up",
        "1 when the database answered the scrape's check and takes writes, else 0.",
    ),
    (
        "giftcodes_upload_rows_total",
        "Codes written by batch uploads that committed.",
    ),
    (
        "giftcodes_upload_duration_seconds",
        "Time a batch upload took, by result (created, or the refusal's error code).",
    ),
    (
        "giftcodes_campaigns_active",
        "Campaigns open for claims now (the per-campaign series cover at most 1,000 of them).",
    ),
    (
        "giftcodes_campaign_available_codes",
        "Codes a campaign open for claims can still issue.",
    ),
    (
        "giftcodes_campaign_issued_today",
        "Codes a campaign open for claims issued on its current local day.",
    ),
    (
        "giftcodes_campaign_remaining_today",
        "Codes its daily limit still allows today (campaigns with a limit only).",
    ),
    (
        "giftcodes_campaign_claims_per_hour",
        "Codes issued per hour over the last 24 hours, or since the campaign opened if later.",
    ),
    (
        "giftcodes_campaign_stock_seconds_left",
        "Seconds until the available codes run out at claims_per_hour (0 when none is left; absent with no recent claim).",
    ),
    (
        "giftcodes_build_info",
        "Always 1; the version label says which build answers.",
    ),
];

fn help(name: &str) -> &'static str {
    METRIC_NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, help)| *help)
        .unwrap_or_else(|| panic!("{name} is listed in METRIC_NAMES"))
}

fn opts(name: &str) -> Opts {
    Opts::new(name, help(name))
}

fn histogram_opts(name: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help(name)).buckets(buckets.to_vec())
}

/// Labels of the per-campaign series.
const CAMPAIGN_LABELS: [&str; 2] = ["campaign_id", "campaign"];

struct Instruments {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    claims: IntCounterVec,
    claim_transaction: ClaimMetrics,
    claim_queue: IntGauge,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    pool_acquire_wait: Gauge,
    db_up: IntGauge,
    upload_rows: IntCounter,
    upload_duration: HistogramVec,
    campaigns_active: IntGauge,
    campaign_available: IntGaugeVec,
    campaign_issued_today: IntGaugeVec,
    campaign_remaining_today: IntGaugeVec,
    campaign_claims_per_hour: GaugeVec,
    campaign_seconds_left: GaugeVec,
}

/// Registers `metric` and returns it (names are fixed, so registration cannot clash).
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are distinct");
    metric
}

impl Instruments {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let build = IntGaugeVec::new(opts("giftcodes_build_info"), &["version"])?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registered(r, build);
        let campaign_gauge = |name| IntGaugeVec::new(opts(name), &CAMPAIGN_LABELS);
        Ok(Self {
            http_requests: registered(
                r,
                IntCounterVec::new(
                    opts("giftcodes_http_requests_total"),
                    &["route", "method", "status"],
                )?,
            ),
            http_duration: registered(
                r,
                HistogramVec::new(
                    histogram_opts("giftcodes_http_request_duration_seconds", &LATENCY_BUCKETS),
                    &["route", "method"],
                )?,
            ),
            claims: registered(
                r,
                IntCounterVec::new(opts("giftcodes_claims_total"), &["outcome"])?,
            ),
            claim_transaction: ClaimMetrics(Some(Arc::new((
                registered(
                    r,
                    Histogram::with_opts(histogram_opts(
                        "giftcodes_claim_transaction_seconds",
                        &LATENCY_BUCKETS,
                    ))?,
                ),
                registered(
                    r,
                    Histogram::with_opts(histogram_opts(
                        "giftcodes_claim_transaction_claims",
                        &CLAIMS_PER_TRANSACTION_BUCKETS,
                    ))?,
                ),
            )))),
            claim_queue: registered(r, IntGauge::with_opts(opts("giftcodes_claim_queue_depth"))?),
            pool_connections: registered(
                r,
                IntGaugeVec::new(opts("giftcodes_db_pool_connections"), &["state"])?,
            ),
            pool_max: registered(
                r,
                IntGauge::with_opts(opts("giftcodes_db_pool_max_connections"))?,
            ),
            pool_acquire_wait: registered(
                r,
                Gauge::with_opts(opts("giftcodes_db_pool_acquire_wait_seconds"))?,
            ),
            db_up: registered(r, IntGauge::with_opts(opts("giftcodes_db_up"))?),
            upload_rows: registered(
                r,
                IntCounter::with_opts(opts("giftcodes_upload_rows_total"))?,
            ),
            upload_duration: registered(
                r,
                HistogramVec::new(
                    histogram_opts("giftcodes_upload_duration_seconds", &UPLOAD_BUCKETS),
                    &["result"],
                )?,
            ),
            campaigns_active: registered(
                r,
                IntGauge::with_opts(opts("giftcodes_campaigns_active"))?,
            ),
            campaign_available: registered(
                r,
                campaign_gauge("giftcodes_campaign_available_codes")?,
            ),
            campaign_issued_today: registered(
                r,
                campaign_gauge("giftcodes_campaign_issued_today")?,
            ),
            campaign_remaining_today: registered(
                r,
                campaign_gauge("giftcodes_campaign_remaining_today")?,
            ),
            campaign_claims_per_hour: registered(
                r,
                GaugeVec::new(opts("giftcodes_campaign_claims_per_hour"), &CAMPAIGN_LABELS)?,
            ),
            campaign_seconds_left: registered(
                r,
                GaugeVec::new(
                    opts("giftcodes_campaign_stock_seconds_left"),
                    &CAMPAIGN_LABELS,
                )?,
            ),
            registry,
        })
    }
}

/// The application's instruments; cheap to clone. Disabled, every call is a no-op.
#[derive(Clone)]
pub struct Metrics(Option<Arc<Instruments>>);

/// What the scrape reads from the process and the database before rendering.
pub struct ScrapeSample {
    /// Claims queued for a writer.
    pub queue_depth: usize,
    /// Open connections in use and idle, and the most the pool opens.
    pub pool_in_use: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
    /// How long acquiring a connection took; `None` when none could be had.
    pub acquire_wait: Option<Duration>,
    /// Whether the database answered and takes writes.
    pub db_up: bool,
    /// Campaigns open for claims, all of them counted.
    pub campaigns_active: usize,
    /// The per-campaign series (at most 1,000 campaigns).
    pub campaigns: Vec<CampaignSample>,
}

/// One campaign's stock as the scrape saw it.
pub struct CampaignSample {
    pub id: String,
    pub name: String,
    pub available: i64,
    pub issued_today: i64,
    pub remaining_today: Option<i64>,
    pub claims_per_hour: f64,
    pub seconds_left: Option<f64>,
}

impl Metrics {
    /// Builds the instruments (or none, when recording is off).
    pub fn new(enabled: bool) -> Self {
        Self(enabled.then(|| Arc::new(Instruments::new().expect("metric definitions are valid"))))
    }

    /// One HTTP answer: `route` is a route template (bounded), never a raw path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if let Some(m) = &self.0 {
            let mut digits = [0u8; 3];
            let status = status_text(status, &mut digits);
            m.http_requests
                .with_label_values(&[route, method, status])
                .inc();
            m.http_duration
                .with_label_values(&[route, method])
                .observe(elapsed.as_secs_f64());
        }
    }

    /// One claim request's outcome: `issued`, `replayed`, or a refusal's error code.
    pub fn claim_outcome(&self, outcome: &str) {
        if let Some(m) = &self.0 {
            m.claims.with_label_values(&[outcome]).inc();
        }
    }

    /// The claim writer's instruments.
    pub fn claims(&self) -> ClaimMetrics {
        self.0
            .as_ref()
            .map_or(ClaimMetrics(None), |m| m.claim_transaction.clone())
    }

    /// One batch upload: `result` is `created` or the refusal's error code; `rows` the codes
    /// it wrote (0 when refused).
    pub fn upload(&self, result: &str, rows: u64, elapsed: Duration) {
        if let Some(m) = &self.0 {
            m.upload_rows.inc_by(rows);
            m.upload_duration
                .with_label_values(&[result])
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Whether recording is on.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// The Prometheus text exposition with `sample`'s gauges set; the per-campaign series are
    /// replaced whole, so campaigns no longer open disappear. Callers serialise scrapes.
    pub fn render(&self, sample: &ScrapeSample) -> String {
        let Some(m) = &self.0 else {
            return "# metrics recording is off (GIFTCODES_METRICS=false)\n".to_owned();
        };
        m.claim_queue.set(sample.queue_depth as i64);
        m.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(sample.pool_in_use));
        m.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(sample.pool_idle));
        m.pool_max.set(i64::from(sample.pool_max));
        m.pool_acquire_wait.set(
            sample
                .acquire_wait
                .map_or(f64::NAN, |wait| wait.as_secs_f64()),
        );
        m.db_up.set(i64::from(sample.db_up));
        m.campaigns_active.set(sample.campaigns_active as i64);
        m.campaign_available.reset();
        m.campaign_issued_today.reset();
        m.campaign_remaining_today.reset();
        m.campaign_claims_per_hour.reset();
        m.campaign_seconds_left.reset();
        for campaign in &sample.campaigns {
            let labels = [campaign.id.as_str(), campaign.name.as_str()];
            m.campaign_available
                .with_label_values(&labels)
                .set(campaign.available);
            m.campaign_issued_today
                .with_label_values(&labels)
                .set(campaign.issued_today);
            if let Some(remaining) = campaign.remaining_today {
                m.campaign_remaining_today
                    .with_label_values(&labels)
                    .set(remaining);
            }
            m.campaign_claims_per_hour
                .with_label_values(&labels)
                .set(campaign.claims_per_hour);
            if let Some(seconds) = campaign.seconds_left {
                m.campaign_seconds_left
                    .with_label_values(&labels)
                    .set(seconds);
            }
        }
        let mut text = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut text)
            .expect("the text encoder writes to memory");
        String::from_utf8(text).expect("the text exposition is UTF-8")
    }
}

/// A status code as text without allocating.
fn status_text(status: u16, digits: &mut [u8; 3]) -> &str {
    let status = status.min(999);
    digits[0] = b'0' + (status / 100) as u8;
    digits[1] = b'0' + (status / 10 % 10) as u8;
    digits[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(digits).expect("ASCII digits")
}

/// The claim writer's instruments: per transaction, its latency and how many claims it carried.
#[derive(Clone)]
pub struct ClaimMetrics(Option<Arc<(Histogram, Histogram)>>);

impl ClaimMetrics {
    /// One claim transaction that answered `claims` requests in `elapsed`.
    pub fn transaction(&self, claims: usize, elapsed: Duration) {
        if let Some(m) = &self.0 {
            m.0.observe(elapsed.as_secs_f64());
            m.1.observe(claims as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ScrapeSample {
        ScrapeSample {
            queue_depth: 3,
            pool_in_use: 1,
            pool_idle: 2,
            pool_max: 8,
            acquire_wait: Some(Duration::from_millis(1)),
            db_up: true,
            campaigns_active: 1,
            campaigns: vec![CampaignSample {
                id: "c1".into(),
                name: "Spring \"sale\"".into(),
                available: 10,
                issued_today: 5,
                remaining_today: None,
                claims_per_hour: 2.5,
                seconds_left: Some(14_400.0),
            }],
        }
    }

    #[test]
    fn every_listed_name_is_exported_once_recorded() {
        let metrics = Metrics::new(true);
        metrics.http_request("/healthz", "GET", 200, Duration::from_millis(2));
        metrics.claim_outcome("issued");
        metrics.claims().transaction(4, Duration::from_millis(3));
        metrics.upload("created", 10, Duration::from_millis(30));
        let mut with_limit = sample();
        with_limit.campaigns[0].remaining_today = Some(7);
        let text = metrics.render(&with_limit);
        for (name, _) in METRIC_NAMES {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert!(text.contains(
            r#"giftcodes_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ));
        assert!(text.contains(r#"campaign="Spring \"sale\"""#), "{text}");
    }

    #[test]
    fn campaigns_no_longer_sampled_disappear() {
        let metrics = Metrics::new(true);
        assert!(metrics.render(&sample()).contains("campaign_id=\"c1\""));
        let mut none = sample();
        none.campaigns.clear();
        assert!(!metrics.render(&none).contains("campaign_id=\"c1\""));
    }

    #[test]
    fn disabled_metrics_record_nothing() {
        let metrics = Metrics::new(false);
        metrics.http_request("/healthz", "GET", 200, Duration::from_millis(2));
        metrics.claims().transaction(1, Duration::from_millis(1));
        assert!(!metrics.enabled());
        assert!(!metrics.render(&sample()).contains("giftcodes_"));
    }

    #[test]
    fn status_codes_render_as_three_digits() {
        let mut digits = [0u8; 3];
        assert_eq!(status_text(503, &mut digits), "503");
        assert_eq!(status_text(200, &mut digits), "200");
    }
}

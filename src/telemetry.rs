//! Logging: `tracing` to standard error, pretty or JSON, level from `RUST_LOG`.
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// sea-orm's driver spans (trace level) record their arguments, and the connect span's are
/// the database URL with its password: they are never recorded, whatever `RUST_LOG` says.
fn is_secret_bearing_span(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span() && metadata.target().starts_with("sea_orm::driver")
}

/// Installs the global subscriber; later calls (e.g. from several tests) are no-ops.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(filter_fn(|metadata| !is_secret_bearing_span(metadata)));
    let _ = if format == "json" {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
}

/// A request's id: the caller's `X-Request-Id` when it is usable, else one made here.
pub type RequestId = std::sync::Arc<str>;

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// Runs `work` as the request `id`: [`current_request_id`] inside it answers `id`.
pub async fn with_request_id<F: std::future::Future>(id: RequestId, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The id of the request being served on this task (`-` outside a request).
pub fn current_request_id() -> RequestId {
    REQUEST_ID
        .try_with(RequestId::clone)
        .unwrap_or_else(|_| RequestId::from("-"))
}

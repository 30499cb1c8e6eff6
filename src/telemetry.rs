//! Logging: `tracing` to standard error, pretty or JSON, level from `RUST_LOG`.
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; later calls (e.g. from several tests) are no-ops.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

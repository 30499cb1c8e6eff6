//! Configuration: command line and environment (`--help` lists both), validated at start.
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Hands out pre-loaded gift-certificate codes: one per user, never twice, within a daily cap.
#[derive(Debug, Parser)]
#[command(name = "giftcodes", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (YAML) and exit.
    Openapi,
    /// GET `/healthz` of the service on the `--listen` port; exit 0 when it answers 200 (the
    /// container image's HEALTHCHECK).
    Healthcheck,
}

/// Every setting, as a flag or an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(
        long,
        env = "GIFTCODES_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://FILE?mode=rwc`, or `mysql://USER:PASSWORD@HOST:PORT/DB` for
    /// MySQL 8.0 / Aurora MySQL 3 / MariaDB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://giftcodes.db?mode=rwc",
        hide_env_values = true,
        global = true
    )]
    pub database_url: DatabaseUrl,

    /// Apply pending migrations when `serve` starts.
    #[arg(long, env = "GIFTCODES_MIGRATE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub migrate: bool,

    /// Bearer token for `/v1/admin` routes (unset: a random one is generated and printed once).
    #[arg(
        long,
        env = "GIFTCODES_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<Secret>,

    /// Comma-separated bearer tokens for client routes (unset: one random token is generated and
    /// printed once).
    #[arg(
        long,
        env = "GIFTCODES_CLIENT_TOKENS",
        hide_env_values = true,
        global = true
    )]
    pub client_tokens: Option<SecretList>,

    /// Bearer token that may read `GET /metrics` and nothing else (the admin token may read it
    /// too); give this one to Prometheus rather than the admin token.
    #[arg(
        long,
        env = "GIFTCODES_METRICS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub metrics_token: Option<Secret>,

    /// Record Prometheus metrics (`false`: every instrument is a no-op and `/metrics` says so;
    /// for measuring what recording costs).
    #[arg(long, env = "GIFTCODES_METRICS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub metrics: bool,

    /// Most database connections this process opens.
    #[arg(long, env = "GIFTCODES_DB_MAX_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=1000), global = true)]
    pub db_max_connections: u32,

    /// Milliseconds to wait for a database connection before answering 503 `unavailable`.
    #[arg(long, env = "GIFTCODES_DB_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000), global = true)]
    pub db_timeout_ms: u64,

    /// Threads that run the service's work (unset: one per core). An instance that shares a
    /// small machine with its database or other busy processes does better with fewer: beside
    /// MariaDB on 2 cores, 1 cut the service's CPU per claim by a fifth.
    #[arg(long, env = "GIFTCODES_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024), global = true)]
    pub worker_threads: Option<u16>,

    /// Claim writer tasks per process, each running one claim transaction at a time; client
    /// connections are spread over them, and a campaign is in one writer's round at a time.
    /// Keep the writers of all instances together as many as the database's cores (one
    /// instance before a 2-core database: 2): more only makes rounds smaller.
    #[arg(long, env = "GIFTCODES_CLAIM_WRITERS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64), global = true)]
    pub claim_writers: u64,

    /// Most claims coalesced into one transaction.
    #[arg(long, env = "GIFTCODES_CLAIM_MAX_BATCH", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1000), global = true)]
    pub claim_max_batch: u64,

    /// Microseconds in all a writer under load (claims queued, or a last round of several)
    /// waits for more while they keep arriving, until as many are in as its last round carried
    /// plus those that queued while it ran (0: never); a lone claim after a lone round never
    /// waits.
    #[arg(long, env = "GIFTCODES_CLAIM_LINGER_US", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=100_000), global = true)]
    pub claim_linger_us: u64,

    /// Milliseconds a claim may take in all before it is answered 503 `unavailable`.
    #[arg(long, env = "GIFTCODES_CLAIM_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000), global = true)]
    pub claim_timeout_ms: u64,

    /// Seconds a transaction of this service may sit idle before the database rolls it back
    /// (MariaDB `idle_transaction_timeout`; MySQL 8 `wait_timeout`): the locks of a frozen or
    /// partitioned instance are freed within this. Also the longest an upload may stall between
    /// two pieces of its body.
    #[arg(long, env = "GIFTCODES_DB_IDLE_TRANSACTION_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub db_idle_transaction_secs: u64,

    /// Seconds `serve` takes after SIGTERM/SIGINT to answer what is in flight before it exits.
    #[arg(long, env = "GIFTCODES_SHUTDOWN_GRACE_SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub shutdown_grace_secs: u64,

    /// Largest batch upload body in bytes (text or JSON).
    #[arg(long, env = "GIFTCODES_MAX_UPLOAD_BYTES", default_value_t = 64 * 1024 * 1024, global = true)]
    pub max_upload_bytes: u64,

    /// Largest body of any other request, in bytes.
    #[arg(long, env = "GIFTCODES_MAX_BODY_BYTES", default_value_t = 64 * 1024, global = true)]
    pub max_body_bytes: u64,

    /// Log format: `pretty` or `json`. The level comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "GIFTCODES_LOG_FORMAT", default_value = "pretty", value_parser = ["pretty", "json"], global = true)]
    pub log_format: String,
}

impl Settings {
    pub fn db_timeout(&self) -> Duration {
        Duration::from_millis(self.db_timeout_ms)
    }

    /// Checks what the argument parser could not check without printing a secret.
    pub fn validate(&self) -> Result<(), String> {
        let short = "must be at least 16 printable ASCII characters (value not shown)";
        if self
            .admin_token
            .as_ref()
            .is_some_and(|t| !t.is_valid_token())
        {
            return Err(format!("GIFTCODES_ADMIN_TOKEN {short}"));
        }
        if let Some(list) = &self.client_tokens
            && list.0.iter().any(|t| !t.is_valid_token())
        {
            return Err(format!("every token in GIFTCODES_CLIENT_TOKENS {short}"));
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| !t.is_valid_token())
        {
            return Err(format!("GIFTCODES_METRICS_TOKEN {short}"));
        }
        Ok(())
    }
}

/// A database URL whose scheme the service supports; printed without its password.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        use sea_orm::sqlx::{mysql::MySqlConnectOptions, sqlite::SqliteConnectOptions};
        let parsed = if raw.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(raw).map(drop)
        } else if raw.starts_with("mysql:") || raw.starts_with("mariadb:") {
            MySqlConnectOptions::from_str(&raw.replacen("mariadb:", "mysql:", 1)).map(drop)
        } else {
            return Err("expected a sqlite:// or mysql:// URL".to_owned());
        };
        parsed.map_err(|e| format!("not a valid database URL: {e}"))?;
        Ok(Self(raw.replacen("mariadb:", "mysql:", 1)))
    }
}

impl fmt::Debug for DatabaseUrl {
    /// Shows scheme, host and database; never the user's password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("?", &self.0));
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        write!(f, "{scheme}://{rest}")
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A token; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Secret {
    /// A non-secret id of the token for logs and the audit trail: `tok_` and the first 12 hex
    /// digits of its SHA-256 (48 bits: tells tokens apart, cannot be turned back into one of
    /// the 16+ random characters a token should have).
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.as_bytes());
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("tok_{hex}")
    }

    /// Whether it is usable as a bearer token: at least 16 printable ASCII characters.
    fn is_valid_token(&self) -> bool {
        self.0.len() >= 16 && self.0.chars().all(|c| c.is_ascii_graphic())
    }
}

/// Never fails, so that a malformed token is not echoed by the argument parser's error;
/// [`Settings::validate`] refuses it without showing it.
impl FromStr for Secret {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Ok(Self(raw.trim().to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Comma-separated tokens.
#[derive(Debug, Clone)]
pub struct SecretList(pub Vec<Secret>);

impl FromStr for SecretList {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let tokens = raw
            .split(',')
            .filter(|part| !part.trim().is_empty())
            .map(Secret::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if tokens.is_empty() {
            return Err("expected at least one token".to_owned());
        }
        Ok(Self(tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_debug_hides_the_password() {
        let url = DatabaseUrl::from_str("mysql://app:hunter2hunter2@db.example:3306/gift").unwrap();
        assert_eq!(format!("{url:?}"), "mysql://db.example:3306/gift");
    }

    #[test]
    fn database_url_refuses_unknown_schemes_and_garbage() {
        assert!(DatabaseUrl::from_str("postgres://x/y").is_err());
        assert!(DatabaseUrl::from_str("not a url").is_err());
        assert!(DatabaseUrl::from_str("mysql://[::1").is_err());
    }

    #[test]
    fn bad_tokens_are_refused_without_being_shown() {
        let cli = Cli::try_parse_from(["giftcodes", "--admin-token", "short secret"]).unwrap();
        let err = cli.settings.validate().unwrap_err();
        assert!(err.contains("GIFTCODES_ADMIN_TOKEN") && !err.contains("short secret"));
        let cli =
            Cli::try_parse_from(["giftcodes", "--client-tokens", "aaaaaaaaaaaaaaaa,tiny"]).unwrap();
        assert!(cli.settings.validate().is_err());
    }

    #[test]
    fn a_token_id_is_stable_and_does_not_contain_the_token() {
        let token = Secret::new("dddddddddddddddd".to_owned());
        assert_eq!(token.id(), token.clone().id());
        assert!(token.id().starts_with("tok_") && token.id().len() == 16);
        assert!(!token.id().contains("dddd"));
        assert_ne!(token.id(), Secret::new("eeeeeeeeeeeeeeee".to_owned()).id());
    }

    #[test]
    fn tokens_are_never_printed() {
        let list = SecretList::from_str("aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb").unwrap();
        assert_eq!(list.0.len(), 2);
        assert!(!format!("{list:?}").contains("aaaa"));
        let cli = Cli::try_parse_from(["giftcodes", "--admin-token", "cccccccccccccccc"]).unwrap();
        assert!(cli.settings.validate().is_ok());
        assert!(!format!("{cli:?}").contains("cccc"));
    }
}

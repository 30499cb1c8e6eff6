//! Building and running the application: database, migrations, tokens, claim writers, HTTP.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{EndpointExt, Server};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use uuid::Uuid;

use crate::api::{self, AppState, AuthTokens};
use crate::claim::{ClaimEngine, ClaimWriters, CoalescingSettings};
use crate::config::{Secret, Settings};
use crate::domain::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::store::failure;

/// Why the service could not start (printed as one line by `main`).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
    #[error("cannot connect to the database {url}: {source}")]
    Connect { url: String, source: DbErr },
    #[error("cannot apply migrations: {0}")]
    Migrate(DbErr),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Prepared statements each pooled MySQL/MariaDB connection keeps: every shape the claim path
/// sends, with room to spare. The server's `max_prepared_stmt_count` (16,382 by default) bounds
/// the sum over all connections of every instance; a claim-path connection uses about 150.
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// Opens the connection pool described by `settings`.
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, StartupError> {
    let timeout = settings.db_timeout();
    let mut options = ConnectOptions::new(settings.database_url.expose());
    options
        .max_connections(settings.db_max_connections)
        .min_connections(1)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .max_lifetime(Duration::from_secs(30 * 60))
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .sqlx_logging(false);
    // The claim path relies on READ COMMITTED (see `claim::round::begin`); setting it once
    // per connection saves a round trip per transaction. A row lock is waited for no longer
    // than a claim may take in all (InnoDB's default is 50 s), so contention ends as a retry
    // or a 503 within the claim timeout.
    //
    // A transaction left idle (its instance frozen, or cut off by the network) is rolled back
    // by the server after `db_idle_transaction_secs`, so its row locks cannot stop the other
    // instances for longer: MariaDB's `idle_transaction_timeout`; MySQL 8 has none, and its
    // `wait_timeout` (which ends any idle session) stands in.
    //
    // After a failover the old writer answers read-only; a connection opened before that was
    // seen may still lead there, so the pool closes it instead of handing it out.
    //
    // Every connection keeps each statement shape of the claim path prepared: the claim queries
    // pad their lists to powers of two (the locking pick: one part per campaign up to 64), so
    // they come in about a hundred and fifty shapes, and sqlx's default cache (100) would
    // evict one shape for another under spread load. An eviction sends COM_STMT_CLOSE, which
    // has no answer, so the next statement waits behind Nagle's algorithm for the server's
    // delayed ACK: about 40 ms per statement (sqlx leaves TCP_NODELAY off), which held rounds
    // over 1,000 campaigns at 220 ms.
    options.map_sqlx_mysql_opts(|mysql| mysql.statement_cache_capacity(STATEMENT_CACHE_CAPACITY));
    let lock_wait_secs = settings.claim_timeout_ms.div_ceil(1000).max(1);
    let idle_transaction_secs = settings.db_idle_transaction_secs;
    options.map_sqlx_mysql_pool_opts(move |pool| {
        pool.after_connect(move |connection, _| {
            Box::pin(async move {
                use sea_orm::sqlx::{AssertSqlSafe, Executor};
                connection
                    .execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                connection
                    .execute(AssertSqlSafe(format!(
                        "SET SESSION innodb_lock_wait_timeout = {lock_wait_secs}"
                    )))
                    .await?;
                let idle_limit =
                    format!("SET SESSION idle_transaction_timeout = {idle_transaction_secs}");
                if connection.execute(AssertSqlSafe(idle_limit)).await.is_err() {
                    connection
                        .execute(AssertSqlSafe(format!(
                            "SET SESSION wait_timeout = {idle_transaction_secs}"
                        )))
                        .await?;
                }
                Ok(())
            })
        })
        .before_acquire(|_, meta| {
            Box::pin(async move { Ok(!failure::connection_predates_read_only(meta.age)) })
        })
    });
    if settings.database_url.is_sqlite() {
        options.map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    }
    Database::connect(options)
        .await
        .map_err(|source| StartupError::Connect {
            url: settings.database_url.to_string(),
            source,
        })
}

/// `giftcodes migrate`: applies pending migrations and returns.
pub async fn migrate(settings: &Settings) -> Result<(), StartupError> {
    let db = connect(settings).await?;
    Migrator::up(&db, None)
        .await
        .map_err(StartupError::Migrate)?;
    tracing::info!(database = %settings.database_url, "migrations applied");
    Ok(())
}

/// `giftcodes serve`: runs until SIGINT/SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), StartupError> {
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}

/// A built, bound application, ready to run.
pub struct Application {
    port: u16,
    acceptor: TcpAcceptor,
    app: poem::endpoint::BoxEndpoint<'static>,
    writers: ClaimWriters,
    draining: Arc<AtomicBool>,
    grace: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Like [`Application::build`] with another clock (tests move time across midnight).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        settings.validate().map_err(StartupError::Config)?;
        let db = connect(&settings).await?;
        if settings.migrate {
            Migrator::up(&db, None)
                .await
                .map_err(StartupError::Migrate)?;
        }
        let tokens = tokens_or_generated(&settings);
        let metrics = Metrics::new(settings.metrics);
        let (claims, writers) = ClaimEngine::start(
            db.clone(),
            clock.clone(),
            CoalescingSettings {
                writers: settings.claim_writers as usize,
                max_batch: settings.claim_max_batch as usize,
                linger: Duration::from_micros(settings.claim_linger_us),
                request_timeout: Duration::from_millis(settings.claim_timeout_ms),
                // Half the pool at most waits in lanes: the shared rounds keep the rest.
                lanes: (settings.db_max_connections as usize / 2).max(1),
            },
            metrics.claims(),
        );
        let draining = Arc::new(AtomicBool::new(false));
        let state = Arc::new(AppState {
            db,
            clock,
            claims,
            tokens,
            max_upload_bytes: settings.max_upload_bytes,
            draining: draining.clone(),
            metrics,
            scrape: tokio::sync::Mutex::new(()),
            db_max_connections: settings.db_max_connections,
            db_timeout: settings.db_timeout(),
        });
        let acceptor = TcpListener::bind(settings.listen)
            .into_acceptor()
            .await
            .map_err(|source| StartupError::Listen {
                addr: settings.listen,
                source,
            })?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().map(|a| a.port()))
            .unwrap_or(settings.listen.port());
        tracing::info!(
            listen = %settings.listen, port, database = %settings.database_url,
            admin_token_id = %state.tokens.admin.id(), metrics = settings.metrics,
            worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
            claim_writers = settings.claim_writers,
            "giftcodes is serving"
        );
        Ok(Self {
            port,
            acceptor,
            app: api::app(state, settings.max_body_bytes).boxed(),
            writers,
            draining,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: readiness answers 503 at
    /// once, no new connection is accepted, every request in flight is answered (claims after
    /// their commit, or 503 when they cannot commit within the claim timeout), the claim
    /// writers finish what is queued, and it returns within the grace period.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let stopped_at = Arc::new(std::sync::OnceLock::new());
        let stop = {
            let (draining, stopped_at) = (self.draining.clone(), stopped_at.clone());
            async move {
                shutdown_signal().await;
                let _ = stopped_at.set(std::time::Instant::now());
                draining.store(true, Ordering::Relaxed);
                tracing::info!("stop requested: answering what is in flight");
            }
        };
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, stop, Some(self.grace))
            .await
            .map_err(StartupError::Serve)?;
        let since_stop = stopped_at
            .get()
            .map_or(Duration::ZERO, std::time::Instant::elapsed);
        let left = self.grace.saturating_sub(since_stop);
        if !self.writers.finish(left).await {
            tracing::warn!("claim writers still busy at the end of the grace period");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The configured tokens; a token variable left unset gets a random token, printed once to
/// standard output (never logged) so that a local `cargo run` works at once.
fn tokens_or_generated(settings: &Settings) -> AuthTokens {
    let random = || {
        Secret::new(format!(
            "{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        ))
    };
    let admin = settings.admin_token.clone().unwrap_or_else(|| {
        let token = random();
        println!(
            "GIFTCODES_ADMIN_TOKEN not set; generated admin token: {}",
            token.expose()
        );
        token
    });
    let clients = match &settings.client_tokens {
        Some(list) => list.0.clone(),
        None => {
            let token = random();
            println!(
                "GIFTCODES_CLIENT_TOKENS not set; generated client token: {}",
                token.expose()
            );
            vec![token]
        }
    };
    AuthTokens {
        admin,
        clients,
        metrics: settings.metrics_token.clone(),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

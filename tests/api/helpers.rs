//! `spawn_app`: the real application on port 0 over a database of its own, and request helpers.
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use clap::Parser;
use giftcodes::config::Cli;
use giftcodes::domain::Clock;
use giftcodes::startup::Application;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const CLIENT_TOKEN: &str = "test-client-token-0123456789";

/// Where MariaDB tests connect (a login allowed to create `giftcodes_*` databases).
pub fn mysql_server_url() -> String {
    std::env::var("GIFTCODES_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://giftcodes:giftcodes@127.0.0.1:3306".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    MariaDb,
    Sqlite,
}

/// A clock tests can stop and move; until set, claims follow the database's clock.
#[derive(Default)]
pub struct TestClock(Mutex<Option<DateTime<Utc>>>);

impl TestClock {
    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap() = Some(now);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .unwrap()
            .unwrap_or_else(|| giftcodes::domain::SystemClock.now())
    }

    fn pinned(&self) -> Option<DateTime<Utc>> {
        *self.0.lock().unwrap()
    }
}

/// A database that exists for one test and is dropped after it, even when the test fails.
pub enum TestDatabase {
    MariaDb { name: String },
    Sqlite { _dir: tempfile::TempDir },
}

impl TestDatabase {
    /// The MariaDB database's name.
    pub fn mariadb_name(&self) -> &str {
        match self {
            TestDatabase::MariaDb { name } => name,
            TestDatabase::Sqlite { .. } => panic!("not a MariaDB database"),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::MariaDb { name } = self {
            let name = name.clone();
            let sql = format!("DROP DATABASE IF EXISTS `{name}`");
            // Drop runs outside any runtime we may block: use a thread with its own.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        if let Ok(server) = Database::connect(mysql_server_url()).await {
                            // A failed test may leave a transaction open on the database;
                            // end its connections so the drop never waits on their locks.
                            kill_connections_to(&server, &name).await;
                            let _ = server.execute_unprepared(&sql).await;
                        }
                    })
            })
            .join();
        }
    }
}

/// Kills every connection whose current database is `database` (but the caller's own).
pub async fn kill_connections_to(server: &DatabaseConnection, database: &str) {
    let Ok(rows) = server
        .query_all_raw(Statement::from_sql_and_values(
            server.get_database_backend(),
            "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
             WHERE db = ? AND id <> CONNECTION_ID()",
            [database.into()],
        ))
        .await
    else {
        return;
    };
    for row in rows {
        if let Ok(id) = row.try_get_by_index::<i64>(0) {
            // It may have ended by itself meanwhile.
            let _ = server
                .execute_unprepared(&format!("KILL CONNECTION {id}"))
                .await;
        }
    }
}

/// Creates an empty database of `backend`; returns its URL.
pub async fn create_database(backend: Backend) -> (String, TestDatabase) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
            (url, TestDatabase::Sqlite { _dir: dir })
        }
        Backend::MariaDb => {
            let server_url = mysql_server_url();
            let server = Database::connect(&server_url).await.unwrap_or_else(|err| {
                panic!(
                    "MariaDB is not reachable at {server_url} ({err}).\n\
                     Start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd\n\
                     and create the test login with: bash scripts/mariadb-test-login.sh\n\
                     (or point GIFTCODES_TEST_MYSQL_URL at a server where the login may create giftcodes_* databases)"
                )
            });
            let name = format!("giftcodes_t_{}", Uuid::new_v4().simple());
            server
                .execute_unprepared(&format!("CREATE DATABASE `{name}`"))
                .await
                .expect("create test database");
            (
                format!("{server_url}/{name}"),
                TestDatabase::MariaDb { name },
            )
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub clock: Arc<TestClock>,
    pub db: DatabaseConnection,
    /// The URL `db` connects with (the database's, as the test reaches it).
    pub database_url: String,
    _database: TestDatabase,
}

/// Starts the application on port 0 over a new database, with `extra` command-line settings.
pub async fn spawn_app_with(backend: Backend, extra: &[&str]) -> TestApp {
    let (url, database) = create_database(backend).await;
    spawn_app_over(&url, &url, database, extra).await
}

/// Starts the application on port 0 connected through `service_url` (another login, a
/// forwarder) to `database`, which the test itself reads through `test_url`.
pub async fn spawn_app_over(
    service_url: &str,
    test_url: &str,
    database: TestDatabase,
    extra: &[&str],
) -> TestApp {
    let mut args = vec![
        "giftcodes",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        service_url,
        "--admin-token",
        ADMIN_TOKEN,
    ];
    if !extra.contains(&"--client-tokens") {
        args.extend_from_slice(&["--client-tokens", CLIENT_TOKEN]);
    }
    args.extend_from_slice(extra);
    let settings = Cli::try_parse_from(args).expect("test settings").settings;
    let clock = Arc::new(TestClock::default());
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        http: reqwest::Client::new(),
        clock,
        db: Database::connect(test_url).await.expect("test connection"),
        database_url: test_url.to_owned(),
        _database: database,
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Runs a test body once on MariaDB and once on SQLite, as two test functions.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident => $body:path;)+) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test]
                async fn mariadb() {
                    $body($crate::helpers::spawn_app($crate::helpers::Backend::MariaDb).await).await;
                }

                #[tokio::test]
                async fn sqlite() {
                    $body($crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await).await;
                }
            }
        )+
    };
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_patch(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Creates a campaign from `body` and returns its id.
    pub async fn create_campaign(&self, body: Value) -> String {
        let response = self.admin_post("/v1/admin/campaigns", body).await;
        assert_eq!(response.status(), 201);
        let campaign: Value = response.json().await.unwrap();
        campaign["id"].as_str().unwrap().to_owned()
    }

    pub async fn campaign(&self, id: &str) -> Value {
        let response = self.admin_get(&format!("/v1/admin/campaigns/{id}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Uploads `body` as text/plain into the campaign.
    pub async fn load_text(&self, campaign: &str, body: String) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/admin/campaigns/{campaign}/batches")))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "text/plain")
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Loads `count` codes `{prefix}-{i}` and returns the batch id.
    pub async fn load_codes(&self, campaign: &str, prefix: &str, count: usize) -> String {
        let body: String = (0..count).map(|i| format!("{prefix}-{i}\n")).collect();
        let response = self.load_text(campaign, body).await;
        assert_eq!(response.status(), 201);
        let batch: Value = response.json().await.unwrap();
        assert_eq!(batch["inserted"], count);
        batch["id"].as_str().unwrap().to_owned()
    }

    pub async fn claim(&self, campaign: &str, user: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/campaigns/{campaign}/claims")))
            .bearer_auth(CLIENT_TOKEN)
            .json(&json!({ "user_id": user }))
            .send()
            .await
            .expect("request")
    }

    /// One number from a SQL query against the app's database.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    }
}

/// Asserts an error answer: status and stable code.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].is_string(), "body: {body}");
    body
}

impl TestApp {
    /// Polls `path` until it answers `status`, for at most `within`; panics otherwise.
    pub async fn wait_for_status(&self, path: &str, status: u16, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let answered = self.http.get(self.url(path)).send().await;
            if answered.as_ref().is_ok_and(|r| r.status() == status) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} did not answer {status} within {within:?}: {answered:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl TestApp {
    /// Sends a claim on a task of its own, for tests that act while it waits.
    pub fn claim_in_background(
        &self,
        campaign: &str,
        user: &str,
    ) -> tokio::task::JoinHandle<reqwest::Response> {
        let request = self
            .http
            .post(self.url(&format!("/v1/campaigns/{campaign}/claims")))
            .bearer_auth(CLIENT_TOKEN)
            .json(&json!({ "user_id": user }));
        tokio::spawn(async move { request.send().await.expect("request") })
    }
}

/// Asserts a `503 unavailable` answer with a `Retry-After` header.
pub async fn assert_unavailable(response: reqwest::Response) {
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    assert_error(response, 503, "unavailable").await;
    let seconds: u64 = retry_after
        .expect("503 carries Retry-After")
        .parse()
        .unwrap();
    assert!(seconds >= 1, "Retry-After: {seconds}");
}

/// A port nothing listens on now (for a child process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until a service process started by a test answers HTTP at `base`, for 20 s at most.
pub async fn wait_until_answering(base: &str) {
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "{base} did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

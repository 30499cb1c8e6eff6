//! What the README promises of each setting, checked against the running service: body and
//! claim time limits, several client tokens and writers, `--migrate false`, bad values, and
//! secrets that never reach the log.
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::components::MariaDbLogin;
use crate::helpers::{
    Backend, CLIENT_TOKEN, TestApp, assert_error, assert_unavailable, create_database, free_port,
    spawn_app_with, wait_until_answering,
};

async fn bodies_over_max_body_bytes_are_refused_with_or_without_a_length(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-body-bytes", "100"]).await;
    let id = app.create_campaign(json!({ "name": "Small" })).await;
    app.load_codes(&id, "B", 2).await;
    let claims = app.url(&format!("/v1/campaigns/{id}/claims"));
    // 112 bytes of valid JSON with a valid 98-character user id: only the size is wrong.
    let large = json!({ "user_id": "u".repeat(98) }).to_string();
    assert_eq!(large.len(), 112);
    let declared = app
        .http
        .post(&claims)
        .bearer_auth(CLIENT_TOKEN)
        .header("content-type", "application/json")
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_error(declared, 413, "payload_too_large").await;
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(large[..60].to_owned()), Ok(large[60..].to_owned())];
    let chunked = app
        .http
        .post(&claims)
        .bearer_auth(CLIENT_TOKEN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_error(chunked, 413, "payload_too_large").await;
    assert_eq!(
        app.claim(&id, &"u".repeat(80)).await.status(),
        201,
        "a body within the limit is served"
    );
}

#[tokio::test]
async fn bodies_over_max_body_bytes_are_refused_with_or_without_a_length_mariadb() {
    bodies_over_max_body_bytes_are_refused_with_or_without_a_length(Backend::MariaDb).await;
}

#[tokio::test]
async fn bodies_over_max_body_bytes_are_refused_with_or_without_a_length_sqlite() {
    bodies_over_max_body_bytes_are_refused_with_or_without_a_length(Backend::Sqlite).await;
}

#[tokio::test]
async fn every_configured_client_token_is_admitted() {
    let second = "second-client-token-0123456789";
    let tokens = format!("{CLIENT_TOKEN},{second}");
    let app = spawn_app_with(Backend::Sqlite, &["--client-tokens", &tokens]).await;
    let id = app.create_campaign(json!({ "name": "Two tokens" })).await;
    app.load_codes(&id, "T", 3).await;
    for (token, user) in [(CLIENT_TOKEN, "one"), (second, "two")] {
        let response = app
            .http
            .post(app.url(&format!("/v1/campaigns/{id}/claims")))
            .bearer_auth(token)
            .json(&json!({ "user_id": user }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "token of {user}");
    }
    let not_listed = app
        .http
        .post(app.url(&format!("/v1/campaigns/{id}/claims")))
        .bearer_auth("third-client-token-0123456789")
        .json(&json!({ "user_id": "three" }))
        .send()
        .await
        .unwrap();
    assert_error(not_listed, 401, "unauthorized").await;
}

async fn table_count(app: &TestApp) -> i64 {
    let sql = match app.db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'campaigns'"
        }
        _ => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'campaigns'"
        }
    };
    app.scalar(sql).await
}

async fn migrate_false_leaves_the_schema_to_the_deploy_step(backend: Backend) {
    let app = spawn_app_with(backend, &["--migrate", "false"]).await;
    assert_eq!(table_count(&app).await, 0, "serve did not migrate");
    let app = spawn_app_with(backend, &[]).await;
    assert_eq!(table_count(&app).await, 1, "serve migrates by default");
}

#[tokio::test]
async fn migrate_false_leaves_the_schema_to_the_deploy_step_mariadb() {
    migrate_false_leaves_the_schema_to_the_deploy_step(Backend::MariaDb).await;
}

#[tokio::test]
async fn migrate_false_leaves_the_schema_to_the_deploy_step_sqlite() {
    migrate_false_leaves_the_schema_to_the_deploy_step(Backend::Sqlite).await;
}

async fn several_writers_fill_the_limit_exactly(backend: Backend) {
    let app = spawn_app_with(backend, &["--claim-writers", "4", "--claim-max-batch", "8"]).await;
    let id = app
        .create_campaign(json!({ "name": "Writers", "daily_limit": 150 }))
        .await;
    app.load_codes(&id, "W", 400).await;
    let users: Vec<String> = (0..400).map(|i| format!("w-{i}")).collect();
    let answers = join_all(users.iter().map(|user| async {
        let response = app.claim(&id, user).await;
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    }))
    .await;
    let issued: HashSet<&str> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body["code"].as_str().unwrap())
        .collect();
    let limited = answers
        .iter()
        .filter(|(status, body)| *status == 409 && body["code"] == "daily_limit_reached")
        .count();
    assert_eq!((issued.len(), limited), (150, 250));
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM codes WHERE status = 1")
            .await,
        150
    );
    assert_eq!(
        app.scalar("SELECT CAST(SUM(issued) AS SIGNED) FROM campaign_day_counters")
            .await,
        150
    );
}

/// Writers take the clients of their connections, so one campaign's claims come to several
/// writers at once: each campaign still issues each code once, fills its limit exactly, and a
/// user asking twice at once (two connections) gets one code.
async fn several_writers_share_campaigns_and_each_issues_exactly(backend: Backend) {
    let app = spawn_app_with(backend, &["--claim-writers", "4", "--claim-max-batch", "8"]).await;
    let mut campaigns = Vec::new();
    for c in 0..8 {
        let id = app
            .create_campaign(json!({ "name": format!("Shared {c}"), "daily_limit": 25 }))
            .await;
        app.load_codes(&id, &format!("S{c}-"), 30).await;
        campaigns.push(id);
    }
    let requests: Vec<(usize, String)> = (0..2)
        .flat_map(|_| (0..320).map(|i| (i % 8, format!("s-{i}"))))
        .collect();
    let answers = join_all(requests.iter().map(|(c, user)| async {
        let response = app.claim(&campaigns[*c], user).await;
        let status = response.status().as_u16();
        (
            *c,
            user.clone(),
            status,
            response.json::<Value>().await.unwrap(),
        )
    }))
    .await;
    let mut codes_of_users = std::collections::HashMap::<String, HashSet<String>>::new();
    for (_, user, status, body) in &answers {
        match status {
            200 | 201 => {
                codes_of_users
                    .entry(user.clone())
                    .or_default()
                    .insert(body["code"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(body["code"], "daily_limit_reached", "{user}: {body}"),
            _ => panic!("{user}: {status} {body}"),
        }
    }
    assert!(
        codes_of_users.values().all(|codes| codes.len() == 1),
        "a user with two codes"
    );
    for (c, id) in campaigns.iter().enumerate() {
        let issued: HashSet<&str> = answers
            .iter()
            .filter(|(campaign, _, status, _)| *campaign == c && *status == 201)
            .map(|(_, _, _, body)| body["code"].as_str().unwrap())
            .collect();
        assert_eq!(issued.len(), 25, "campaign {c}");
        assert_eq!(app.campaign(id).await["issued_today"], 25, "campaign {c}");
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM codes WHERE status = 1")
            .await,
        200
    );
}

#[tokio::test]
async fn several_writers_share_campaigns_and_each_issues_exactly_mariadb() {
    several_writers_share_campaigns_and_each_issues_exactly(Backend::MariaDb).await;
}

#[tokio::test]
async fn several_writers_share_campaigns_and_each_issues_exactly_sqlite() {
    several_writers_share_campaigns_and_each_issues_exactly(Backend::Sqlite).await;
}

#[tokio::test]
async fn several_writers_fill_the_limit_exactly_mariadb() {
    several_writers_fill_the_limit_exactly(Backend::MariaDb).await;
}

#[tokio::test]
async fn several_writers_fill_the_limit_exactly_sqlite() {
    several_writers_fill_the_limit_exactly(Backend::Sqlite).await;
}

/// A claim stuck behind a table lock another session holds (no InnoDB lock wait ends it) is
/// answered `unavailable` when the claim timeout runs out.
#[tokio::test]
async fn a_claim_stuck_past_the_claim_timeout_answers_unavailable() {
    let app = spawn_app_with(Backend::MariaDb, &["--claim-timeout-ms", "1000"]).await;
    let id = app.create_campaign(json!({ "name": "Stuck" })).await;
    app.load_codes(&id, "S", 5).await;
    assert_eq!(app.claim(&id, "first").await.status(), 201);
    // One connection of the test's pool, held by the transaction object.
    let outside = app.db.begin().await.unwrap();
    outside
        .execute_unprepared("LOCK TABLES campaign_day_counters WRITE")
        .await
        .unwrap();
    let started = Instant::now();
    assert_unavailable(app.claim(&id, "second").await).await;
    let waited = started.elapsed();
    outside.execute_unprepared("UNLOCK TABLES").await.unwrap();
    outside.rollback().await.unwrap();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "answered after {waited:?}, claim timeout 1 s"
    );
    assert_eq!(app.claim(&id, "third").await.status(), 201);
}

/// Runs `giftcodes serve` with `env`; its exit status and standard error, or a failure if it
/// is still running after 10 s (it accepted what it should have refused).
fn run_briefly(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_giftcodes"));
    command
        .arg("serve")
        .env("GIFTCODES_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", "sqlite::memory:")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.reopen().unwrap());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("run giftcodes");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("giftcodes started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(stderr.path()).unwrap())
}

/// Runs the binary with one bad setting; it must stop at once, saying so in one line.
fn start_fails_with_one_line(name: &str, value: &str, expect: &str) {
    let (status, stderr) = run_briefly(&[(name, value)]);
    assert!(!status.success(), "{name}={value} started");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{name}={value}: {stderr}");
    assert!(
        lines[0].starts_with("giftcodes: ") && lines[0].contains(expect),
        "{name}={value}: {stderr}"
    );
}

#[test]
fn bad_settings_stop_the_start_with_one_line() {
    for (name, value, expect) in [
        ("GIFTCODES_LISTEN", "not-an-address", "listen"),
        ("DATABASE_URL", "postgres://db/x", "sqlite:// or mysql://"),
        (
            "DATABASE_URL",
            "mysql://nobody:pw@127.0.0.1:1/x",
            "cannot connect",
        ),
        ("GIFTCODES_MIGRATE", "maybe", "migrate"),
        ("GIFTCODES_DB_MAX_CONNECTIONS", "1", "db-max-connections"),
        ("GIFTCODES_DB_TIMEOUT_MS", "0", "db-timeout-ms"),
        ("GIFTCODES_CLAIM_WRITERS", "0", "claim-writers"),
        ("GIFTCODES_WORKER_THREADS", "0", "worker-threads"),
        ("GIFTCODES_CLAIM_MAX_BATCH", "1001", "claim-max-batch"),
        ("GIFTCODES_CLAIM_TIMEOUT_MS", "soon", "claim-timeout-ms"),
        ("GIFTCODES_LOG_FORMAT", "xml", "log-format"),
        ("GIFTCODES_ADMIN_TOKEN", "short", "GIFTCODES_ADMIN_TOKEN"),
    ] {
        start_fails_with_one_line(name, value, expect);
    }
}

/// `GIFTCODES_WORKER_THREADS` sets how many threads run the service: its start-up line says
/// how many the runtime has.
#[test]
fn worker_threads_set_the_runtime_s_threads() {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_giftcodes"))
        .arg("serve")
        .env("GIFTCODES_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", "sqlite::memory:")
        .env("GIFTCODES_WORKER_THREADS", "3")
        .env("GIFTCODES_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .expect("run giftcodes");
    let deadline = Instant::now() + Duration::from_secs(10);
    let serving = loop {
        let log = std::fs::read_to_string(stderr.path()).unwrap();
        if let Some(line) = log.lines().find(|l| l.contains("giftcodes is serving")) {
            break line.to_owned();
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("giftcodes did not start: {log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    let line: Value = serde_json::from_str(&serving).unwrap();
    assert_eq!(line["fields"]["worker_threads"], 3, "{serving}");
}

#[test]
fn a_malformed_token_is_not_echoed() {
    let (status, stderr) = run_briefly(&[(
        "GIFTCODES_CLIENT_TOKENS",
        "fine-token-0123456789,tiny secret",
    )]);
    assert!(!status.success());
    assert!(stderr.contains("GIFTCODES_CLIENT_TOKENS"), "{stderr}");
    assert!(!stderr.contains("tiny secret") && !stderr.contains("fine-token"));
}

/// A service run at the most verbose log level, with JSON logs, through good and bad
/// requests: its output never holds a token or the database password.
#[tokio::test]
async fn tokens_and_the_database_password_never_reach_the_log() {
    let (_, database) = create_database(Backend::MariaDb).await;
    let login = MariaDbLogin::create(database.mariadb_name()).await;
    let admin = format!("admin-{}", Uuid::new_v4().simple());
    let client = format!("client-{}", Uuid::new_v4().simple());
    let other_client = format!("other-{}", Uuid::new_v4().simple());
    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_giftcodes"))
        .arg("serve")
        .env("GIFTCODES_LISTEN", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", login.url())
        .env("GIFTCODES_ADMIN_TOKEN", &admin)
        .env(
            "GIFTCODES_CLIENT_TOKENS",
            format!("{client},{other_client}"),
        )
        .env("GIFTCODES_LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_answering(&base).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/v1/admin/campaigns"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "Logged" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let upload = http
        .post(format!("{base}/v1/admin/campaigns/{id}/batches"))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("LOG-1\nLOG-2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    for token in [client.as_str(), other_client.as_str(), admin.as_str()] {
        http.post(format!("{base}/v1/campaigns/{id}/claims"))
            .bearer_auth(token)
            .json(&json!({ "user_id": "logged" }))
            .send()
            .await
            .unwrap();
    }
    http.get(format!("{base}/v1/admin/campaigns/{id}"))
        .bearer_auth(&client)
        .send()
        .await
        .unwrap();
    // The database goes away: errors are logged too.
    login.drop_and_kill_connections().await;
    http.post(format!("{base}/v1/campaigns/{id}/claims"))
        .bearer_auth(&client)
        .json(&json!({ "user_id": "during-outage" }))
        .send()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let output = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        output.lines().count() > 10,
        "the trace log was written: {output}"
    );
    for (what, secret) in [
        ("the admin token", &admin),
        ("a client token", &client),
        ("the other client token", &other_client),
        ("the database password", &login.password),
    ] {
        let leaks: Vec<String> = output
            .lines()
            .filter(|line| line.contains(secret.as_str()))
            .map(|line| line.replace(secret.as_str(), "<SECRET>"))
            .collect();
        assert!(leaks.is_empty(), "{what} is in the log: {leaks:#?}");
    }
}

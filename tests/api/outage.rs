//! The database goes away under a running service: probes and claims answer `503 unavailable`
//! with `Retry-After` (within the configured wait), and the service recovers by itself.
use std::time::{Duration, Instant};

use serde_json::json;

use crate::components::{MariaDbLogin, TcpForwarder};
use crate::helpers::{Backend, TestApp, assert_unavailable, create_database, spawn_app_over};

async fn stocked_campaign(app: &TestApp) -> String {
    let id = app.create_campaign(json!({ "name": "Outage" })).await;
    app.load_codes(&id, "O", 10).await;
    assert_eq!(app.claim(&id, "before").await.status(), 201);
    id
}

#[tokio::test]
async fn a_dropped_login_is_unavailable_and_its_return_is_served_without_a_restart() {
    let (test_url, database) = create_database(Backend::MariaDb).await;
    let login = MariaDbLogin::create(database.mariadb_name()).await;
    let app = spawn_app_over(
        &login.url(),
        &test_url,
        database,
        &["--db-timeout-ms", "1000"],
    )
    .await;
    let campaign = stocked_campaign(&app).await;

    login.drop_and_kill_connections().await;
    let readyz = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_unavailable(readyz).await;
    assert_unavailable(app.claim(&campaign, "during").await).await;
    let healthz = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200, "the process itself is still alive");

    login.restore().await;
    app.wait_for_status("/readyz", 200, Duration::from_secs(10))
        .await;
    assert_eq!(app.claim(&campaign, "after").await.status(), 201);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM codes WHERE status = 1")
            .await,
        2,
        "the claim answered 503 issued nothing"
    );
}

#[tokio::test]
async fn an_unanswering_database_is_reported_within_the_db_timeout_and_recovers() {
    let (test_url, database) = create_database(Backend::MariaDb).await;
    let login = MariaDbLogin::create(database.mariadb_name()).await;
    let forwarder = TcpForwarder::to_mariadb().await;
    let app = spawn_app_over(
        &login.url_via(forwarder.address),
        &test_url,
        database,
        &["--db-timeout-ms", "700", "--claim-timeout-ms", "10000"],
    )
    .await;
    let campaign = stocked_campaign(&app).await;

    forwarder.black_hole();
    // Past the pool's idle check (1 s), so every connection is tested and a new one is sought.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..2 {
        let started = Instant::now();
        let readyz = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_unavailable(readyz).await;
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(1600),
            "readyz answered after {waited:?}, DB timeout 700 ms"
        );
        let started = Instant::now();
        assert_unavailable(app.claim(&campaign, "during").await).await;
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(1600),
            "claim answered after {waited:?}, DB timeout 700 ms"
        );
    }

    forwarder.forward();
    app.wait_for_status("/readyz", 200, Duration::from_secs(10))
        .await;
    assert_eq!(app.claim(&campaign, "after").await.status(), 201);
}

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

/// The service on a login of its own, through a TCP forwarder, with the database timeout
/// `db_timeout_ms` and a claim timeout long enough not to interfere.
async fn behind_a_forwarder(db_timeout_ms: &str) -> (TestApp, TcpForwarder, MariaDbLogin) {
    let (test_url, database) = create_database(Backend::MariaDb).await;
    let login = MariaDbLogin::create(database.mariadb_name()).await;
    let forwarder = TcpForwarder::to_mariadb().await;
    let app = spawn_app_over(
        &login.url_via(forwarder.address),
        &test_url,
        database,
        &[
            "--db-timeout-ms",
            db_timeout_ms,
            "--claim-timeout-ms",
            "10000",
        ],
    )
    .await;
    (app, forwarder, login)
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
    let (app, forwarder, _login) = behind_a_forwarder("700").await;
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

/// A claim whose statement the database kills (an operator's `KILL QUERY`, a failover tool)
/// is answered 503 `unavailable`, not 500, and the next claim is served.
#[tokio::test]
async fn a_killed_claim_statement_answers_unavailable() {
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

    let (test_url, database) = create_database(Backend::MariaDb).await;
    let login = MariaDbLogin::create(database.mariadb_name()).await;
    let app = spawn_app_over(&login.url(), &test_url, database, &[]).await;
    let campaign = stocked_campaign(&app).await;
    let outside = app.db.begin().await.unwrap();
    outside
        .execute_unprepared("LOCK TABLES campaign_day_counters WRITE")
        .await
        .unwrap();
    let claim = app.claim_in_background(&campaign, "killed");
    let waiting = loop {
        let row = outside
            .query_one_raw(Statement::from_sql_and_values(
                outside.get_database_backend(),
                "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
                 WHERE user = ? AND state LIKE '%lock%'",
                [login.user.clone().into()],
            ))
            .await
            .unwrap();
        if let Some(row) = row {
            break row.try_get_by_index::<i64>(0).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    outside
        .execute_unprepared(&format!("KILL QUERY {waiting}"))
        .await
        .unwrap();
    assert_unavailable(claim.await.unwrap()).await;
    outside.execute_unprepared("UNLOCK TABLES").await.unwrap();
    outside.rollback().await.unwrap();
    assert_eq!(app.claim(&campaign, "next").await.status(), 201);
}

/// Every connection the service holds is killed (a failover, an operator's `KILL CONNECTION`)
/// just after use, before the pool would test it again: the claims that meet a broken
/// connection run again on a new one and are served, each once, instead of answered 503.
#[tokio::test]
async fn claims_that_meet_a_killed_connection_are_served_on_a_new_one() {
    let (test_url, database) = create_database(Backend::MariaDb).await;
    let login = MariaDbLogin::create(database.mariadb_name()).await;
    let app = spawn_app_over(&login.url(), &test_url, database, &[]).await;
    let campaign = stocked_campaign(&app).await;
    for round in 0..3 {
        login.kill_connections().await;
        let claims: Vec<_> = (0..3)
            .map(|i| app.claim_in_background(&campaign, &format!("after-{round}-{i}")))
            .collect();
        for claim in claims {
            let response = claim.await.unwrap();
            let status = response.status();
            assert_eq!(status, 201, "{}", response.text().await.unwrap());
        }
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM codes WHERE status = 1")
            .await,
        10,
        "every claim served issued one code"
    );
}

/// The connection of a claim's transaction is cut after its `COMMIT` reached the database and
/// before the answer came back (a failover at the worst moment): the round runs again on a new
/// connection, where the one-code-per-user key turns it into a replay, so the user gets the
/// code that was committed — once, and counted once.
#[tokio::test]
async fn a_claim_whose_commit_answer_is_lost_returns_the_committed_code() {
    let (app, forwarder, _login) = behind_a_forwarder("2000").await;
    let campaign = stocked_campaign(&app).await;

    forwarder.cut_at_next_commit();
    let response = app.claim(&campaign, "cut").await;
    assert!(
        forwarder.commit_was_cut(),
        "the claim's COMMIT went through the forwarder"
    );
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    // The COMMIT took effect (the forwarder held the connection open until the server had
    // it), so the rerun finds the claim and replays it.
    assert_eq!(status, 200, "{body}");
    let code = body["code"].as_str().expect("a code").to_owned();
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM codes WHERE issued_to = 'cut' AND code = '{code}'"
        ))
        .await,
        1,
        "the answered code is the one issued to the user"
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM codes WHERE status = 1")
            .await,
        2,
        "one code for the claim before and one for this one"
    );
    assert_eq!(
        app.scalar("SELECT CAST(SUM(issued) AS SIGNED) FROM campaign_day_counters")
            .await,
        2,
        "the day's counter counts each issued code once"
    );
}

/// Claims that queue while a batch waits for an unanswering database are refused as soon as
/// that batch gives up, so none waits for the connection timeout twice.
#[tokio::test]
async fn claims_queued_behind_an_unreachable_database_are_refused_at_once() {
    let (app, forwarder, _login) = behind_a_forwarder("1500").await;
    let campaign = stocked_campaign(&app).await;
    forwarder.black_hole();
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let first = app.claim_in_background(&campaign, "first");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let users: Vec<String> = (0..10).map(|i| format!("queued-{i}")).collect();
    let started = Instant::now();
    let queued =
        futures_util::future::join_all(users.iter().map(|user| app.claim(&campaign, user))).await;
    let waited = started.elapsed();
    assert_unavailable(first.await.unwrap()).await;
    for response in queued {
        assert_unavailable(response).await;
    }
    assert!(
        waited < Duration::from_millis(2200),
        "the queued claims were answered after {waited:?}: they waited for a second timeout \
         (DB timeout 1.5 s)"
    );
}

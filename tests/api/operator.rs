//! Operator changes while claims run: a lowered limit holds from the moment the PATCH
//! answers, and neither an upload nor a PATCH holds claims up.
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, spawn_app};

async fn issued(app: &TestApp) -> i64 {
    app.scalar("SELECT COUNT(*) FROM codes WHERE status = 1")
        .await
}

/// Each round: room for 30 more, 40 users claim at once, and the limit is lowered under
/// them. Whatever committed after the PATCH answered must fit the new limit: the day ends at
/// most at max(new limit, what was issued when the PATCH answered).
#[tokio::test]
async fn a_limit_lowered_under_a_claim_storm_holds_once_the_patch_answers() {
    let app = spawn_app(Backend::MariaDb).await;
    let id = app
        .create_campaign(json!({ "name": "Race", "daily_limit": 0 }))
        .await;
    app.load_codes(&id, "RACE", 1000).await;
    let path = format!("/v1/admin/campaigns/{id}");
    let mut next_user = 0;
    for round in 0..20 {
        let before = issued(&app).await;
        let raised = app
            .admin_patch(&path, json!({ "daily_limit": before + 30 }))
            .await;
        assert_eq!(raised.status(), 200);
        let users: Vec<String> = (next_user..next_user + 40)
            .map(|i| format!("race-{i}"))
            .collect();
        next_user += 40;
        let storm = join_all(users.iter().map(|user| app.claim(&id, user)));
        let lower = async {
            tokio::time::sleep(Duration::from_millis(round % 5)).await;
            let new_limit = before + 5 + (round as i64 % 7);
            let lowered = app
                .admin_patch(&path, json!({ "daily_limit": new_limit }))
                .await;
            assert_eq!(lowered.status(), 200);
            (new_limit, issued(&app).await)
        };
        let (answers, (new_limit, at_patch)) = tokio::join!(storm, lower);
        assert!(
            answers
                .iter()
                .all(|r| [201, 409].contains(&r.status().as_u16()))
        );
        let after = issued(&app).await;
        assert!(
            after <= new_limit.max(at_patch),
            "round {round}: {after} issued, limit lowered to {new_limit} when {at_patch} were"
        );
    }
}

/// Each round: 40 users claim at once and the campaign is deactivated under them. Nothing
/// commits after the PATCH answered: the count read right after it is the day's last.
#[tokio::test]
async fn a_deactivation_under_a_claim_storm_holds_once_the_patch_answers() {
    let app = spawn_app(Backend::MariaDb).await;
    let id = app.create_campaign(json!({ "name": "Off" })).await;
    app.load_codes(&id, "OFF", 1000).await;
    let path = format!("/v1/admin/campaigns/{id}");
    for round in 0..20 {
        let reopened = app.admin_patch(&path, json!({ "active": true })).await;
        assert_eq!(reopened.status(), 200);
        let users: Vec<String> = (0..40).map(|i| format!("off-{round}-{i}")).collect();
        let storm = join_all(users.iter().map(|user| app.claim(&id, user)));
        let deactivate = async {
            tokio::time::sleep(Duration::from_millis(round % 5)).await;
            let closed = app.admin_patch(&path, json!({ "active": false })).await;
            assert_eq!(closed.status(), 200);
            issued(&app).await
        };
        let (answers, at_patch) = tokio::join!(storm, deactivate);
        assert!(
            answers
                .iter()
                .all(|r| [201, 409].contains(&r.status().as_u16())),
            "round {round}: {:?}",
            answers.iter().map(|r| r.status()).collect::<Vec<_>>()
        );
        let after = issued(&app).await;
        assert_eq!(
            after, at_patch,
            "round {round}: issued after the deactivation answered"
        );
    }
}

/// A PATCH during a long streamed upload answers at once, and claims of that campaign go on.
#[tokio::test]
async fn an_upload_in_progress_holds_up_neither_a_patch_nor_claims() {
    let app = spawn_app(Backend::MariaDb).await;
    let id = app.create_campaign(json!({ "name": "Busy" })).await;
    app.load_codes(&id, "READY", 100).await;
    let quiet = p99_of_claims(&app, &id, "quiet").await;
    // 200,000 codes streamed over ~2 s, in one transaction.
    let chunks = (0..40).map(|chunk| {
        let body: String = (0..5000).map(|i| format!("SLOW-{chunk}-{i}\n")).collect();
        Ok::<_, std::io::Error>(body)
    });
    let paced = futures_util::StreamExt::then(futures_util::stream::iter(chunks), |chunk| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        chunk
    });
    let upload = tokio::spawn(
        app.http
            .post(app.url(&format!("/v1/admin/campaigns/{id}/batches")))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "text/plain")
            .body(reqwest::Body::wrap_stream(paced))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let patched = app
        .admin_patch(
            &format!("/v1/admin/campaigns/{id}"),
            json!({ "daily_limit": 500 }),
        )
        .await;
    let patch_took = started.elapsed();
    assert_eq!(patched.status(), 200);
    assert!(
        patch_took < Duration::from_secs(1),
        "PATCH took {patch_took:?}"
    );
    let during = p99_of_claims(&app, &id, "busy").await;
    // The fault this guards against held claims for the whole upload (3-5 s seen). The bound
    // leaves room for a debug build sharing two cores with the rest of the suite (94 ms seen
    // there); the 50 ms of the release build is a benchmark's business, not a test's.
    let bound = Duration::from_millis(250).max(quiet * 4);
    assert!(
        during <= bound,
        "claim p99 {during:?} during the upload, {quiet:?} before it"
    );
    let uploaded = upload.await.unwrap().unwrap();
    assert_eq!(uploaded.status(), 201, "the upload itself completed");
}

/// Claims 40 new users one after another; the 99th percentile of their latencies.
async fn p99_of_claims(app: &TestApp, campaign: &str, prefix: &str) -> Duration {
    let mut latencies = Vec::with_capacity(40);
    for i in 0..40 {
        let started = Instant::now();
        let status = app.claim(campaign, &format!("{prefix}-{i}")).await.status();
        assert_eq!(status, 201);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies[latencies.len() * 99 / 100]
}

/// The window made wide on purpose: another session holds the day's counter, so a claim
/// transaction has read the limit and waits; the limit is lowered meanwhile. The PATCH may
/// answer only once that transaction is decided (it read the limit under the campaign row's
/// lock), so nothing commits after the PATCH answers beyond the new limit.
#[tokio::test]
async fn a_limit_lowered_while_a_claim_waits_at_the_counter_holds() {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    let app = spawn_app(Backend::MariaDb).await;
    let id = app
        .create_campaign(json!({ "name": "Window", "daily_limit": 10 }))
        .await;
    app.load_codes(&id, "WIN", 20).await;
    for user in ["w0", "w1", "w2"] {
        assert_eq!(app.claim(&id, user).await.status(), 201);
    }
    let outside = app.db.begin().await.unwrap();
    outside
        .execute_unprepared("SELECT * FROM campaign_day_counters FOR UPDATE")
        .await
        .unwrap();
    let users: Vec<String> = (3..8).map(|i| format!("w{i}")).collect();
    let storm = join_all(users.iter().map(|user| app.claim(&id, user)));
    let lower = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lowered = app
            .admin_patch(
                &format!("/v1/admin/campaigns/{id}"),
                json!({ "daily_limit": 4 }),
            )
            .await;
        assert_eq!(lowered.status(), 200);
        issued(&app).await
    };
    let release = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        outside.rollback().await.unwrap();
    };
    let (_, at_patch, ()) = tokio::join!(storm, lower, release);
    let after = issued(&app).await;
    assert!(
        after <= at_patch.max(4),
        "{after} issued; the limit was lowered to 4 when {at_patch} were"
    );
}

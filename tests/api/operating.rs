//! What an operator uses to run the service: metrics, request ids, the stock outlook,
//! listings, the claim export and the audit trail.
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, CLIENT_TOKEN, TestApp, assert_error, spawn_app_with};
use crate::on_both_backends;

on_both_backends! {
    metrics_need_a_token_and_count_requests_claims_and_stock => metrics_need_a_token_and_count_requests_claims_and_stock;
    every_answer_carries_a_request_id => every_answer_carries_a_request_id;
    the_campaign_view_estimates_when_stock_runs_out => the_campaign_view_estimates_when_stock_runs_out;
    campaigns_are_listed_in_pages_and_filtered_by_active => campaigns_are_listed_in_pages_and_filtered_by_active;
    a_campaigns_batches_are_listed_with_their_counts => a_campaigns_batches_are_listed_with_their_counts;
    claims_are_listed_in_pages_and_exported_as_csv => claims_are_listed_in_pages_and_exported_as_csv;
    admin_actions_are_in_the_audit_trail_with_the_token_id_only => admin_actions_are_in_the_audit_trail_with_the_token_id_only;
    listing_errors_are_the_documented_ones => listing_errors_are_the_documented_ones;
}

const NOON: &str = "2026-11-20T12:00:00Z";

fn at(instant: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(instant)
        .unwrap()
        .with_timezone(&Utc)
}

async fn metrics_text(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn metrics_need_a_token_and_count_requests_claims_and_stock(app: TestApp) {
    let anonymous = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_error(anonymous, 401, "unauthorized").await;
    assert_error(metrics_text(&app, CLIENT_TOKEN).await, 401, "unauthorized").await;
    let id = app
        .create_campaign(json!({ "name": "Metered", "daily_limit": 10 }))
        .await;
    app.load_codes(&id, "MET", 3).await;
    let revoked = app.load_codes(&id, "REV", 2).await;
    let revoke = app
        .http
        .post(app.url(&format!(
            "/v1/admin/campaigns/{id}/batches/{revoked}/revoke"
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    assert_eq!(app.claim(&id, "u1").await.status(), 201);
    assert_eq!(app.claim(&id, "u1").await.status(), 200);
    assert_eq!(app.claim(&id, "u2").await.status(), 201);
    assert_eq!(app.claim(&id, "u3").await.status(), 201);
    assert_eq!(app.claim(&id, "u4").await.status(), 409);
    let response = metrics_text(&app, ADMIN_TOKEN).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for line in [
        r#"giftcodes_claims_total{outcome="issued"} 3"#,
        r#"giftcodes_claims_total{outcome="replayed"} 1"#,
        r#"giftcodes_claims_total{outcome="out_of_stock"} 1"#,
        r#"giftcodes_http_requests_total{method="POST",route="/v1/campaigns/{campaign_id}/claims",status="201"} 3"#,
        r#"giftcodes_upload_rows_total 5"#,
        "giftcodes_db_up 1",
        "giftcodes_campaigns_active 1",
        // Five claims one after another: five rounds of one.
        "giftcodes_claim_transaction_seconds_count 5",
        "giftcodes_claim_transaction_claims_sum 5",
        "giftcodes_db_pool_connections{state=\"idle\"}",
    ] {
        assert!(text.contains(line), "no {line} in:\n{text}");
    }
    let labels = format!(r#"{{campaign="Metered",campaign_id="{id}"}}"#);
    for series in [
        format!("giftcodes_campaign_available_codes{labels} 0"),
        format!("giftcodes_campaign_issued_today{labels} 3"),
        format!("giftcodes_campaign_remaining_today{labels} 7"),
        format!("giftcodes_campaign_stock_seconds_left{labels} 0"),
    ] {
        assert!(text.contains(&series), "no {series} in:\n{text}");
    }
    let closed = app
        .admin_patch(
            &format!("/v1/admin/campaigns/{id}"),
            json!({ "active": false }),
        )
        .await;
    assert_eq!(closed.status(), 200);
    let text = metrics_text(&app, ADMIN_TOKEN).await.text().await.unwrap();
    assert!(!text.contains(&id), "an inactive campaign has no series");
}

async fn a_metrics_token_reads_metrics_and_nothing_else(backend: Backend) {
    let token = "scrape-token-0123456789";
    let app = spawn_app_with(backend, &["--metrics-token", token]).await;
    assert_eq!(metrics_text(&app, token).await.status(), 200);
    let admin = app
        .http
        .get(app.url("/v1/admin/campaigns"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_error(admin, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_metrics_token_reads_metrics_and_nothing_else_on_sqlite() {
    a_metrics_token_reads_metrics_and_nothing_else(Backend::Sqlite).await;
}

#[tokio::test]
async fn with_metrics_off_the_scrape_says_so() {
    let app = spawn_app_with(Backend::Sqlite, &["--metrics", "false"]).await;
    let text = metrics_text(&app, ADMIN_TOKEN).await.text().await.unwrap();
    assert!(text.starts_with("# metrics recording is off"), "{text}");
}

async fn every_answer_carries_a_request_id(app: TestApp) {
    let given = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    let made = app.http.get(app.url("/v1/nothing")).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_error(made, 404, "not_found").await;
    let refused = app
        .http
        .get(app.url("/v1/admin/campaigns"))
        .header("x-request-id", "not ok")
        .send()
        .await
        .unwrap();
    assert_ne!(refused.headers()["x-request-id"], "not ok");
    assert_error(refused, 401, "unauthorized").await;
}

async fn the_campaign_view_estimates_when_stock_runs_out(app: TestApp) {
    app.clock.set(at(NOON));
    let id = app.create_campaign(json!({ "name": "Outlook" })).await;
    let empty = app.campaign(&id).await;
    assert_eq!(empty["claims_per_hour"], 0.0);
    assert_eq!(empty["stock_runs_out_at"], NOON, "no codes: out now");
    app.load_codes(&id, "OUT", 5).await;
    let unclaimed = app.campaign(&id).await;
    assert!(
        unclaimed["stock_runs_out_at"].is_null(),
        "no rate: no estimate"
    );
    for user in ["a", "b", "c"] {
        assert_eq!(app.claim(&id, user).await.status(), 201);
    }
    // 3 claims within the first minute (the shortest window): 180 per hour; 2 codes left
    // last 40 s at that rate.
    let view = app.campaign(&id).await;
    assert_eq!(view["claims_per_hour"], 180.0);
    assert_eq!(view["stock_runs_out_at"], "2026-11-20T12:00:40Z");
}

async fn campaigns_are_listed_in_pages_and_filtered_by_active(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["L1", "L2", "L3"] {
        ids.push(app.create_campaign(json!({ "name": name })).await);
    }
    app.admin_patch(
        &format!("/v1/admin/campaigns/{}", ids[1]),
        json!({ "active": false }),
    )
    .await;
    let first: Value = app
        .admin_get("/v1/admin/campaigns?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["L1", "L2"]);
    assert!(first["items"][0]["available"].is_i64());
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .admin_get(&format!("/v1/admin/campaigns?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"][0]["name"], "L3");
    assert!(second["next_cursor"].is_null());
    let active: Value = app
        .admin_get("/v1/admin/campaigns?active=true")
        .await
        .json()
        .await
        .unwrap();
    let active: Vec<&str> = active["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(active, ["L1", "L3"]);
}

async fn a_campaigns_batches_are_listed_with_their_counts(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Batches" })).await;
    let first = app.load_codes(&id, "B1", 3).await;
    let second = app.load_codes(&id, "B2", 2).await;
    assert_eq!(app.claim(&id, "u").await.status(), 201);
    let listed: Value = app
        .admin_get(&format!("/v1/admin/campaigns/{id}/batches?limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], first);
    assert_eq!(listed["items"][0]["issued"], 1);
    assert_eq!(listed["items"][0]["available"], 2);
    let cursor = listed["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .admin_get(&format!("/v1/admin/campaigns/{id}/batches?cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"][0]["id"], second);
    assert_eq!(rest["items"][0]["size"], 2);
    assert!(rest["next_cursor"].is_null());
}

async fn claims_are_listed_in_pages_and_exported_as_csv(app: TestApp) {
    app.clock.set(at("2026-11-19T12:00:00Z"));
    let id = app.create_campaign(json!({ "name": "Export" })).await;
    app.load_codes(&id, "EXP", 5).await;
    assert_eq!(app.claim(&id, "day-one").await.status(), 201);
    app.clock.set(at(NOON));
    for user in ["a,comma", "b\"quote", "c"] {
        assert_eq!(app.claim(&id, user).await.status(), 201);
    }
    let base = format!("/v1/admin/campaigns/{id}/claims?from=2026-11-19&to=2026-11-20");
    let mut users = Vec::new();
    let mut next = format!("{base}&limit=2");
    loop {
        let page: Value = app.admin_get(&next).await.json().await.unwrap();
        for claim in page["items"].as_array().unwrap() {
            assert_eq!(claim["campaign_id"], id.as_str());
            users.push(claim["user_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => next = format!("{base}&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(users.len(), 4);
    assert_eq!(users[0], "day-one");
    let only_today: Value = app
        .admin_get(&format!(
            "/v1/admin/campaigns/{id}/claims?from=2026-11-20&to=2026-11-20"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only_today["items"].as_array().unwrap().len(), 3);
    let csv = app
        .admin_get(&format!(
            "/v1/admin/campaigns/{id}/claims.csv?from=2026-11-19&to=2026-11-20"
        ))
        .await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "claim_id,campaign_id,user_id,code,issued_at,day");
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[1].ends_with(",2026-11-19T12:00:00Z,2026-11-19"),
        "{text}"
    );
    assert!(text.contains(",\"a,comma\",") && text.contains(",\"b\"\"quote\","));
    let empty = app
        .admin_get(&format!(
            "/v1/admin/campaigns/{id}/claims.csv?from=2026-11-01&to=2026-11-02"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(empty, "claim_id,campaign_id,user_id,code,issued_at,day\n");
}

async fn admin_actions_are_in_the_audit_trail_with_the_token_id_only(app: TestApp) {
    app.clock.set(at(NOON));
    let id = app
        .create_campaign(json!({ "name": "Audited", "daily_limit": 5 }))
        .await;
    let batch = app.load_codes(&id, "AUD", 2).await;
    app.admin_patch(
        &format!("/v1/admin/campaigns/{id}"),
        json!({ "daily_limit": 3, "active": true }),
    )
    .await;
    let revoke = app
        .http
        .post(app.url(&format!("/v1/admin/campaigns/{id}/batches/{batch}/revoke")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let other = app.create_campaign(json!({ "name": "Other" })).await;
    let response = app
        .admin_get(&format!("/v1/admin/audit?campaign_id={id}"))
        .await;
    let text = response.text().await.unwrap();
    assert!(!text.contains(ADMIN_TOKEN));
    let trail: Value = serde_json::from_str(&text).unwrap();
    let items = trail["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "revoke_batch",
            "update_campaign",
            "load_batch",
            "create_campaign"
        ]
    );
    let actor = items[0]["actor"].as_str().unwrap();
    assert!(actor.starts_with("tok_") && actor.len() == 16, "{actor}");
    assert!(items.iter().all(|e| e["actor"] == actor && e["at"] == NOON));
    assert_eq!(items[0]["batch_id"], batch.as_str());
    assert_eq!(items[0]["changes"], json!({ "revoked_codes": 2 }));
    assert_eq!(
        items[1]["changes"],
        json!({ "daily_limit": { "from": 5, "to": 3 } })
    );
    assert_eq!(items[2]["changes"]["inserted"], 2);
    assert_eq!(items[3]["changes"]["name"], "Audited");
    assert!(items[3]["batch_id"].is_null());
    let all: Value = app
        .admin_get("/v1/admin/audit?limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"][0]["campaign_id"], other.as_str());
    let cursor = all["next_cursor"].as_str().unwrap();
    let older: Value = app
        .admin_get(&format!("/v1/admin/audit?limit=1&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(older["items"][0]["action"], "revoke_batch");
}

async fn listing_errors_are_the_documented_ones(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Errors" })).await;
    let missing = uuid::Uuid::now_v7();
    for (path, status, code) in [
        (
            "/v1/admin/campaigns?cursor=nope".to_owned(),
            400,
            "invalid_request",
        ),
        (
            "/v1/admin/campaigns?limit=0".to_owned(),
            400,
            "invalid_request",
        ),
        (
            format!("/v1/admin/campaigns/{missing}/batches"),
            404,
            "campaign_not_found",
        ),
        (
            format!("/v1/admin/campaigns/{id}/claims?from=2026-11-20&to=2026-11-19"),
            400,
            "invalid_request",
        ),
        (
            format!("/v1/admin/campaigns/{id}/claims?from=2026-11-20&to=2026-11-20&cursor=x"),
            400,
            "invalid_request",
        ),
        (
            format!("/v1/admin/campaigns/{id}/claims.csv?from=today&to=2026-11-20"),
            400,
            "invalid_request",
        ),
        (
            format!("/v1/admin/campaigns/{missing}/claims.csv?from=2026-11-20&to=2026-11-20"),
            404,
            "campaign_not_found",
        ),
        (
            "/v1/admin/audit?cursor=abc".to_owned(),
            400,
            "invalid_request",
        ),
    ] {
        assert_error(app.admin_get(&path).await, status, code).await;
    }
    let unauthorized = app
        .http
        .get(app.url("/v1/admin/audit"))
        .bearer_auth(CLIENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(unauthorized, 401, "unauthorized").await;
}

//! Operator routes for campaigns, and authentication on every admin route.
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, CLIENT_TOKEN, TestApp, assert_error};
use crate::on_both_backends;

on_both_backends! {
    create_answers_201_with_a_uuid_and_defaults => create_answers_201_with_a_uuid_and_defaults;
    create_refuses_bad_bodies_with_invalid_request => create_refuses_bad_bodies_with_invalid_request;
    get_reports_the_stock => get_reports_the_stock;
    unknown_or_malformed_campaign_ids_are_refused => unknown_or_malformed_campaign_ids_are_refused;
    patch_changes_limit_end_and_active => patch_changes_limit_end_and_active;
    every_admin_route_requires_the_admin_token => every_admin_route_requires_the_admin_token;
    bodies_over_the_limit_are_refused_with_413 => bodies_over_the_limit_are_refused_with_413;
}

async fn create_answers_201_with_a_uuid_and_defaults(app: TestApp) {
    let response = app
        .admin_post("/v1/admin/campaigns", json!({ "name": "Spring" }))
        .await;
    assert_eq!(response.status(), 201);
    let campaign: Value = response.json().await.unwrap();
    assert!(uuid::Uuid::parse_str(campaign["id"].as_str().unwrap()).is_ok());
    assert_eq!(campaign["name"], "Spring");
    assert_eq!(campaign["time_zone"], "UTC");
    assert_eq!(campaign["daily_limit"], Value::Null);
    assert_eq!(campaign["remaining_today"], Value::Null);
    assert_eq!(campaign["active"], true);
    assert_eq!(campaign["available"], 0);
    assert_eq!(campaign["issued_total"], 0);
    assert_eq!(campaign["issued_today"], 0);

    let full = app
        .admin_post(
            "/v1/admin/campaigns",
            json!({
                "name": "Tokyo week", "daily_limit": 5, "time_zone": "Asia/Tokyo",
                "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"
            }),
        )
        .await;
    assert_eq!(full.status(), 201);
    let campaign: Value = full.json().await.unwrap();
    assert_eq!(campaign["daily_limit"], 5);
    assert_eq!(campaign["remaining_today"], 5);
    assert_eq!(campaign["time_zone"], "Asia/Tokyo");
    assert_eq!(campaign["starts_at"], "2026-01-01T00:00:00Z");
}

async fn create_refuses_bad_bodies_with_invalid_request(app: TestApp) {
    let bad_bodies = [
        json!({ "name": "x", "time_zone": "Mars/Olympus" }),
        json!({ "name": "x", "daily_limit": "ten" }),
        json!({ "name": "x", "daily_limit": -1 }),
        json!({ "name": "" }),
        json!({ "name": "x", "dailylimit": 3 }),
        json!({ "name": "x", "starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z" }),
        json!({ "name": "x", "starts_at": "yesterday" }),
        json!({ "name": "x", "starts_at": "2040-01-01T00:00:00Z" }),
        json!({ "name": "x", "ends_at": "9999-12-31T23:59:59Z" }),
        json!({ "name": "x", "starts_at": "1969-12-31T00:00:00Z" }),
        json!(["not", "an", "object"]),
    ];
    for body in bad_bodies {
        let response = app.admin_post("/v1/admin/campaigns", body.clone()).await;
        assert_error(response, 400, "invalid_request").await;
    }
    let malformed = app
        .http
        .post(app.url("/v1/admin/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, 400, "invalid_request").await;
}

async fn get_reports_the_stock(app: TestApp) {
    let id = app
        .create_campaign(json!({ "name": "Stock", "daily_limit": 3 }))
        .await;
    app.load_codes(&id, "S", 10).await;
    for user in ["a", "b"] {
        assert_eq!(app.claim(&id, user).await.status(), 201);
    }
    let campaign = app.campaign(&id).await;
    assert_eq!(campaign["available"], 8);
    assert_eq!(campaign["issued_total"], 2);
    assert_eq!(campaign["issued_today"], 2);
    assert_eq!(campaign["remaining_today"], 1);
}

async fn unknown_or_malformed_campaign_ids_are_refused(app: TestApp) {
    let unknown = uuid::Uuid::new_v4();
    assert_error(
        app.admin_get(&format!("/v1/admin/campaigns/{unknown}"))
            .await,
        404,
        "campaign_not_found",
    )
    .await;
    assert_error(
        app.admin_patch(
            &format!("/v1/admin/campaigns/{unknown}"),
            json!({ "active": false }),
        )
        .await,
        404,
        "campaign_not_found",
    )
    .await;
    assert_error(
        app.admin_get("/v1/admin/campaigns/not-a-uuid").await,
        400,
        "invalid_request",
    )
    .await;
}

async fn patch_changes_limit_end_and_active(app: TestApp) {
    let id = app
        .create_campaign(json!({ "name": "Patch", "daily_limit": 3 }))
        .await;
    let path = format!("/v1/admin/campaigns/{id}");
    let response = app
        .admin_patch(
            &path,
            json!({ "daily_limit": 7, "ends_at": "2030-01-01T00:00:00Z", "active": false }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let campaign: Value = response.json().await.unwrap();
    assert_eq!(campaign["daily_limit"], 7);
    assert_eq!(campaign["ends_at"], "2030-01-01T00:00:00Z");
    assert_eq!(campaign["active"], false);

    let response = app
        .admin_patch(&path, json!({ "daily_limit": null, "ends_at": null }))
        .await;
    let campaign: Value = response.json().await.unwrap();
    assert_eq!(campaign["daily_limit"], Value::Null);
    assert_eq!(campaign["ends_at"], Value::Null);
    assert_eq!(campaign["active"], false, "omitted fields stay as they are");

    for bad in [
        json!({ "ends_at": "2040-01-01T00:00:00Z" }),
        json!({ "daily_limit": -5 }),
        json!({ "name": "renaming is not offered" }),
        json!({ "active": "yes" }),
    ] {
        assert_error(app.admin_patch(&path, bad).await, 400, "invalid_request").await;
    }
}

async fn every_admin_route_requires_the_admin_token(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Auth" })).await;
    let batch = app.load_codes(&id, "AUTH", 1).await;
    let routes = [
        ("POST", "/v1/admin/campaigns".to_owned()),
        ("GET", format!("/v1/admin/campaigns/{id}")),
        ("PATCH", format!("/v1/admin/campaigns/{id}")),
        ("POST", format!("/v1/admin/campaigns/{id}/batches")),
        ("GET", format!("/v1/admin/campaigns/{id}/batches/{batch}")),
        (
            "POST",
            format!("/v1/admin/campaigns/{id}/batches/{batch}/revoke"),
        ),
    ];
    for (method, path) in &routes {
        for token in [None, Some("wrong-token-0123456789"), Some(CLIENT_TOKEN)] {
            let mut request = app
                .http
                .request(method.parse().unwrap(), app.url(path))
                .json(&json!({ "name": "x", "codes": ["C"] }));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_error(response, 401, "unauthorized").await;
        }
    }
    let still_one = app
        .admin_get(&format!("/v1/admin/campaigns/{id}/batches/{batch}"))
        .await;
    let batch: Value = still_one.json().await.unwrap();
    assert_eq!(batch["available"], 1, "refused requests changed nothing");
}

async fn bodies_over_the_limit_are_refused_with_413(app: TestApp) {
    let huge_name = "n".repeat(100 * 1024);
    let response = app
        .admin_post("/v1/admin/campaigns", json!({ "name": huge_name }))
        .await;
    assert_error(response, 413, "payload_too_large").await;
}

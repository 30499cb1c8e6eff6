//! What generated clients rely on beyond the older tests: nulls and `Z` instants on the wire, a
//! file upload, the label rule, user ids that survive a URL, `Allow` on 405.
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, CLIENT_TOKEN, TestApp, assert_error};
use crate::on_both_backends;

on_both_backends! {
    optional_fields_are_sent_as_null_and_instants_in_utc_with_z => optional_fields_are_sent_as_null_and_instants_in_utc_with_z;
    a_file_upload_loads_a_batch_with_its_label => a_file_upload_loads_a_batch_with_its_label;
    a_label_parameter_with_a_json_batch_is_refused => a_label_parameter_with_a_json_batch_is_refused;
    user_ids_that_a_url_path_cannot_carry_are_refused_and_others_read_back => user_ids_that_a_url_path_cannot_carry_are_refused_and_others_read_back;
    a_405_names_the_allowed_methods => a_405_names_the_allowed_methods;
}

async fn optional_fields_are_sent_as_null_and_instants_in_utc_with_z(app: TestApp) {
    let created = app
        .admin_post(
            "/v1/admin/campaigns",
            json!({ "name": "Nulls", "starts_at": "2026-01-01T09:00:00+09:00", "ends_at": null }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let campaign: Value = created.json().await.unwrap();
    for field in ["daily_limit", "ends_at", "remaining_today"] {
        assert!(campaign.get(field).is_some_and(Value::is_null), "{field}");
    }
    assert_eq!(campaign["starts_at"], "2026-01-01T00:00:00Z");
    assert!(campaign["created_at"].as_str().unwrap().ends_with('Z'));
}

async fn upload(app: &TestApp, path: &str, body: &'static str) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn a_file_upload_loads_a_batch_with_its_label(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "File" })).await;
    let loaded = upload(
        &app,
        &format!("/v1/admin/campaigns/{id}/batches/upload?label=file"),
        "F-1\r\nF-2\n\nF-3\n",
    )
    .await;
    assert_eq!(loaded.status(), 201);
    let batch: Value = loaded.json().await.unwrap();
    assert_eq!(batch["inserted"], 3);
    assert_eq!(batch["label"], "file");
    let same_route = upload(&app, &format!("/v1/admin/campaigns/{id}/batches"), "F-4\n").await;
    assert_eq!(same_route.status(), 201);
    let unlabelled: Value = same_route.json().await.unwrap();
    assert!(unlabelled["label"].is_null());
    let bad = upload(
        &app,
        &format!("/v1/admin/campaigns/{id}/batches/upload"),
        "F-5\nnot ok\n",
    )
    .await;
    let body = assert_error(bad, 400, "invalid_codes").await;
    assert_eq!(body["problems"][0]["line"], 2);
    assert_eq!(app.campaign(&id).await["available"], 4);
}

async fn a_label_parameter_with_a_json_batch_is_refused(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Label" })).await;
    let refused = app
        .admin_post(
            &format!("/v1/admin/campaigns/{id}/batches?label=ignored"),
            json!({ "codes": ["L-1"] }),
        )
        .await;
    assert_error(refused, 400, "invalid_request").await;
    assert_eq!(app.campaign(&id).await["available"], 0);
}

async fn user_ids_that_a_url_path_cannot_carry_are_refused_and_others_read_back(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Paths" })).await;
    app.admin_post(
        &format!("/v1/admin/campaigns/{id}/batches"),
        json!({ "codes": ["P-1", "P-2", "P-3"] }),
    )
    .await;
    for user in [".", ".."] {
        assert_error(app.claim(&id, user).await, 400, "invalid_request").await;
    }
    for (user, encoded) in [("a/b", "a%2Fb"), ("...", "..."), ("x?y#z%", "x%3Fy%23z%25")] {
        let claimed: Value = app.claim(&id, user).await.json().await.unwrap();
        let read = app
            .http
            .get(app.url(&format!("/v1/campaigns/{id}/claims/{encoded}")))
            .bearer_auth(CLIENT_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "{user}");
        let read: Value = read.json().await.unwrap();
        assert_eq!(read["code"], claimed["code"], "{user}");
        assert_eq!(read["user_id"], user);
    }
}

async fn a_405_names_the_allowed_methods(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Allow" })).await;
    let response = app
        .http
        .delete(app.url(&format!("/v1/admin/campaigns/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, PATCH");
    assert_error(response, 405, "method_not_allowed").await;
}

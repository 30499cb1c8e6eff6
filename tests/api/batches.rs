//! Loading, reading and revoking batches; every batch is all or nothing.
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, assert_error, spawn_app_with};
use crate::on_both_backends;

on_both_backends! {
    text_csv_and_json_uploads_insert_every_code => text_csv_and_json_uploads_insert_every_code;
    an_invalid_line_rejects_the_whole_batch => an_invalid_line_rejects_the_whole_batch;
    a_repeated_code_rejects_the_whole_batch => a_repeated_code_rejects_the_whole_batch;
    a_code_already_in_the_campaign_rejects_the_whole_batch => a_code_already_in_the_campaign_rejects_the_whole_batch;
    a_repeat_across_chunks_is_found_and_named => a_repeat_across_chunks_is_found_and_named;
    the_report_lists_100_problems_and_counts_all => the_report_lists_100_problems_and_counts_all;
    codes_differing_only_in_case_are_distinct => codes_differing_only_in_case_are_distinct;
    a_code_of_another_campaign_rejects_the_whole_batch => a_code_of_another_campaign_rejects_the_whole_batch;
    get_batch_counts_codes_by_status => get_batch_counts_codes_by_status;
    unknown_batches_and_campaigns_are_404 => unknown_batches_and_campaigns_are_404;
    revoking_keeps_issued_codes_and_never_issues_the_rest => revoking_keeps_issued_codes_and_never_issues_the_rest;
}

async fn available(app: &TestApp, campaign: &str) -> i64 {
    app.campaign(campaign).await["available"].as_i64().unwrap()
}

async fn batch_rows(app: &TestApp) -> i64 {
    app.scalar("SELECT COUNT(*) FROM code_batches").await
}

async fn text_csv_and_json_uploads_insert_every_code(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Load" })).await;
    let text = app
        .http
        .post(app.url(&format!("/v1/admin/campaigns/{id}/batches?label=first")))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain; charset=utf-8")
        .body("T-1\r\nT-2\n\nT-3\n")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 201);
    let batch: Value = text.json().await.unwrap();
    assert_eq!(batch["inserted"], 3);
    assert_eq!(batch["label"], "first");
    assert_eq!(batch["campaign_id"], id.as_str());

    let csv = app
        .http
        .post(app.url(&format!("/v1/admin/campaigns/{id}/batches")))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/csv")
        .body("C-1\nC-2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 201);

    let json_batch = app
        .admin_post(
            &format!("/v1/admin/campaigns/{id}/batches"),
            json!({ "label": "json", "codes": ["J-1", "J-2", "J-3", "J-4"] }),
        )
        .await;
    assert_eq!(json_batch.status(), 201);
    let batch: Value = json_batch.json().await.unwrap();
    assert_eq!(batch["inserted"], 4);
    assert_eq!(batch["label"], "json");
    assert_eq!(available(&app, &id).await, 9);
}

async fn an_invalid_line_rejects_the_whole_batch(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Invalid" })).await;
    let too_long = "x".repeat(129);
    let body = format!("OK-1\nOK-2\nhas space\nOK-3\n{too_long}\nÄ-1\n");
    let response = app.load_text(&id, body).await;
    let error = assert_error(response, 400, "invalid_codes").await;
    assert_eq!(error["problem_count"], 3);
    let lines: Vec<i64> = error["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [3, 5, 6]);
    assert_eq!(error["problems"][0]["code"], "has space");
    assert_eq!(error["problems"][0]["reason"], "invalid");
    assert_eq!(available(&app, &id).await, 0);
    assert_eq!(batch_rows(&app).await, 0);

    let json_invalid = app
        .admin_post(
            &format!("/v1/admin/campaigns/{id}/batches"),
            json!({ "codes": ["GOOD", ""] }),
        )
        .await;
    let error = assert_error(json_invalid, 400, "invalid_codes").await;
    assert_eq!(error["problems"][0]["line"], 2);
    assert_eq!(available(&app, &id).await, 0);

    let wrong_shape = app
        .admin_post(
            &format!("/v1/admin/campaigns/{id}/batches"),
            json!({ "codes": "GOOD" }),
        )
        .await;
    assert_error(wrong_shape, 400, "invalid_request").await;
}

async fn a_repeated_code_rejects_the_whole_batch(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Repeat" })).await;
    let response = app.load_text(&id, "R-1\nR-2\nR-1\nR-3\n".into()).await;
    let error = assert_error(response, 409, "duplicate_codes").await;
    assert_eq!(error["problem_count"], 1);
    assert_eq!(error["problems"][0]["line"], 3);
    assert_eq!(error["problems"][0]["code"], "R-1");
    assert_eq!(error["problems"][0]["reason"], "duplicate_in_batch");
    assert_eq!(available(&app, &id).await, 0);
    assert_eq!(batch_rows(&app).await, 0);
}

async fn a_code_already_in_the_campaign_rejects_the_whole_batch(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Existing" })).await;
    app.load_codes(&id, "E", 3).await;
    let response = app.load_text(&id, "NEW-1\nE-1\nNEW-2\n".into()).await;
    let error = assert_error(response, 409, "duplicate_codes").await;
    assert_eq!(error["problems"][0]["line"], 2);
    assert_eq!(error["problems"][0]["reason"], "already_in_campaign");
    assert_eq!(
        available(&app, &id).await,
        3,
        "nothing of the batch was written"
    );
    assert_eq!(batch_rows(&app).await, 1);
}

/// A code is a bearer credential: it exists once in the whole service.
async fn a_code_of_another_campaign_rejects_the_whole_batch(app: TestApp) {
    let first = app.create_campaign(json!({ "name": "First" })).await;
    let second = app.create_campaign(json!({ "name": "Second" })).await;
    app.load_codes(&first, "ONCE", 2).await;
    let response = app
        .load_text(&second, "OTHER-1\nONCE-1\nOTHER-2\n".into())
        .await;
    let error = assert_error(response, 409, "duplicate_codes").await;
    assert_eq!(error["problem_count"], 1);
    assert_eq!(error["problems"][0]["line"], 2);
    assert_eq!(error["problems"][0]["code"], "ONCE-1");
    assert_eq!(error["problems"][0]["reason"], "already_in_other_campaign");
    assert_eq!(available(&app, &second).await, 0, "nothing was written");
    assert_eq!(available(&app, &first).await, 2);
    let json = app
        .admin_post(
            &format!("/v1/admin/campaigns/{second}/batches"),
            json!({ "codes": ["ONCE-0"] }),
        )
        .await;
    let error = assert_error(json, 409, "duplicate_codes").await;
    assert_eq!(error["problems"][0]["reason"], "already_in_other_campaign");
}

async fn a_repeat_across_chunks_is_found_and_named(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Chunks" })).await;
    let mut lines: Vec<String> = (0..2500).map(|i| format!("K-{i}")).collect();
    lines[2399] = "K-4".to_owned();
    let response = app.load_text(&id, lines.join("\n")).await;
    let error = assert_error(response, 409, "duplicate_codes").await;
    assert_eq!(error["problem_count"], 1);
    assert_eq!(error["problems"][0]["line"], 2400);
    assert_eq!(error["problems"][0]["reason"], "duplicate_in_batch");
    assert_eq!(available(&app, &id).await, 0);
}

async fn the_report_lists_100_problems_and_counts_all(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Many" })).await;
    let body: String = (0..250).map(|i| format!("bad {i}\nGOOD-{i}\n")).collect();
    let error = assert_error(app.load_text(&id, body).await, 400, "invalid_codes").await;
    assert_eq!(error["problem_count"], 250);
    assert_eq!(error["problems"].as_array().unwrap().len(), 100);
    assert_eq!(error["problems"][99]["line"], 199);
}

async fn codes_differing_only_in_case_are_distinct(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Case" })).await;
    let response = app.load_text(&id, "abc\nABC\nAbc\n".into()).await;
    assert_eq!(response.status(), 201);
    assert_eq!(available(&app, &id).await, 3);
}

async fn get_batch_counts_codes_by_status(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Counts" })).await;
    let batch = app.load_codes(&id, "G", 5).await;
    assert_eq!(app.claim(&id, "u1").await.status(), 201);
    let response = app
        .admin_get(&format!("/v1/admin/campaigns/{id}/batches/{batch}"))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["size"], 5);
    assert_eq!(body["available"], 4);
    assert_eq!(body["issued"], 1);
    assert_eq!(body["revoked"], 0);
    assert_eq!(body["revoked_at"], Value::Null);
}

async fn unknown_batches_and_campaigns_are_404(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Missing" })).await;
    let other = app.create_campaign(json!({ "name": "Other" })).await;
    let batch = app.load_codes(&other, "O", 1).await;
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/v1/admin/campaigns/{id}/batches/{unknown}"),
        format!("/v1/admin/campaigns/{id}/batches/{batch}"),
    ] {
        assert_error(app.admin_get(&path).await, 404, "batch_not_found").await;
    }
    assert_error(
        app.admin_post(
            &format!("/v1/admin/campaigns/{id}/batches/{unknown}/revoke"),
            json!({}),
        )
        .await,
        404,
        "batch_not_found",
    )
    .await;
    assert_error(
        app.load_text(&unknown.to_string(), "X-1\n".into()).await,
        404,
        "campaign_not_found",
    )
    .await;
    assert_error(
        app.admin_get(&format!("/v1/admin/campaigns/{unknown}/batches/{batch}"))
            .await,
        404,
        "campaign_not_found",
    )
    .await;
}

async fn revoking_keeps_issued_codes_and_never_issues_the_rest(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Revoke" })).await;
    let batch = app.load_codes(&id, "V", 3).await;
    assert_eq!(app.claim(&id, "early").await.status(), 201);
    let path = format!("/v1/admin/campaigns/{id}/batches/{batch}/revoke");
    let response = app.admin_post(&path, json!({})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issued"], 1);
    assert_eq!(body["revoked"], 2);
    assert_eq!(body["available"], 0);
    let revoked_at = body["revoked_at"].clone();
    assert!(revoked_at.is_string());

    let again: Value = app.admin_post(&path, json!({})).await.json().await.unwrap();
    assert_eq!(
        again["revoked_at"], revoked_at,
        "revoking twice keeps the first time"
    );

    assert_error(app.claim(&id, "late").await, 409, "out_of_stock").await;
    app.load_codes(&id, "FRESH", 1).await;
    let claim: Value = app.claim(&id, "later").await.json().await.unwrap();
    assert_eq!(
        claim["code"], "FRESH-0",
        "only the fresh batch's code is issued"
    );
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_with_413_and_write_nothing() {
    for backend in [Backend::MariaDb, Backend::Sqlite] {
        let app = spawn_app_with(backend, &["--max-upload-bytes", "1000"]).await;
        let id = app.create_campaign(json!({ "name": "Big" })).await;
        let body: String = (0..200).map(|i| format!("BIG-{i}\n")).collect();
        let declared = app.load_text(&id, body.clone()).await;
        assert_error(declared, 413, "payload_too_large").await;

        let chunks: Vec<Result<String, std::io::Error>> =
            body.lines().map(|line| Ok(format!("{line}\n"))).collect();
        let streamed = app
            .http
            .post(app.url(&format!("/v1/admin/campaigns/{id}/batches")))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "text/plain")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .unwrap();
        assert_error(streamed, 413, "payload_too_large").await;
        assert_eq!(app.campaign(&id).await["available"], 0);
    }
}

on_both_backends! {
    problems_are_listed_in_line_order => problems_are_listed_in_line_order;
    an_empty_batch_is_refused => an_empty_batch_is_refused;
}

async fn problems_are_listed_in_line_order(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Order" })).await;
    app.load_codes(&id, "A", 2).await;
    let response = app.load_text(&id, "B-1\nA-1\nB-2\nB-2\nA-0\n".into()).await;
    let error = assert_error(response, 409, "duplicate_codes").await;
    let lines: Vec<(i64, &str)> = error["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_i64().unwrap(), p["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            (2, "already_in_campaign"),
            (4, "duplicate_in_batch"),
            (5, "already_in_campaign")
        ]
    );
}

async fn an_empty_batch_is_refused(app: TestApp) {
    let id = app.create_campaign(json!({ "name": "Empty" })).await;
    assert_error(
        app.load_text(&id, "\n\n".into()).await,
        400,
        "invalid_request",
    )
    .await;
    let json_empty = app
        .admin_post(
            &format!("/v1/admin/campaigns/{id}/batches"),
            json!({ "codes": [] }),
        )
        .await;
    assert_error(json_empty, 400, "invalid_request").await;
    assert_eq!(batch_rows(&app).await, 0);
}

//! Probes, docs and the served spec.
use crate::helpers::{CLIENT_TOKEN, TestApp, assert_error};
use crate::on_both_backends;

on_both_backends! {
    probes_answer_ok_while_the_database_answers => probes_answer_ok_while_the_database_answers;
    docs_and_spec_are_served => docs_and_spec_are_served;
    unknown_routes_answer_the_error_body => unknown_routes_answer_the_error_body;
    wrong_methods_and_media_types_answer_405_and_415 => wrong_methods_and_media_types_answer_405_and_415;
}

async fn probes_answer_ok_while_the_database_answers(app: TestApp) {
    for path in ["/healthz", "/readyz"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }
}

async fn docs_and_spec_are_served(app: TestApp) {
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let spec = app.http.get(app.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(spec.status(), 200);
    assert_eq!(spec.text().await.unwrap(), giftcodes::api::openapi_yaml());
}

async fn unknown_routes_answer_the_error_body(app: TestApp) {
    let response = app.http.get(app.url("/v1/nothing")).send().await.unwrap();
    assert_error(response, 404, "not_found").await;
}

async fn wrong_methods_and_media_types_answer_405_and_415(app: TestApp) {
    let id = app
        .create_campaign(serde_json::json!({ "name": "Methods" }))
        .await;
    let claims = app.url(&format!("/v1/campaigns/{id}/claims"));
    let put = app
        .http
        .put(&claims)
        .bearer_auth(CLIENT_TOKEN)
        .json(&serde_json::json!({ "user_id": "u" }))
        .send()
        .await
        .unwrap();
    assert_error(put, 405, "method_not_allowed").await;
    let text = app
        .http
        .post(&claims)
        .bearer_auth(CLIENT_TOKEN)
        .header("content-type", "text/plain")
        .body("u")
        .send()
        .await
        .unwrap();
    assert_error(text, 415, "unsupported_media_type").await;
}

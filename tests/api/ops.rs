//! Probes, docs and the served spec.
use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;

on_both_backends! {
    probes_answer_ok_while_the_database_answers => probes_answer_ok_while_the_database_answers;
    docs_and_spec_are_served => docs_and_spec_are_served;
    unknown_routes_answer_the_error_body => unknown_routes_answer_the_error_body;
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

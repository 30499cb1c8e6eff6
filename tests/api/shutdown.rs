//! SIGTERM under a claim storm: the service answers what it took in, every 201 it sent is
//! committed and nothing is committed that it did not answer, and it exits within its grace.
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Backend, CLIENT_TOKEN, create_database, free_port, wait_until_answering,
};

/// A claim's HTTP answer (status and body), or why none came.
type Answer = Result<(u16, Value), String>;

#[tokio::test]
async fn sigterm_answers_the_claims_in_flight_and_exits_within_the_grace_period() {
    let (url, _database) = create_database(Backend::MariaDb).await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_giftcodes"))
        .arg("serve")
        .env("GIFTCODES_LISTEN", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &url)
        .env("GIFTCODES_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("GIFTCODES_CLIENT_TOKENS", CLIENT_TOKEN)
        .env("GIFTCODES_SHUTDOWN_GRACE_SECS", "5")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start giftcodes serve");
    let base = format!("http://127.0.0.1:{port}");
    wait_until_answering(&base).await;
    let http = reqwest::Client::new();
    let campaign: Value = http
        .post(format!("{base}/v1/admin/campaigns"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "name": "Shutdown" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = campaign["id"].as_str().unwrap().to_owned();
    let codes: String = (0..5000).map(|i| format!("STOP-{i}\n")).collect();
    let upload = http
        .post(format!("{base}/v1/admin/campaigns/{id}/batches"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body(codes)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);

    // 32 clients claim in a loop, each request a new user, until the service stops answering.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..32 {
        let (http, base, id, answered) = (http.clone(), base.clone(), id.clone(), answered.clone());
        clients.push(tokio::spawn(async move {
            let mut outcomes: Vec<(String, Answer)> = Vec::new();
            for n in 0.. {
                let user = format!("user-{client}-{n}");
                let sent = http
                    .post(format!("{base}/v1/campaigns/{id}/claims"))
                    .bearer_auth(CLIENT_TOKEN)
                    .json(&json!({ "user_id": user }))
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.json::<Value>().await.unwrap_or(Value::Null);
                        answered.fetch_add(1, Ordering::Relaxed);
                        outcomes.push((user, Ok((status, body))));
                    }
                    Err(err) => {
                        outcomes.push((user, Err(err.to_string())));
                        break;
                    }
                }
            }
            outcomes
        }));
    }
    while answered.load(Ordering::Relaxed) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stop = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stop.elapsed() < Duration::from_secs(7),
            "still running 7 s after SIGTERM (grace 5 s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stopped_in = stop.elapsed();
    assert!(status.success(), "exit status {status}");

    let mut created: HashMap<String, String> = HashMap::new();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for client in clients {
        for (user, outcome) in client.await.unwrap() {
            if let Ok((status, body)) = outcome {
                *statuses.entry(status).or_default() += 1;
                if status == 201 {
                    created.insert(user, body["code"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    assert!(
        statuses.keys().all(|status| [201, 503].contains(status)),
        "answers by status: {statuses:?}"
    );
    let db = Database::connect(&url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT issued_to, code FROM codes WHERE status = 1",
        ))
        .await
        .unwrap();
    let committed: HashMap<String, String> = rows
        .iter()
        .map(|row| {
            (
                row.try_get_by_index(0).unwrap(),
                row.try_get_by_index(1).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        committed, created,
        "every 201 is committed, and every committed claim was answered 201 \
         (stopped in {stopped_in:?}; answers by status: {statuses:?})"
    );
}

//! Several `giftcodes serve` processes over one MariaDB database: the cap and the one-code-per-
//! user rule hold across instances. (`scripts/cap-exactness-loop.sh` runs this 20 times.)
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::helpers::{
    ADMIN_TOKEN, Backend, CLIENT_TOKEN, create_database, free_port, wait_until_answering,
};

const PROCESSES: usize = 3;
const IN_FLIGHT: usize = 240;

/// Service processes, killed when the test ends however it ends.
struct Fleet {
    children: Vec<Child>,
    addresses: Vec<String>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn start_fleet(database_url: &str) -> Fleet {
    start_fleet_with(database_url, |_| Vec::new()).await
}

/// A fleet whose instance `i` gets the extra environment `extra_env(i)`.
async fn start_fleet_with(
    database_url: &str,
    extra_env: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Fleet {
    let binary = env!("CARGO_BIN_EXE_giftcodes");
    let migrated = Command::new(binary)
        .arg("migrate")
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::null())
        .status()
        .expect("run giftcodes migrate");
    assert!(migrated.success());
    let mut fleet = Fleet {
        children: Vec::new(),
        addresses: Vec::new(),
    };
    for instance in 0..PROCESSES {
        let port = free_port();
        let child = Command::new(binary)
            .arg("serve")
            .envs(extra_env(instance))
            .env("GIFTCODES_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("GIFTCODES_MIGRATE", "false")
            .env("GIFTCODES_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("GIFTCODES_CLIENT_TOKENS", CLIENT_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start giftcodes serve");
        fleet.children.push(child);
        fleet.addresses.push(format!("http://127.0.0.1:{port}"));
    }
    for address in &fleet.addresses {
        wait_until_answering(address).await;
    }
    fleet
}

/// Sends one claim per entry of `users` (repeats allowed), spread round-robin over the fleet,
/// with at most [`IN_FLIGHT`] at once; returns `(status, body)` per request.
async fn claim_all(fleet: &Fleet, campaign: &str, users: Vec<String>) -> Vec<(u16, Value)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::with_capacity(users.len());
    for (i, user) in users.into_iter().enumerate() {
        let url = format!(
            "{}/v1/campaigns/{campaign}/claims",
            fleet.addresses[i % PROCESSES]
        );
        let (http, gate) = (http.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let response = http
                .post(url)
                .bearer_auth(CLIENT_TOKEN)
                .json(&json!({ "user_id": user }))
                .send()
                .await
                .expect("claim request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

async fn create_campaign(fleet: &Fleet, body: Value) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/admin/campaigns", fleet.addresses[0]))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn load_codes(fleet: &Fleet, campaign: &str, prefix: &str, count: usize) {
    let body: String = (0..count).map(|i| format!("{prefix}-{i}\n")).collect();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/admin/campaigns/{campaign}/batches",
            fleet.addresses[1]
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn three_processes_issue_exactly_the_daily_limit_and_one_code_per_user() {
    let (url, _database) = create_database(Backend::MariaDb).await;
    let fleet = start_fleet(&url).await;

    let capped = create_campaign(&fleet, json!({ "name": "Cap", "daily_limit": 1000 })).await;
    load_codes(&fleet, &capped, "CAP", 3000).await;
    let users: Vec<String> = (0..3000).map(|i| format!("user-{i}")).collect();
    let answers = claim_all(&fleet, &capped, users).await;
    let mut by_outcome: HashMap<String, usize> = HashMap::new();
    for (status, body) in &answers {
        let outcome = match status {
            201 => "201".to_owned(),
            _ => format!("{status} {}", body["code"].as_str().unwrap_or("?")),
        };
        *by_outcome.entry(outcome).or_default() += 1;
    }
    let expected = HashMap::from([
        ("201".to_owned(), 1000),
        ("409 daily_limit_reached".to_owned(), 2000),
    ]);
    assert_eq!(by_outcome, expected);
    let codes: HashSet<&str> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 1000, "every issued code is distinct");

    let db = sea_orm::Database::connect(&url).await.unwrap();
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM codes WHERE status = 1").await,
        1000
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT CAST(SUM(issued) AS SIGNED) FROM campaign_day_counters"
        )
        .await,
        1000,
        "the counter equals the COUNT"
    );

    let open = create_campaign(&fleet, json!({ "name": "Same user" })).await;
    load_codes(&fleet, &open, "SAME", 10).await;
    let answers = claim_all(&fleet, &open, vec!["one-user".to_owned(); 60]).await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let replayed = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 59), "{answers:?}");
    let codes: HashSet<&str> = answers
        .iter()
        .map(|(_, body)| body["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 1);
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{name}");
}

async fn claim_via(address: &str, campaign: &str, user: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{address}/v1/campaigns/{campaign}/claims"))
        .bearer_auth(CLIENT_TOKEN)
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .expect("claim request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Claims new users through `address` until one is issued; how long that took.
async fn until_issued(address: &str, campaign: &str, prefix: &str, within: Duration) -> Duration {
    let started = Instant::now();
    for n in 0.. {
        let (status, body) = claim_via(address, campaign, &format!("{prefix}-{n}")).await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            started.elapsed() < within,
            "{address}: no claim issued within {within:?}"
        );
    }
    started.elapsed()
}

/// One of three instances is frozen (SIGSTOP) while its claim transaction holds the day's
/// counter row. The database rolls that idle transaction back (`idle_transaction_timeout`),
/// the other two are issuing again within 10 s, and after SIGCONT the frozen one recovers by
/// itself; no code goes out twice and the counter equals the COUNT.
#[tokio::test]
async fn a_frozen_instance_holds_the_others_up_only_until_the_database_rolls_it_back() {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    let (url, _database) = create_database(Backend::MariaDb).await;
    let fleet = start_fleet(&url).await;
    let id = create_campaign(&fleet, json!({ "name": "Frozen" })).await;
    load_codes(&fleet, &id, "FROZEN", 500).await;
    assert_eq!(claim_via(&fleet.addresses[1], &id, "first").await.0, 201);

    let db = sea_orm::Database::connect(&url).await.unwrap();
    let outside = db.begin().await.unwrap();
    outside
        .execute_unprepared("SELECT * FROM campaign_day_counters FOR UPDATE")
        .await
        .unwrap();
    let frozen_claim = tokio::spawn({
        let (address, id) = (fleet.addresses[0].clone(), id.clone());
        async move { claim_via(&address, &id, "caught-frozen").await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE info LIKE '%FROM campaign_day_counters %d.day FOR UPDATE)%'",
            ))
            .await
            .unwrap()
            .unwrap();
        if row.try_get_by_index::<i64>(0).unwrap() > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the claim never reached the counter"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&fleet.children[0], "STOP");
    // The frozen instance's lane now gets the counter row and keeps it, idle.
    outside.rollback().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let recovered = until_issued(&fleet.addresses[1], &id, "other", Duration::from_secs(10)).await;
    assert_eq!(
        claim_via(&fleet.addresses[2], &id, "third-instance")
            .await
            .0,
        201
    );
    signal(&fleet.children[0], "CONT");
    // Usually rolled back by the server (503); if the freeze came before its counter update
    // was granted, it may have committed after SIGCONT: then the 201 must be a row.
    let (status, body) = frozen_claim.await.unwrap();
    match status {
        503 => {}
        201 => assert_eq!(
            scalar(
                &db,
                "SELECT COUNT(*) FROM codes WHERE issued_to = 'caught-frozen'"
            )
            .await,
            1,
            "{body}"
        ),
        _ => panic!("the frozen instance answered {status}: {body}"),
    }
    until_issued(&fleet.addresses[0], &id, "thawed", Duration::from_secs(10)).await;

    let issued = scalar(&db, "SELECT COUNT(*) FROM codes WHERE status = 1").await;
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(DISTINCT issued_to) FROM codes WHERE status = 1"
        )
        .await,
        issued
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT CAST(SUM(issued) AS SIGNED) FROM campaign_day_counters"
        )
        .await,
        issued,
        "the counter equals the COUNT (others recovered after {recovered:?})"
    );
}

/// One number from a SQL query.
async fn scalar(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Where Debian's `faketime` package puts the library (`scripts/test-tools.sh` installs it).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// One instance's clock runs a day and a half behind (libfaketime): it still counts claims
/// against the database's day, inside the database's window, under one shared limit.
#[tokio::test]
async fn an_instance_whose_clock_is_hours_off_claims_on_the_databases_day() {
    use sea_orm::ConnectionTrait;

    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run bash scripts/test-tools.sh (installs Debian's faketime)"
    );
    let (url, _database) = create_database(Backend::MariaDb).await;
    let skewed = 0;
    let fleet = start_fleet_with(&url, |instance| {
        if instance != skewed {
            return Vec::new();
        }
        vec![
            ("LD_PRELOAD", LIBFAKETIME.to_owned()),
            ("FAKETIME", "-36h".to_owned()),
            // Timers and timeouts keep the real monotonic clock.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        ]
    })
    .await;
    let db = sea_orm::Database::connect(&url).await.unwrap();
    let scalar = |sql: &'static str| {
        let db = db.clone();
        async move {
            db.query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<String>(0)
            .unwrap()
        }
    };
    let database_day = scalar("SELECT CAST(UTC_DATE() AS CHAR)").await;
    let window_start =
        scalar("SELECT DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL 1 HOUR, '%Y-%m-%dT%H:%i:%sZ')").await;
    // Opened an hour ago by the database's clock: 35 hours in the skewed instance's future.
    let id = create_campaign(
        &fleet,
        json!({ "name": "Skew", "daily_limit": 3, "time_zone": "UTC", "starts_at": window_start }),
    )
    .await;
    load_codes(&fleet, &id, "SKEW", 20).await;

    let mut answers = Vec::new();
    for user in ["a", "b"] {
        answers.push(claim_via(&fleet.addresses[1], &id, user).await);
    }
    for user in ["c", "d"] {
        answers.push(claim_via(&fleet.addresses[skewed], &id, user).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [201, 201, 201, 409], "{answers:?}");
    for (_, body) in &answers[..3] {
        assert_eq!(body["day"], database_day.as_str(), "{body}");
    }
    assert_eq!(answers[3].1["code"], "daily_limit_reached");
    let skewed_issue = &answers[2].1;
    let issued_at =
        chrono::DateTime::parse_from_rfc3339(skewed_issue["issued_at"].as_str().unwrap()).unwrap();
    let off_by = (chrono::Utc::now() - issued_at.to_utc())
        .num_seconds()
        .abs();
    assert!(
        off_by < 60,
        "issued_at follows the database's clock: {skewed_issue}"
    );
}

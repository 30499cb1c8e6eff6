//! `giftcodes healthcheck`, the container's probe, run as the built binary against the real app.
use std::process::Output;

use crate::helpers::{Backend, spawn_app};

/// Runs `giftcodes healthcheck` with `GIFTCODES_LISTEN=listen`, without blocking the runtime
/// that serves the app.
async fn run_healthcheck(listen: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_giftcodes"))
        .arg("healthcheck")
        .env("GIFTCODES_LISTEN", listen)
        .output()
        .await
        .expect("run giftcodes healthcheck")
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn healthcheck_exits_zero_while_the_service_answers() {
    let app = spawn_app(Backend::Sqlite).await;
    let port = port_of(&app.address);
    for listen in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let output = run_healthcheck(&listen).await;
        assert!(
            output.status.success(),
            "{listen}: {:?} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.stderr.is_empty(), "{listen}: quiet when healthy");
    }
}

#[tokio::test]
async fn healthcheck_fails_with_one_line_at_a_closed_port() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = run_healthcheck(&format!("0.0.0.0:{closed_port}")).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{closed_port}")),
        "{stderr}"
    );
}

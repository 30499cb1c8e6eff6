//! `giftcodes healthcheck`: the container's probe — GET `/healthz` on the configured listen port.
//!
//! A plain HTTP/1.1 request over tokio's TCP, so the image needs no curl. An unspecified listen
//! address (`0.0.0.0`, `::`) is probed on 127.0.0.1; any other on itself.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest the whole probe may take (connect, request, status line).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The status line is all the probe reads; an answer longer than this without one is refused.
const MAX_STATUS_LINE_BYTES: usize = 1024;

/// Why the probe failed (printed as one line by `main`).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("healthcheck: cannot connect to {target}: {source}")]
    Connect {
        target: SocketAddr,
        source: std::io::Error,
    },
    #[error("healthcheck: {target} failed mid-request: {source}")]
    Exchange {
        target: SocketAddr,
        source: std::io::Error,
    },
    #[error("healthcheck: no answer from {target} within {} ms", PROBE_TIMEOUT.as_millis())]
    TimedOut { target: SocketAddr },
    #[error("healthcheck: {target} did not answer HTTP: {status_line:?}")]
    NotHttp {
        target: SocketAddr,
        status_line: String,
    },
    #[error("healthcheck: GET /healthz on {target} answered {status_line}")]
    Unhealthy {
        target: SocketAddr,
        status_line: String,
    },
}

/// Where to probe a service that listens on `listen`.
pub fn probe_target(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port()))
    } else {
        listen
    }
}

/// GETs `/healthz` from the service listening on `listen`; `Ok` only for a `200`.
pub async fn probe(listen: SocketAddr) -> Result<(), ProbeError> {
    let target = probe_target(listen);
    tokio::time::timeout(PROBE_TIMEOUT, probe_within_deadline(target))
        .await
        .unwrap_or(Err(ProbeError::TimedOut { target }))
}

async fn probe_within_deadline(target: SocketAddr) -> Result<(), ProbeError> {
    let mut stream = TcpStream::connect(target)
        .await
        .map_err(|source| ProbeError::Connect { target, source })?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    let status_line = exchange(&mut stream, request.as_bytes())
        .await
        .map_err(|source| ProbeError::Exchange { target, source })?;
    match status_code(&status_line) {
        Some("200") => Ok(()),
        Some(_) => Err(ProbeError::Unhealthy {
            target,
            status_line,
        }),
        None => Err(ProbeError::NotHttp {
            target,
            status_line,
        }),
    }
}

/// Sends `request` and returns the answer's first line (without its line end).
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<String> {
    stream.write_all(request).await?;
    let mut received = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !received.contains(&b'\n') && received.len() < MAX_STATUS_LINE_BYTES {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..read]);
    }
    let first_line = received.split(|&byte| byte == b'\n').next().unwrap_or(&[]);
    Ok(String::from_utf8_lossy(first_line).trim_end().to_owned())
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK` → `200`).
fn status_code(status_line: &str) -> Option<&str> {
    let mut parts = status_line.split_ascii_whitespace();
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
        .then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_probed_on_loopback() {
        let probed = |listen: &str| probe_target(listen.parse().unwrap()).to_string();
        assert_eq!(probed("0.0.0.0:18099"), "127.0.0.1:18099");
        assert_eq!(probed("[::]:8080"), "127.0.0.1:8080");
        assert_eq!(probed("10.1.2.3:8080"), "10.1.2.3:8080");
        assert_eq!(probed("[::1]:9000"), "[::1]:9000");
    }

    #[test]
    fn status_codes_are_read_from_http_status_lines_only() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some("200"));
        assert_eq!(status_code("HTTP/1.0 503 Service Unavailable"), Some("503"));
        assert_eq!(status_code("SSH-2.0-OpenSSH_9.2"), None);
        assert_eq!(status_code("HTTP/1.1 20"), None);
        assert_eq!(status_code(""), None);
    }

    /// A one-shot server that reads a request and answers `answer`.
    async fn answering(answer: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 512];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        address
    }

    #[tokio::test]
    async fn only_a_200_is_healthy() {
        let healthy = answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        assert!(probe(healthy).await.is_ok());

        let failing = answering("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let err = probe(failing).await.unwrap_err().to_string();
        assert!(err.contains("503 Service Unavailable"), "{err}");

        let not_http = answering("hello\n").await;
        let err = probe(not_http).await.unwrap_err();
        assert!(matches!(err, ProbeError::NotHttp { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_silent_service_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let err = probe(address).await.unwrap_err();
        assert!(matches!(err, ProbeError::TimedOut { .. }), "{err}");
        drop(listener);
    }
}

//! `loadgen`: a light HTTP/1.1 load generator for the claim route. Every request is
//! `POST {base}/v1/campaigns/{id}/claims` for a new user (`<run>-<conn>-<seq>`), over
//! keep-alive connections (hyper 1 client, one task per connection, one thread by default so
//! it leaves the cores to the service and the database). Prints one JSON line.
//!
//! * `--rate R` (R > 0): open loop. Connection `c` of `C` sends on its own fixed schedule,
//!   one request every `C / R` seconds, staggered across connections. A late answer does not
//!   push the schedule back: the next request goes at once and its latency still counts from
//!   its intended send time (corrected for coordinated omission, as wrk2 does). Intended times
//!   are honoured to the timer's resolution (about 1 ms), which latencies then include.
//! * `--rate 0`: closed loop (saturation). Each connection sends its next request as soon as
//!   the previous answer has arrived; latency counts from the actual send.
//!
//! Requests that start (open loop: are due) during `--warmup-seconds` are sent but not
//! counted. 201 counts as a claim; any other answer is counted by `"<status> <code>"` from its
//! JSON body, and transport failures as `"io …"` or `"timeout"`.
use giftcodes_bench::{percentile_ms, round};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use uuid::Uuid;

/// Drives the claim route at a fixed rate or at saturation.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// Service base URL, `http://HOST:PORT` (plain HTTP only).
    #[arg(long)]
    base: String,
    /// Campaign to claim from.
    #[arg(long)]
    campaign: Uuid,
    /// Client bearer token.
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    token: String,
    /// Offered requests per second over all connections; 0 runs a closed loop (saturation).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Keep-alive connections (one task each).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup_seconds: f64,
    /// Seconds one request may take before it counts as `timeout` (and its connection is
    /// replaced).
    #[arg(long, default_value_t = 10.0)]
    timeout_seconds: f64,
    /// Runtime worker threads (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Tag in the user ids (`<run>-<conn>-<seq>`); random when omitted.
    #[arg(long)]
    run: Option<String>,
}

/// What every connection task shares.
struct Plan {
    addr: SocketAddr,
    host: String,
    path: String,
    auth: String,
    run: String,
    connections: usize,
    /// Per-connection send interval (open loop only).
    interval: Option<Duration>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    /// After this, an open-loop connection still behind its schedule sends no more.
    give_up: Instant,
    timeout: Duration,
}

/// What one connection saw in the measured window.
#[derive(Default)]
struct Stats {
    requests: u64,
    created: u64,
    /// Every 201, warm-up included (to check against the rows issued).
    created_all: u64,
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    /// Due in the window but never sent (the schedule was still behind at `give_up`).
    unsent: u64,
    last_done: Option<Instant>,
}

/// How long past the end an open-loop connection may keep working off its backlog.
const BACKLOG_GRACE: Duration = Duration::from_secs(5);

fn main() {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let result = runtime
        .map_err(|e| format!("runtime: {e}"))
        .and_then(|rt| rt.block_on(run(args)));
    if let Err(message) = result {
        eprintln!("loadgen: {message}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.connections == 0 || args.seconds <= 0.0 || args.rate < 0.0 {
        return Err("--connections and --seconds must be positive, --rate not negative".into());
    }
    let authority = args
        .base
        .strip_prefix("http://")
        .ok_or("--base must start with http://")?
        .trim_end_matches('/');
    let addr = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("resolving {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to nothing"))?;
    let run_tag = args
        .run
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string()[..8].to_owned());
    let cpu_before = own_cpu_seconds();
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + Duration::from_secs_f64(args.warmup_seconds.max(0.0));
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let plan = Arc::new(Plan {
        addr,
        host: authority.to_owned(),
        path: format!("/v1/campaigns/{}/claims", args.campaign),
        auth: format!("Bearer {}", args.token),
        run: run_tag,
        connections: args.connections,
        interval: (args.rate > 0.0)
            .then(|| Duration::from_secs_f64(args.connections as f64 / args.rate)),
        start,
        measure_from,
        end,
        give_up: end + BACKLOG_GRACE,
        timeout: Duration::from_secs_f64(args.timeout_seconds),
    });

    let tasks: Vec<_> = (0..args.connections)
        .map(|conn| tokio::spawn(connection(plan.clone(), conn)))
        .collect();
    let mut total = Stats::default();
    for task in tasks {
        let stats = task.await.map_err(|e| format!("task panicked: {e}"))?;
        total.requests += stats.requests;
        total.created += stats.created;
        total.created_all += stats.created_all;
        total.unsent += stats.unsent;
        total.latencies_us.extend(stats.latencies_us);
        for (key, count) in stats.errors {
            *total.errors.entry(key).or_default() += count;
        }
        total.last_done = total.last_done.max(stats.last_done);
    }
    if total.unsent > 0 {
        total
            .errors
            .insert("unsent (schedule still behind)".into(), total.unsent);
    }
    // Claims per second over the measured window, or over the time the answers actually took
    // to come back when that was longer (an open loop working off a backlog).
    let window = total
        .last_done
        .map_or(args.seconds, |done| {
            done.saturating_duration_since(measure_from).as_secs_f64()
        })
        .max(args.seconds);
    total.latencies_us.sort_unstable();
    let p = |q: f64| percentile_ms(&total.latencies_us, q);
    let line = serde_json::json!({
        "mode": if args.rate > 0.0 { "open" } else { "closed" },
        "offered_rate": args.rate,
        "connections": args.connections,
        "seconds": args.seconds,
        "window_seconds": round(window, 3),
        "requests": total.requests,
        "created": total.created,
        "created_all": total.created_all,
        "claims_per_s": round(total.created as f64 / window, 1),
        "p50_ms": p(0.50),
        "p90_ms": p(0.90),
        "p99_ms": p(0.99),
        "max_ms": total.latencies_us.last().map_or(0.0, |us| round(f64::from(*us) / 1000.0, 2)),
        "errors": total.errors,
        "loadgen_cpu_s": round(own_cpu_seconds() - cpu_before, 2),
    });
    println!("{line}");
    Ok(())
}

/// One keep-alive connection's loop.
async fn connection(plan: Arc<Plan>, conn: usize) -> Stats {
    let mut stats = Stats::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut next_due = match plan.interval {
        Some(interval) => plan.start + interval.mul_f64(conn as f64 / plan.connections as f64),
        None => plan.start,
    };
    tokio::time::sleep_until(next_due.into()).await;
    let mut seq: u64 = 0;
    loop {
        let intended = match plan.interval {
            Some(interval) => {
                let due = next_due;
                next_due += interval;
                if due >= plan.end {
                    break;
                }
                if Instant::now() >= plan.give_up {
                    if due >= plan.measure_from {
                        stats.unsent += 1;
                    }
                    continue;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => {
                let now = Instant::now();
                if now >= plan.end {
                    break;
                }
                now
            }
        };
        let measured = intended >= plan.measure_from;
        let outcome = match sender.as_mut() {
            Some(sender) => send(&plan, sender, conn, seq).await,
            None => match open(&plan).await {
                Ok(mut fresh) => {
                    let outcome = send(&plan, &mut fresh, conn, seq).await;
                    sender = Some(fresh);
                    outcome
                }
                Err(key) => Outcome::Failed(key),
            },
        };
        seq += 1;
        let done = Instant::now();
        match outcome {
            Outcome::Created => stats.created_all += 1,
            Outcome::Failed(_) => sender = None,
            Outcome::Refused(_) => {}
        }
        if !measured {
            if matches!(outcome, Outcome::Failed(_)) && plan.interval.is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            continue;
        }
        stats.requests += 1;
        stats.last_done = Some(done);
        let us = done.saturating_duration_since(intended).as_micros();
        stats
            .latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
        match outcome {
            Outcome::Created => stats.created += 1,
            Outcome::Refused(key) => *stats.errors.entry(key).or_default() += 1,
            Outcome::Failed(key) => {
                *stats.errors.entry(key).or_default() += 1;
                if plan.interval.is_none() {
                    // Do not spin on a refused connection in a closed loop.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    stats
}

enum Outcome {
    Created,
    /// An HTTP answer other than 201, as `"<status> <code>"`.
    Refused(String),
    /// No HTTP answer (the connection is dropped and opened again).
    Failed(String),
}

async fn open(plan: &Plan) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(plan.addr)
        .await
        .map_err(|e| format!("io connect: {}", e.kind()))?;
    stream.set_nodelay(true).ok();
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("io handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn send(
    plan: &Plan,
    sender: &mut SendRequest<Full<Bytes>>,
    conn: usize,
    seq: u64,
) -> Outcome {
    let body = format!(r#"{{"user_id":"{}-{conn}-{seq}"}}"#, plan.run);
    let request = Request::post(plan.path.as_str())
        .header(HOST, plan.host.as_str())
        .header(AUTHORIZATION, plan.auth.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)));
    let request = match request {
        Ok(request) => request,
        Err(e) => return Outcome::Failed(format!("io request: {e}")),
    };
    let exchange = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body))
    };
    match tokio::time::timeout(plan.timeout, exchange).await {
        Err(_) => Outcome::Failed("timeout".into()),
        Ok(Err(e)) => Outcome::Failed(format!("io {}", hyper_error_kind(&e))),
        Ok(Ok((StatusCode::CREATED, _))) => Outcome::Created,
        Ok(Ok((status, body))) => {
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "-".into());
            Outcome::Refused(format!("{} {code}", status.as_u16()))
        }
    }
}

/// A short name for a client error, stable enough to count by.
fn hyper_error_kind(e: &hyper::Error) -> &'static str {
    if e.is_incomplete_message() {
        "incomplete message"
    } else if e.is_closed() || e.is_canceled() {
        "connection closed"
    } else if e.is_parse() {
        "parse"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "other"
    }
}

/// CPU seconds (user + system) this process has used so far, from `/proc/self/stat`
/// (Linux's `USER_HZ` is 100).
fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime field 11, stime field 12.
    (ticks(11) + ticks(12)) / 100.0
}

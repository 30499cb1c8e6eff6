//! `loadgen`: a light HTTP/1.1 load generator for the claim route. Every request is
//! `POST {base}/v1/campaigns/{id}/claims` for a new user (`<run>-<conn>-<seq>`), over
//! keep-alive connections (hyper 1 client, one task per connection, one thread by default so
//! it leaves the cores to the service and the database). Prints one JSON line.
//!
//! * Several `--base` URLs (service instances on one database): connection `c` goes to base
//!   `c mod B`, so the connections are split evenly across the instances.
//! * Several campaigns (`--campaign` repeated or comma-separated, or `--campaigns-file`, one
//!   id a line): each request draws its campaign, `--distribution uniform` (every campaign
//!   alike) or `zipf` (the campaign of rank k, in the order given, with weight `k^-s`,
//!   `--zipf-s`, 1.1 by default). The draw is a fixed-seed generator per connection, so a run
//!   is repeatable.
//!
//! * `--rate R` (R > 0): open loop. Connection `c` of `C` sends on its own fixed schedule,
//!   one request every `C / R` seconds, staggered across connections. A late answer does not
//!   push the schedule back: the next request goes at once and its latency still counts from
//!   its intended send time (corrected for coordinated omission, as wrk2 does). A request
//!   that waited for its time on the timer counts from when the timer woke it: Tokio's timer
//!   fires up to a millisecond late (its resolution), and that delay is the load generator's,
//!   not the service's (its mean is printed as `timer_lateness_ms_mean`).
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
    /// Service base URL, `http://HOST:PORT` (plain HTTP only); repeat (or separate with
    /// commas) to split the connections across several instances.
    #[arg(long, required = true, value_delimiter = ',')]
    base: Vec<String>,
    /// Campaign to claim from; repeat (or separate with commas) for several.
    #[arg(long, value_delimiter = ',')]
    campaign: Vec<Uuid>,
    /// A file of campaign ids, one a line (added after the `--campaign` ones).
    #[arg(long)]
    campaigns_file: Option<std::path::PathBuf>,
    /// How each request chooses its campaign.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// Exponent of the Zipf distribution (campaign of rank k has weight k^-s).
    #[arg(long, default_value_t = 1.1)]
    zipf_s: f64,
    /// Seed of the campaign draws (each connection derives its own from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
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
    /// Also write every measured request to this file, one line each:
    /// `<intended send, Unix seconds> <latency ms> <outcome>` (outcome `201` or the error key),
    /// so a caller can pick out a time window.
    #[arg(long)]
    samples_file: Option<std::path::PathBuf>,
}

/// How a request picks its campaign among several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Distribution {
    Uniform,
    Zipf,
}

/// One service instance to send to.
struct Target {
    addr: SocketAddr,
    host: String,
}

/// What every connection task shares.
struct Plan {
    targets: Vec<Target>,
    /// Claim path of each campaign, in the order given.
    paths: Vec<String>,
    /// Zipf: cumulative weights of the campaigns (the last is 1); uniform: empty.
    cumulative: Vec<f64>,
    seed: u64,
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
    /// Keep every measured request (for `--samples-file`).
    keep_samples: bool,
}

/// One measured request, for `--samples-file`.
struct Sample {
    intended: Instant,
    latency_us: u32,
    /// `201`, or the error key.
    outcome: String,
}

/// What one connection saw in the measured window.
#[derive(Default)]
struct Stats {
    requests: u64,
    created: u64,
    /// Every 201, warm-up included (to check against the rows issued).
    created_all: u64,
    /// The same per campaign (index into `Plan::paths`).
    created_all_by_campaign: Vec<u64>,
    latencies_us: Vec<u32>,
    samples: Vec<Sample>,
    errors: BTreeMap<String, u64>,
    /// Due in the window but never sent (the schedule was still behind at `give_up`).
    unsent: u64,
    last_done: Option<Instant>,
    /// How late the timer woke the connection for its measured requests, in all, and how often.
    timer_lateness: Duration,
    timer_wakes: u32,
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
    let mut targets = Vec::with_capacity(args.base.len());
    for base in &args.base {
        targets.push(resolve(base).await?);
    }
    let mut campaigns = args.campaign.clone();
    if let Some(file) = &args.campaigns_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            campaigns.push(
                line.parse()
                    .map_err(|e| format!("{}: campaign id {line:?}: {e}", file.display()))?,
            );
        }
    }
    if campaigns.is_empty() {
        return Err("give at least one campaign (--campaign or --campaigns-file)".into());
    }
    if args.distribution == Distribution::Zipf && (args.zipf_s.is_nan() || args.zipf_s <= 0.0) {
        return Err("--zipf-s must be positive".into());
    }
    let run_tag = args
        .run
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string()[..8].to_owned());
    let cpu_before = own_cpu_seconds();
    let (anchor, anchor_wall) = (Instant::now(), std::time::SystemTime::now());
    let start = anchor + Duration::from_millis(50);
    let measure_from = start + Duration::from_secs_f64(args.warmup_seconds.max(0.0));
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let plan = Arc::new(Plan {
        targets,
        paths: campaigns
            .iter()
            .map(|c| format!("/v1/campaigns/{c}/claims"))
            .collect(),
        cumulative: match args.distribution {
            Distribution::Uniform => Vec::new(),
            Distribution::Zipf => zipf_cumulative(campaigns.len(), args.zipf_s),
        },
        seed: args.seed,
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
        keep_samples: args.samples_file.is_some(),
    });

    let tasks: Vec<_> = (0..args.connections)
        .map(|conn| tokio::spawn(connection(plan.clone(), conn)))
        .collect();
    let mut total = Stats {
        created_all_by_campaign: vec![0; campaigns.len()],
        ..Stats::default()
    };
    for task in tasks {
        let stats = task.await.map_err(|e| format!("task panicked: {e}"))?;
        total.requests += stats.requests;
        total.created += stats.created;
        total.created_all += stats.created_all;
        for (sum, n) in total
            .created_all_by_campaign
            .iter_mut()
            .zip(&stats.created_all_by_campaign)
        {
            *sum += n;
        }
        total.unsent += stats.unsent;
        total.timer_lateness += stats.timer_lateness;
        total.timer_wakes += stats.timer_wakes;
        total.latencies_us.extend(stats.latencies_us);
        total.samples.extend(stats.samples);
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
    if let Some(path) = &args.samples_file {
        let wall0 = anchor_wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| format!("clock: {e}"))?
            .as_secs_f64();
        total.samples.sort_by_key(|s| s.intended);
        let mut text = String::with_capacity(total.samples.len() * 32);
        for s in &total.samples {
            let at = wall0 + s.intended.saturating_duration_since(anchor).as_secs_f64();
            let ms = f64::from(s.latency_us) / 1000.0;
            text.push_str(&format!("{at:.3} {ms:.3} {}\n", s.outcome));
        }
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    total.latencies_us.sort_unstable();
    let p = |q: f64| percentile_ms(&total.latencies_us, q);
    let line = serde_json::json!({
        "mode": if args.rate > 0.0 { "open" } else { "closed" },
        "offered_rate": args.rate,
        "connections": args.connections,
        "instances": args.base.len(),
        "campaigns": campaigns.len(),
        "distribution": match args.distribution {
            Distribution::Uniform => "uniform",
            Distribution::Zipf => "zipf",
        },
        "zipf_s": (args.distribution == Distribution::Zipf).then_some(args.zipf_s),
        "seconds": args.seconds,
        "window_seconds": round(window, 3),
        "requests": total.requests,
        "created": total.created,
        "created_all": total.created_all,
        "created_all_by_campaign": campaigns
            .iter()
            .map(|c| c.to_string())
            .zip(total.created_all_by_campaign.iter().copied())
            .collect::<BTreeMap<_, _>>(),
        "claims_per_s": round(total.created as f64 / window, 1),
        "p50_ms": p(0.50),
        "p90_ms": p(0.90),
        "p99_ms": p(0.99),
        "max_ms": total.latencies_us.last().map_or(0.0, |us| round(f64::from(*us) / 1000.0, 2)),
        "errors": total.errors,
        "loadgen_cpu_s": round(own_cpu_seconds() - cpu_before, 2),
        "timer_lateness_ms_mean": (total.timer_wakes > 0).then(|| {
            round(total.timer_lateness.as_secs_f64() * 1000.0 / f64::from(total.timer_wakes), 3)
        }),
    });
    println!("{line}");
    Ok(())
}

/// One keep-alive connection's loop.
async fn connection(plan: Arc<Plan>, conn: usize) -> Stats {
    let mut stats = Stats {
        created_all_by_campaign: vec![0; plan.paths.len()],
        ..Stats::default()
    };
    let target = &plan.targets[conn % plan.targets.len()];
    let mut rng = SplitMix64::for_connection(plan.seed, conn);
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
                if Instant::now() >= due {
                    // Behind schedule (the last answer came late): count from the due time.
                    due
                } else {
                    tokio::time::sleep_until(due.into()).await;
                    let woke = Instant::now();
                    if due >= plan.measure_from {
                        stats.timer_lateness += woke.saturating_duration_since(due);
                        stats.timer_wakes += 1;
                    }
                    woke
                }
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
        let campaign = pick_campaign(&plan, &mut rng);
        let request = (target, plan.paths[campaign].as_str(), conn, seq);
        let outcome = match sender.as_mut() {
            Some(sender) => send(&plan, sender, request).await,
            None => match open(target).await {
                Ok(mut fresh) => {
                    let outcome = send(&plan, &mut fresh, request).await;
                    sender = Some(fresh);
                    outcome
                }
                Err(key) => Outcome::Failed(key),
            },
        };
        seq += 1;
        let done = Instant::now();
        match outcome {
            Outcome::Created => {
                stats.created_all += 1;
                stats.created_all_by_campaign[campaign] += 1;
            }
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
        let latency_us = u32::try_from(us).unwrap_or(u32::MAX);
        stats.latencies_us.push(latency_us);
        if plan.keep_samples {
            stats.samples.push(Sample {
                intended,
                latency_us,
                outcome: match &outcome {
                    Outcome::Created => "201".to_owned(),
                    Outcome::Refused(key) | Outcome::Failed(key) => key.clone(),
                },
            });
        }
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

async fn open(target: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(target.addr)
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

/// Where one request goes and whose it is: target, path, connection, sequence number.
type RequestSpec<'a> = (&'a Target, &'a str, usize, u64);

async fn send(
    plan: &Plan,
    sender: &mut SendRequest<Full<Bytes>>,
    (target, path, conn, seq): RequestSpec<'_>,
) -> Outcome {
    let body = format!(r#"{{"user_id":"{}-{conn}-{seq}"}}"#, plan.run);
    let request = Request::post(path)
        .header(HOST, target.host.as_str())
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

/// Resolves `http://HOST:PORT` to the address to connect to.
async fn resolve(base: &str) -> Result<Target, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or("--base must start with http://")?
        .trim_end_matches('/');
    let addr = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("resolving {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to nothing"))?;
    Ok(Target {
        addr,
        host: authority.to_owned(),
    })
}

/// Cumulative Zipf(s) weights of ranks 1..=n, normalised so the last is 1.
fn zipf_cumulative(n: usize, s: f64) -> Vec<f64> {
    let mut sum = 0.0;
    let mut cumulative: Vec<f64> = (1..=n)
        .map(|k| {
            sum += (k as f64).powf(-s);
            sum
        })
        .collect();
    for c in &mut cumulative {
        *c /= sum;
    }
    cumulative
}

/// The campaign (index into `plan.paths`) of the next request.
fn pick_campaign(plan: &Plan, rng: &mut SplitMix64) -> usize {
    let n = plan.paths.len();
    if n == 1 {
        return 0;
    }
    let u = rng.next_f64();
    if plan.cumulative.is_empty() {
        ((u * n as f64) as usize).min(n - 1)
    } else {
        plan.cumulative.partition_point(|&c| c <= u).min(n - 1)
    }
}

/// SplitMix64: a small, fast generator, plenty for spreading requests over campaigns.
struct SplitMix64(u64);

impl SplitMix64 {
    /// Connection `conn`'s generator for the run's `seed`. Its starting state is itself a
    /// draw, so the connections' streams are unrelated: a generator stepping by a fixed
    /// increment, started at `seed ^ conn × increment`, would make connection `c + 2` draw
    /// exactly what connection `c` drew two requests earlier, and a round of the service
    /// would meet the same campaign over and over (uniform over 200 campaigns, rounds of 28
    /// claims carried 15 campaigns instead of ~26).
    fn for_connection(seed: u64, conn: usize) -> Self {
        Self(SplitMix64(seed ^ (conn as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64())
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_weights_fall_as_a_power_of_the_rank() {
        let c = zipf_cumulative(1000, 1.1);
        assert!((c[999] - 1.0).abs() < 1e-12);
        let p1 = c[0];
        let p2 = c[1] - c[0];
        assert!((p1 / p2 - 2f64.powf(1.1)).abs() < 1e-9);
        // H(1000, 1.1) is about 5.57, so rank 1 draws about 18% of the requests.
        assert!((0.17..0.19).contains(&p1), "{p1}");
    }

    #[test]
    fn connections_draw_unrelated_streams() {
        let streams: Vec<Vec<u64>> = (0..64)
            .map(|conn| {
                let mut rng = SplitMix64::for_connection(1, conn);
                (0..1_000).map(|_| rng.next_u64()).collect()
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for stream in &streams {
            for draw in stream {
                assert!(
                    seen.insert(*draw),
                    "two connections drew the same 64-bit value"
                );
            }
        }
    }

    #[test]
    fn draws_follow_the_distribution() {
        let plan = |cumulative: Vec<f64>, n: usize| Plan {
            targets: Vec::new(),
            paths: vec![String::new(); n],
            cumulative,
            seed: 7,
            auth: String::new(),
            run: String::new(),
            connections: 1,
            interval: None,
            start: Instant::now(),
            measure_from: Instant::now(),
            end: Instant::now(),
            give_up: Instant::now(),
            timeout: Duration::ZERO,
            keep_samples: false,
        };
        let count = |plan: &Plan| {
            let mut rng = SplitMix64(plan.seed);
            let mut seen = vec![0u32; plan.paths.len()];
            for _ in 0..100_000 {
                seen[pick_campaign(plan, &mut rng)] += 1;
            }
            seen
        };
        let uniform = count(&plan(Vec::new(), 10));
        assert!(
            uniform.iter().all(|&n| (9_000..11_000).contains(&n)),
            "{uniform:?}"
        );
        let zipf = count(&plan(zipf_cumulative(1000, 1.1), 1000));
        assert!((17_000..19_500).contains(&zipf[0]), "{}", zipf[0]);
        assert!(zipf[0] > zipf[1] && zipf[1] > zipf[9] && zipf[9] > zipf[99]);
    }
}

//! `claim-floor`: the raw-SQL floor of the claim path. The service's own claim round (its two
//! reads, then the issuing transaction: lock the day counter, read the limit, pick … FOR UPDATE
//! SKIP LOCKED, issue, write the counter, commit — `giftcodes::claim::round`) run straight at
//! the database with no HTTP, from C concurrent
//! tasks (one pooled connection each, READ COMMITTED as the service sets it) for D seconds,
//! each transaction carrying `n` codes for `n` synthetic users. Prints one JSON line.
//!
//! ```text
//! claim-floor --database-url mysql://… --campaign <uuid> --connections 2 --per-transaction 1 --seconds 8
//! ```
//! Without `--campaign` it first creates a campaign (UTC, no daily limit) holding `--codes`
//! codes. It stops early, and says so (`ran_out_of_codes`), when the campaign runs dry.
use giftcodes_bench::{percentile_ms, round};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use clap::Parser;
use giftcodes::claim::ClaimRefusal;
use giftcodes::claim::queries::CounterLocks;
use giftcodes::claim::round::{self, CampaignClaims, RoundContext, WriterMemory};
use giftcodes::config::Cli;
use giftcodes::domain::{CampaignName, CampaignTimeZone, SystemClock, UserId};
use giftcodes::store;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::Barrier;
use uuid::Uuid;

/// Measures the claim transaction with no HTTP in front of it.
#[derive(Debug, Parser)]
#[command(name = "claim-floor")]
struct Args {
    /// `mysql://USER:PASSWORD@HOST:PORT/DB` (or any URL the service accepts).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Campaign to claim from (its codes must be available); created when omitted.
    #[arg(long)]
    campaign: Option<Uuid>,
    /// Codes to load into the campaign created when `--campaign` is omitted.
    #[arg(long, default_value_t = 200_000)]
    codes: u64,
    /// Concurrent tasks, one database connection each.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Codes claimed per transaction.
    #[arg(long, default_value_t = 1)]
    per_transaction: usize,
    /// How long to run.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Tag in the synthetic user ids (`floor-<run>-<task>-<seq>`); random when omitted.
    #[arg(long)]
    run: Option<String>,
}

/// What one task did.
#[derive(Default)]
struct TaskStats {
    transactions: u64,
    codes: u64,
    /// Transaction latencies in microseconds (begin to commit).
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    ran_out: bool,
}

/// Errors in one task after which it gives up.
const MAX_ERRORS_PER_TASK: u64 = 1_000;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(message) = run(args).await {
        eprintln!("claim-floor: {message}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.connections == 0 || args.per_transaction == 0 || args.seconds <= 0.0 {
        return Err("--connections, --per-transaction and --seconds must be positive".into());
    }
    let pool_size = args.connections.max(2).to_string();
    let cli = Cli::try_parse_from([
        "giftcodes",
        "--database-url",
        &args.database_url,
        "--db-max-connections",
        &pool_size,
    ])
    .map_err(|e| format!("settings: {e}"))?;
    let db = giftcodes::startup::connect(&cli.settings)
        .await
        .map_err(|e| e.to_string())?;
    let run_tag = args
        .run
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string()[..8].to_owned());
    let campaign = match args.campaign {
        Some(id) => id,
        None => create_campaign(&db, &run_tag, args.codes)
            .await
            .map_err(|e| format!("creating the campaign: {e}"))?,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(args.connections + 1));
    let duration = Duration::from_secs_f64(args.seconds);
    let mut tasks = Vec::with_capacity(args.connections);
    for task in 0..args.connections {
        let job = Job {
            db: db.clone(),
            campaign,
            n: args.per_transaction,
            run: run_tag.clone(),
            task,
            stop: stop.clone(),
            barrier: barrier.clone(),
            duration,
        };
        tasks.push(tokio::spawn(job.run()));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut total = TaskStats::default();
    for task in tasks {
        let stats = task
            .await
            .map_err(|e| format!("task panicked: {e}"))?
            .map_err(|e| format!("task failed: {e}"))?;
        total.transactions += stats.transactions;
        total.codes += stats.codes;
        total.latencies_us.extend(stats.latencies_us);
        for (key, count) in stats.errors {
            *total.errors.entry(key).or_default() += count;
        }
        total.ran_out |= stats.ran_out;
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let percentile = |q: f64| percentile_ms(&total.latencies_us, q);
    let line = serde_json::json!({
        "campaign_id": campaign.to_string(),
        "connections": args.connections,
        "per_transaction": args.per_transaction,
        "seconds": round(elapsed, 3),
        "transactions": total.transactions,
        "codes": total.codes,
        "tx_per_s": round(total.transactions as f64 / elapsed, 1),
        "codes_per_s": round(total.codes as f64 / elapsed, 1),
        "tx_p50_ms": percentile(0.50),
        "tx_p99_ms": percentile(0.99),
        "errors": total.errors,
        "ran_out_of_codes": total.ran_out,
    });
    println!("{line}");
    db.close().await.ok();
    Ok(())
}

/// One task's share of the run.
struct Job {
    db: DatabaseConnection,
    campaign: Uuid,
    n: usize,
    run: String,
    task: usize,
    stop: Arc<AtomicBool>,
    barrier: Arc<Barrier>,
    duration: Duration,
}

impl Job {
    async fn run(self) -> Result<TaskStats, DbErr> {
        // Open this task's connection before the clock starts: hold a transaction until every
        // task has one, so the pool really has `connections` connections.
        let warm = self.db.begin().await?;
        self.barrier.wait().await;
        warm.rollback().await?;
        let deadline = Instant::now() + self.duration;
        let mut stats = TaskStats::default();
        let mut memory = WriterMemory::default();
        let mut seq: u64 = 0;
        while Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
            let began = Instant::now();
            match self.round(&mut memory, &mut seq).await {
                Ok(k) => {
                    stats.transactions += 1;
                    stats.codes += k as u64;
                    let us = began.elapsed().as_micros();
                    stats
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                    if k < self.n {
                        stats.ran_out = true;
                        self.stop.store(true, Ordering::Relaxed);
                    }
                }
                Err(refusal) => {
                    *stats.errors.entry(format!("{refusal:?}")).or_default() += 1;
                    if stats.errors.values().sum::<u64>() >= MAX_ERRORS_PER_TASK {
                        self.stop.store(true, Ordering::Relaxed);
                        return Err(DbErr::Custom(format!(
                            "too many failed rounds: {refusal:?}"
                        )));
                    }
                }
            }
        }
        Ok(stats)
    }

    /// One claim round of the service (its reads and its issuing transaction) for `n` new
    /// users; the number of codes it issued (fewer than `n`: the campaign ran dry).
    async fn round(&self, memory: &mut WriterMemory, seq: &mut u64) -> Result<usize, ClaimRefusal> {
        let users: Vec<UserId> = (0..self.n)
            .map(|i| {
                UserId::parse(&format!(
                    "floor-{}-{}-{}",
                    self.run,
                    self.task,
                    *seq + i as u64
                ))
            })
            .collect::<Result<_, _>>()
            .map_err(|_| ClaimRefusal::Internal)?;
        *seq += self.n as u64;
        let mut ctx = RoundContext {
            db: &self.db,
            clock: &SystemClock,
            memory,
            counter_locks: CounterLocks::Wait,
            give_up_after: Duration::from_secs(2),
            begun: None,
        };
        let claims = [CampaignClaims {
            campaign_id: self.campaign,
            users,
        }];
        let result = round::claim_round(&mut ctx, &claims).await;
        let mut issued = 0;
        for answer in result.answers.into_values() {
            match answer {
                Ok(_) => issued += 1,
                Err(ClaimRefusal::OutOfStock) => {}
                Err(refusal) => return Err(refusal),
            }
        }
        Ok(issued)
    }
}

/// Creates a UTC campaign with no daily limit holding `codes` codes `FLOOR-<run>-<n>`.
async fn create_campaign(db: &DatabaseConnection, run: &str, codes: u64) -> Result<Uuid, DbErr> {
    let now = Utc::now().trunc_subsecs(0);
    let campaign = store::campaigns::insert(
        db,
        store::campaigns::NewCampaign {
            name: CampaignName::parse("bench claim floor").map_err(DbErr::Custom)?,
            daily_limit: None,
            time_zone: CampaignTimeZone::parse("UTC").map_err(DbErr::Custom)?,
            starts_at: None,
            ends_at: None,
        },
        now,
    )
    .await?;
    let batch = store::batches::insert(db, campaign.id, Some("claim-floor".into()), now).await?;
    let mut inserted = 0;
    let mut next = 1;
    while next <= codes {
        let last = (next + 4_999).min(codes);
        let chunk: Vec<String> = (next..=last)
            .map(|i| format!("FLOOR-{run}-{i:010}"))
            .collect();
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        inserted += store::codes::insert_skipping_clashes(db, campaign.id, batch.id, &refs).await?;
        next = last + 1;
    }
    store::batches::set_size(db, batch, inserted as i64).await?;
    eprintln!(
        "claim-floor: created campaign {} with {inserted} codes",
        campaign.id
    );
    Ok(campaign.id)
}

//! The claim path: one code per user, never twice, within an exact daily cap, with concurrent
//! claims coalesced into few transactions.
//!
//! # Shape
//! Requests go to a bounded queue. A writer task takes whatever is queued (up to
//! `max_batch`, waiting `linger` for more only if configured, so an idle service adds no delay),
//! groups it by campaign and runs one issuing transaction per campaign group
//! (`batch::claim_for_users`). Each request is answered only after that transaction has
//! committed (invariant 5). Repeats of one user inside a batch share one result.
//!
//! # Why the cap is exact (shape A of `shared/design/claim-and-cap.md`)
//! Every issuing transaction ends by changing the campaign-day counter row, and the codes it
//! marked issued commit together with that change. Writes to one row are serialized by its
//! row lock and each write sees the latest committed value, so:
//! * **The limit** is read inside the issuing transaction under a shared lock on the campaign
//!   row (`LOCK IN SHARE MODE`); an operator's change of the limit needs that row exclusively.
//!   So the change and the claim transactions are serialized explicitly: a transaction that
//!   read the old limit commits before the change can answer, and every transaction after it
//!   reads the new one. A lowered limit holds from the moment the PATCH answers.
//! * **Fast path** (far from the limit): `UPDATE … SET issued = issued + k WHERE … AND
//!   issued + k <= limit` is the gate. It either adds the transaction's `k` codes to a value
//!   that already includes every committed issue of the day and stays within the limit, or it
//!   changes nothing (affected rows 0) and the transaction rolls back. The row lock is taken
//!   last, so it is held only through the commit.
//! * **Exact path** (the gate refused: near the limit, or the day's row does not exist yet):
//!   create the row if missing (in its own statement: no shared-then-exclusive lock upgrade),
//!   then in one transaction lock the row `FOR UPDATE`, `COUNT` the day's issued codes (READ
//!   COMMITTED: the count sees every transaction that passed the gate before us, and any
//!   transaction still in flight must pass the gate after us), issue `min(wanted, limit -
//!   count)`, and write `count + issued` back. The day is full when the counter equals the
//!   limit; later requests are refused from the counter alone without a transaction.
//!
//! No code is issued without passing one of the two gates, and both gates compare against the
//! serialized, committed total: the day's issued codes never exceed the limit. They are not
//! under-filled either: a refusal happens only when the committed total plus this
//! transaction's claims would pass the limit, and the exact path then issues exactly the room
//! left. This holds across any number of writers and instances, which share only the database.
//!
//! # No false sold-out (invariant 4)
//! `SKIP LOCKED` returns nothing when every free row is locked by another transaction, and the
//! pick starts above a per-writer cursor (see `batch::Issue::pick`) before it looks below. A
//! shortfall is answered `out_of_stock` only after a plain (non-skipping) read from the start
//! of the range finds no available code in committed data; otherwise the users wait briefly
//! and scan again.
mod batch;
pub mod queries;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

pub use crate::store::codes::IssuedClaim;

use crate::domain::{Clock, UserId};
use crate::error::{AppError, UNAVAILABLE_RETRY_AFTER_SECS};
use crate::metrics::ClaimMetrics;
use crate::telemetry::{RequestId, current_request_id};

/// The answer to one claim request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A code issued by this request.
    Issued(IssuedClaim),
    /// The code this user already had.
    Replayed(IssuedClaim),
}

/// Why a claim got no code; shared by every request of a batch that gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefusal {
    CampaignNotFound,
    CampaignInactive,
    DailyLimitReached {
        retry_after_secs: u64,
    },
    OutOfStock,
    /// The database cannot serve claims now (unreachable, read-only, killed): what is queued
    /// behind is refused at once too.
    Unavailable,
    /// This campaign's rows stayed locked by other transactions for the whole claim timeout;
    /// other campaigns are served as usual.
    Contended,
    Internal,
}

impl From<ClaimRefusal> for AppError {
    fn from(refusal: ClaimRefusal) -> Self {
        match refusal {
            ClaimRefusal::CampaignNotFound => AppError::CampaignNotFound,
            ClaimRefusal::CampaignInactive => AppError::CampaignInactive,
            ClaimRefusal::DailyLimitReached { retry_after_secs } => {
                AppError::DailyLimitReached { retry_after_secs }
            }
            ClaimRefusal::OutOfStock => AppError::OutOfStock,
            ClaimRefusal::Unavailable | ClaimRefusal::Contended => AppError::Unavailable {
                retry_after_secs: UNAVAILABLE_RETRY_AFTER_SECS,
            },
            ClaimRefusal::Internal => AppError::Internal,
        }
    }
}

/// How claims are coalesced.
#[derive(Debug, Clone, Copy)]
pub struct CoalescingSettings {
    /// Writer tasks in this process (each runs one transaction at a time).
    pub writers: usize,
    /// Most claims one transaction carries.
    pub max_batch: usize,
    /// How long a writer waits for more claims when fewer than `max_batch` are queued (zero:
    /// it never waits, so an idle service answers at once).
    pub linger: Duration,
    /// How long a request waits for its answer before it is told `unavailable`.
    pub request_timeout: Duration,
}

struct Job {
    campaign_id: Uuid,
    user: UserId,
    request_id: RequestId,
    reply: oneshot::Sender<Result<ClaimOutcome, ClaimRefusal>>,
}

/// The handle requests use to claim; cheap to clone.
#[derive(Clone)]
pub struct ClaimEngine {
    queue: mpsc::Sender<Job>,
    request_timeout: Duration,
}

impl ClaimEngine {
    /// Starts the writer tasks on the current Tokio runtime. The writers run until every
    /// engine handle is dropped and the queue is empty; [`ClaimWriters::finish`] waits for that.
    pub fn start(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        settings: CoalescingSettings,
        metrics: ClaimMetrics,
    ) -> (Self, ClaimWriters) {
        let (queue, receiver) = mpsc::channel(settings.max_batch * settings.writers * 64);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut tasks = JoinSet::new();
        for _ in 0..settings.writers {
            tasks.spawn(run_writer(
                receiver.clone(),
                db.clone(),
                clock.clone(),
                settings,
                metrics.clone(),
            ));
        }
        let engine = Self {
            queue,
            request_timeout: settings.request_timeout,
        };
        (engine, ClaimWriters { tasks })
    }

    /// Claims waiting for a writer now.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Claims a code of `campaign_id` for `user`, answered after the issuing commit.
    pub async fn claim(&self, campaign_id: Uuid, user: UserId) -> Result<ClaimOutcome, AppError> {
        let (reply, answer) = oneshot::channel();
        let unavailable = || AppError::from(ClaimRefusal::Unavailable);
        let job = Job {
            campaign_id,
            user,
            request_id: current_request_id(),
            reply,
        };
        let answered = tokio::time::timeout(self.request_timeout, async {
            self.queue.send(job).await.map_err(|_| unavailable())?;
            answer.await.map_err(|_| unavailable())
        })
        .await
        .map_err(|_| unavailable())??;
        answered.map_err(AppError::from)
    }
}

/// The writer tasks of a [`ClaimEngine`].
pub struct ClaimWriters {
    tasks: JoinSet<()>,
}

impl ClaimWriters {
    /// Waits until the writers have answered every queued claim and stopped (they stop once
    /// every engine handle is gone), for at most `deadline`; false if some were still running.
    pub async fn finish(mut self, deadline: Duration) -> bool {
        tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok()
    }
}

async fn run_writer(
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    settings: CoalescingSettings,
    metrics: ClaimMetrics,
) {
    let mut time_zones = HashMap::new();
    let mut pick_cursors = HashMap::new();
    let mut jobs = Vec::with_capacity(settings.max_batch);
    loop {
        if !take_batch(&receiver, &mut jobs, settings).await {
            return;
        }
        // A caller that has gone (its claim timed out, or it disconnected) while the claim
        // waited in the queue gets nothing issued: no code goes to someone who was told 503.
        jobs.retain(|job| !job.reply.is_closed());
        let mut ctx = batch::ClaimContext {
            db: &db,
            clock: clock.as_ref(),
            time_zones: &mut time_zones,
            pick_cursors: &mut pick_cursors,
            give_up_after: settings.request_timeout,
        };
        let mut unreachable = false;
        for (campaign_id, group) in group_by_campaign(jobs.drain(..)) {
            unreachable |= answer_group(&mut ctx, &metrics, campaign_id, group).await;
        }
        if unreachable {
            refuse_queued_as_unavailable(&receiver).await;
        }
    }
}

/// Answers `unavailable` at once to every claim that queued while a batch found the database
/// unreachable, so that none waits for the connection timeout more than once.
async fn refuse_queued_as_unavailable(receiver: &Mutex<mpsc::Receiver<Job>>) {
    let mut receiver = receiver.lock().await;
    while let Ok(job) = receiver.try_recv() {
        let _ = job.reply.send(Err(ClaimRefusal::Unavailable));
    }
}

/// Fills `jobs` with the next batch; false when the queue is closed.
async fn take_batch(
    receiver: &Mutex<mpsc::Receiver<Job>>,
    jobs: &mut Vec<Job>,
    settings: CoalescingSettings,
) -> bool {
    let mut receiver = receiver.lock().await;
    let Some(first) = receiver.recv().await else {
        return false;
    };
    jobs.push(first);
    while jobs.len() < settings.max_batch {
        match receiver.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) if settings.linger.is_zero() => break,
            Err(_) => match tokio::time::timeout(settings.linger, receiver.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                _ => break,
            },
        }
    }
    true
}

fn group_by_campaign(jobs: impl Iterator<Item = Job>) -> Vec<(Uuid, Vec<Job>)> {
    let mut groups: Vec<(Uuid, Vec<Job>)> = Vec::new();
    for job in jobs {
        match groups.iter_mut().find(|(id, _)| *id == job.campaign_id) {
            Some((_, group)) => group.push(job),
            None => groups.push((job.campaign_id, vec![job])),
        }
    }
    groups
}

/// Claims for one campaign's jobs and answers each; true if the database was unreachable.
async fn answer_group(
    ctx: &mut batch::ClaimContext<'_>,
    metrics: &ClaimMetrics,
    campaign_id: Uuid,
    jobs: Vec<Job>,
) -> bool {
    let mut seen = HashSet::with_capacity(jobs.len());
    let users: Vec<UserId> = jobs
        .iter()
        .filter(|job| seen.insert(&job.user))
        .map(|job| job.user.clone())
        .collect();
    let started = std::time::Instant::now();
    let results = batch::claim_for_users(ctx, campaign_id, &users).await;
    metrics.transaction(jobs.len(), started.elapsed());
    tracing::debug!(
        %campaign_id,
        requests = jobs.len(),
        request_ids = ?jobs.iter().map(|job| &*job.request_id).collect::<Vec<_>>(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "claim batch"
    );
    let unreachable = results
        .values()
        .any(|result| matches!(result, Err(ClaimRefusal::Unavailable)));
    // The first request of a user gets the new claim; its repeats in the batch get replays.
    let mut answered_new = HashSet::with_capacity(users.len());
    for job in jobs {
        let answer = match results.get(&job.user) {
            Some(Ok((claim, true))) if answered_new.insert(job.user.clone()) => {
                Ok(ClaimOutcome::Issued(claim.clone()))
            }
            Some(Ok((claim, _))) => Ok(ClaimOutcome::Replayed(claim.clone())),
            Some(Err(refusal)) => Err(refusal.clone()),
            None => Err(ClaimRefusal::Internal),
        };
        // A requester that gave up is not an error: a retry replays the committed claim.
        let _ = job.reply.send(answer);
    }
    unreachable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(campaign_id: Uuid, user: &str) -> Job {
        Job {
            campaign_id,
            user: UserId::parse(user).unwrap(),
            request_id: RequestId::from("test"),
            reply: oneshot::channel().0,
        }
    }

    fn settings(max_batch: usize) -> CoalescingSettings {
        CoalescingSettings {
            writers: 1,
            max_batch,
            linger: Duration::ZERO,
            request_timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_the_maximum() {
        let (queue, receiver) = mpsc::channel(16);
        let campaign = Uuid::new_v4();
        for i in 0..6 {
            queue.send(job(campaign, &format!("u{i}"))).await.unwrap();
        }
        let receiver = Mutex::new(receiver);
        let mut jobs = Vec::new();
        assert!(take_batch(&receiver, &mut jobs, settings(4)).await);
        assert_eq!(jobs.len(), 4, "coalesced up to max_batch");
        jobs.clear();
        assert!(take_batch(&receiver, &mut jobs, settings(4)).await);
        assert_eq!(jobs.len(), 2, "the rest, without waiting for more");
        drop(queue);
        jobs.clear();
        assert!(!take_batch(&receiver, &mut jobs, settings(4)).await);
    }

    #[tokio::test]
    async fn with_a_linger_a_batch_waits_for_claims_that_arrive_meanwhile() {
        let (queue, receiver) = mpsc::channel(16);
        let campaign = Uuid::new_v4();
        queue.send(job(campaign, "early")).await.unwrap();
        let late = queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            late.send(job(campaign, "late")).await.unwrap();
        });
        let lingering = CoalescingSettings {
            linger: Duration::from_millis(500),
            ..settings(2)
        };
        let mut jobs = Vec::new();
        assert!(take_batch(&Mutex::new(receiver), &mut jobs, lingering).await);
        assert_eq!(jobs.len(), 2, "the late claim joined the batch");
    }

    #[test]
    fn jobs_are_grouped_by_their_own_campaign_in_arrival_order() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let jobs = vec![job(a, "a1"), job(b, "b1"), job(a, "a2"), job(b, "b2")];
        let groups = group_by_campaign(jobs.into_iter());
        let users: Vec<(Uuid, Vec<&str>)> = groups
            .iter()
            .map(|(id, group)| (*id, group.iter().map(|j| j.user.as_str()).collect()))
            .collect();
        assert_eq!(users, vec![(a, vec!["a1", "a2"]), (b, vec!["b1", "b2"])]);
    }
}

//! The claim writers — tasks that take queued requests, decide them in shared rounds and
//! answer them — and the lanes that take over a campaign whose counter row stays held by
//! another transaction, so that campaign waits alone.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use super::plan::RoundPlan;
use super::queries::CounterLocks;
use super::round::{self, RoundContext, WriterMemory};
use super::{ClaimRefusal, CoalescingSettings, Job};
use crate::domain::Clock;
use crate::metrics::ClaimMetrics;

/// A campaign whose requests were left out of this many shared rounds in a row (its counter
/// row held elsewhere each time) is handed to a lane. A row held by another instance's round
/// (a millisecond) is usually free by the next round; a row held for longer would otherwise
/// cost a round trip per round for nothing.
const LANE_AFTER_DEFERRALS: u32 = 3;
/// How long a round made only of deferred requests waits for new ones (and gives the holder of
/// their counter row time to commit) before it runs.
const DEFERRED_PAUSE: Duration = Duration::from_millis(1);
/// How long a lane with nothing to do stays open for its campaign before it hands the campaign
/// back to the shared rounds: briefly, since a lane's rounds carry one campaign each, and the
/// shared rounds are where spread load is cheap.
const LANE_IDLE: Duration = Duration::from_millis(5);
/// The longest a lingering round waits for the next claim: the clients a round answered come
/// back within microseconds of each other, so a silence this long means they are all back
/// (Tokio's timers tick in milliseconds: this is the shortest wait there is).
const LINGER_GAP: Duration = Duration::from_millis(1);

/// What writers and lanes share.
pub(super) struct Shared {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub settings: CoalescingSettings,
    pub lanes: Lanes,
    pub carriers: Arc<Carriers>,
    pub metrics: ClaimMetrics,
}

/// A campaign with at least this many claims in a writer's round is hot: its claims go to that
/// writer while its rounds keep carrying that many (over 200 campaigns evenly, a round of 32
/// has such a campaign about once in two hundred rounds).
const HOT_CAMPAIGN_CLAIMS: usize = 4;

/// Which writers' rounds carry which campaigns. A campaign is in one round of this process at a
/// time: a writer leaves out of its round the claims of a campaign another writer's round
/// carries now, and the campaign is then kept for it when that round leaves (the other writer's
/// next round leaves it out in turn), so claims held back wait one round, however often the
/// campaign comes up in both writers' rounds. Two rounds carrying one campaign would
/// not break anything (the second finds the counter row held and defers it), but the second
/// would do its work for nothing. And the claims of a hot campaign all go to the writer whose
/// round carried it, so they gather in that writer's rounds, as large as they come: writers
/// taking turns on one campaign would cut its rounds in half, which costs the database a third
/// more per claim than the overlap gains.
#[derive(Default)]
pub(super) struct Carriers {
    state: SyncMutex<CarriersState>,
    /// How many campaigns are hot (read without the lock: most of the time none is).
    hot_campaigns: AtomicUsize,
    /// Told whenever a round leaves.
    left: Notify,
}

#[derive(Default)]
struct CarriersState {
    /// The campaigns of the rounds running now, and those kept for a writer's next round, with
    /// their writer.
    in_flight: HashMap<Uuid, usize>,
    /// Campaigns whose claims a writer holds back, with that writer.
    waiting: HashMap<Uuid, usize>,
    /// The hot campaigns, with the writer their claims go to.
    hot: HashMap<Uuid, usize>,
}

impl Carriers {
    /// The writer a hot campaign's claims go to (`None`: the campaign is not hot).
    pub(super) fn hot_carrier_of(&self, campaign_id: Uuid) -> Option<usize> {
        if self.hot_campaigns.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let state = self.state.lock().expect("carriers lock");
        state.hot.get(&campaign_id).copied()
    }

    /// Starts `writer`'s round with `claims` whose campaign no other writer's round carries
    /// (returned), and holds back the others (returned second). `writer`'s hot campaigns are
    /// then those of the round that are hot by [`HOT_CAMPAIGN_CLAIMS`] and that no other writer
    /// has as hot.
    fn enter(&self, writer: usize, jobs: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
        let mut state = self.state.lock().expect("carriers lock");
        // What was kept for this writer is free again unless this round has claims of it (a
        // writer waiting for it is woken, below).
        let kept = state.in_flight.len();
        state.in_flight.retain(|_, carrier| *carrier != writer);
        let freed = state.in_flight.len() < kept;
        let (mine, held): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|job| *state.in_flight.entry(job.campaign_id).or_insert(writer) == writer);
        for job in &held {
            state.waiting.insert(job.campaign_id, writer);
        }
        state.hot.retain(|_, carrier| *carrier != writer);
        let mut claims: HashMap<Uuid, usize> = HashMap::new();
        for job in &mine {
            *claims.entry(job.campaign_id).or_default() += 1;
        }
        for (campaign_id, n) in claims {
            if n >= HOT_CAMPAIGN_CLAIMS {
                state.hot.entry(campaign_id).or_insert(writer);
            }
        }
        self.hot_campaigns.store(state.hot.len(), Ordering::Relaxed);
        drop(state);
        if freed {
            self.left.notify_waiters();
        }
        (mine, held)
    }

    /// Ends `writer`'s round, which carried `round`: a campaign another writer waits for is kept
    /// for that writer's next round, the others are free. Wakes the writers waiting.
    fn leave(&self, writer: usize, round: impl Iterator<Item = Uuid>) {
        let mut state = self.state.lock().expect("carriers lock");
        for campaign_id in round {
            if state.in_flight.get(&campaign_id) != Some(&writer) {
                continue;
            }
            match state.waiting.remove(&campaign_id) {
                Some(waiting) if waiting != writer => {
                    state.in_flight.insert(campaign_id, waiting);
                }
                _ => {
                    state.in_flight.remove(&campaign_id);
                }
            }
        }
        drop(state);
        self.left.notify_waiters();
    }
}

impl Shared {
    /// Records a round: its latency and size, and a debug line naming the requests it served.
    fn log_round(&self, plan: &RoundPlan, result: &round::RoundResult, started: Instant) {
        let elapsed = started.elapsed();
        self.metrics.transaction(plan.request_count(), elapsed);
        tracing::debug!(
            requests = plan.request_count(),
            request_ids = ?plan.request_ids(),
            deferred_campaigns = result.deferred.len(),
            elapsed_us = elapsed.as_micros() as u64,
            "claim round"
        );
    }

    fn context<'a>(
        &'a self,
        memory: &'a mut WriterMemory,
        locks: CounterLocks,
    ) -> RoundContext<'a> {
        RoundContext {
            db: &self.db,
            clock: self.clock.as_ref(),
            memory,
            counter_locks: locks,
            give_up_after: self.settings.request_timeout,
            begun: None,
        }
    }
}

/// Writer number `index`: takes what is queued (up to `max_batch`), runs it as one shared
/// round, answers, and keeps the requests of deferred campaigns for its next round; requests
/// whose campaign another writer's round carries wait for that round to end. A round that
/// lingers for its claims begins its transaction meanwhile.
pub(super) async fn run_writer(
    index: usize,
    mut receiver: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
) {
    let mut memory = WriterMemory::default();
    let mut jobs = Vec::with_capacity(shared.settings.max_batch);
    let mut deferred = Vec::new();
    let mut expected = 0;
    let begins_early = round::begins_early(&shared.db);
    // The next round's transaction, begun while its claims gather. It is kept while the claims
    // wait for another writer's round (the round then runs as soon as that one leaves), and
    // dropped (rolled back) when nothing is left to run it.
    let mut begun: Option<JoinHandle<Result<DatabaseTransaction, DbErr>>> = None;
    loop {
        if !take_queued(
            &mut receiver,
            &mut jobs,
            &mut deferred,
            shared.settings.max_batch,
        )
        .await
        {
            return;
        }
        // The `BEGIN` round trip overlaps the wait instead of adding to the round; it starts only
        // once a round is sure to run within the linger, so no transaction stays open over an
        // idle spell.
        if begun.is_none() && begins_early && lingers(jobs.len(), expected, shared.settings) {
            begun = Some(tokio::spawn(round::begin_early(shared.db.clone())));
        }
        linger(&mut receiver, &mut jobs, shared.settings, expected).await;
        // A caller that has gone (its claim timed out, or it disconnected) while the claim
        // waited gets nothing issued: no code goes to someone who was told 503.
        jobs.retain(|job| !job.reply.is_closed());
        let routed = shared.lanes.route(jobs.drain(..));
        // Listening before entering: a round that leaves in between still wakes this writer.
        let left = shared.carriers.left.notified();
        tokio::pin!(left);
        left.as_mut().enable();
        let (mine, held) = shared.carriers.enter(index, routed);
        jobs = held;
        if mine.is_empty() {
            if jobs.is_empty() {
                begun = None;
            } else {
                left.await;
            }
            continue;
        }
        let plan = RoundPlan::of(mine);
        let claims = plan.claims();
        let started = Instant::now();
        let mut context = shared.context(&mut memory, CounterLocks::Skip);
        if let Some(begun) = begun.take() {
            context.begun = begun.await.ok();
        }
        let result = round::claim_round(&mut context, &claims).await;
        shared
            .carriers
            .leave(index, claims.iter().map(|claims| claims.campaign_id));
        shared.log_round(&plan, &result, started);
        // The next round can expect this round's requests again (under load their clients come
        // straight back, and deferred ones stay), those held back and those that queued while
        // it ran.
        expected = plan.request_count() + jobs.len() + receiver.len();
        let unreachable = result
            .answers
            .values()
            .any(|answer| matches!(answer, Err(ClaimRefusal::Unavailable)));
        for mut job in plan.answer(&result) {
            job.deferrals += 1;
            deferred.push(job);
        }
        hand_over_to_lanes(&shared, &memory, &mut deferred);
        if unreachable {
            refuse_queued_as_unavailable(&mut receiver);
        }
    }
}

/// Moves the requests of campaigns deferred [`LANE_AFTER_DEFERRALS`] times to their lanes
/// (while lanes are free; the others stay deferred).
fn hand_over_to_lanes(shared: &Arc<Shared>, memory: &WriterMemory, deferred: &mut Vec<Job>) {
    let (due, kept): (Vec<Job>, Vec<Job>) = deferred
        .drain(..)
        .partition(|job| job.deferrals >= LANE_AFTER_DEFERRALS);
    *deferred = kept;
    let mut by_campaign: HashMap<Uuid, Vec<Job>> = HashMap::new();
    for job in due {
        by_campaign.entry(job.campaign_id).or_default().push(job);
    }
    for (campaign_id, jobs) in by_campaign {
        deferred.extend(shared.lanes.hand_over(shared, memory, campaign_id, jobs));
    }
}

/// Answers `unavailable` at once to every claim that queued for this writer while its round
/// found the database unreachable, so that none waits for the connection timeout more than once
/// (each writer finds out in its own round).
fn refuse_queued_as_unavailable(receiver: &mut mpsc::Receiver<Job>) {
    while let Ok(job) = receiver.try_recv() {
        let _ = job.reply.send(Err(ClaimRefusal::Unavailable));
    }
}

/// Fills `jobs` with the next round: the requests already in it (held back from the last
/// round), the deferred ones, then what is queued, up to `max_batch`. With none of the first
/// two it waits for the first one; with deferred requests alone it waits at most
/// [`DEFERRED_PAUSE`]. False when the queue is closed and nothing is deferred.
async fn take_queued(
    receiver: &mut mpsc::Receiver<Job>,
    jobs: &mut Vec<Job>,
    deferred: &mut Vec<Job>,
    max_batch: usize,
) -> bool {
    if !jobs.is_empty() {
        jobs.append(deferred);
    } else if deferred.is_empty() {
        let Some(first) = receiver.recv().await else {
            return false;
        };
        jobs.push(first);
    } else {
        jobs.append(deferred);
        if let Ok(Some(job)) = tokio::time::timeout(DEFERRED_PAUSE, receiver.recv()).await {
            jobs.push(job);
        }
    }
    while jobs.len() < max_batch {
        match receiver.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    true
}

/// Whether a round of `taken` requests lingers for more (see [`linger`]): under load — claims
/// queued behind the first, or a last round of several (`expected` is how many requests the
/// writer's last round carried plus those that queued while it ran) — the clients the last
/// round answered are about to come back and can share this round's transaction. A lone claim
/// after a lone round (an idle service) runs at once.
fn lingers(taken: usize, expected: usize, settings: CoalescingSettings) -> bool {
    (taken > 1 || expected > 1) && !settings.linger.is_zero() && taken < settings.max_batch
}

/// Waits, when the round [`lingers`], for more claims while they keep arriving (each at most
/// [`LINGER_GAP`] after the one before), up to `linger` in all, and no longer once the
/// expected number is in (with a few clients per writer — several writers or instances —
/// waiting out a gap that no claim ends would leave the database idle for a millisecond or two
/// each round).
async fn linger(
    receiver: &mut mpsc::Receiver<Job>,
    jobs: &mut Vec<Job>,
    settings: CoalescingSettings,
    expected: usize,
) {
    if !lingers(jobs.len(), expected, settings) {
        return;
    }
    let deadline = tokio::time::Instant::now() + settings.linger;
    let enough = if expected > 1 {
        expected.min(settings.max_batch)
    } else {
        settings.max_batch
    };
    while jobs.len() < enough {
        let next = (tokio::time::Instant::now() + LINGER_GAP).min(deadline);
        match tokio::time::timeout_at(next, receiver.recv()).await {
            Ok(Some(job)) => jobs.push(job),
            _ => break,
        }
    }
}

/// The open lanes: at most `settings.lanes` at once, each one campaign's own writer that waits
/// for that campaign's counter row (`FOR UPDATE`, bounded by the session's lock-wait timeout)
/// on its own connection while the shared rounds go on without it.
pub(super) struct Lanes {
    open: SyncMutex<HashMap<Uuid, mpsc::Sender<Job>>>,
    tasks: SyncMutex<JoinSet<()>>,
    permits: Arc<Semaphore>,
}

impl Lanes {
    pub(super) fn new(max_open: usize) -> Self {
        Self {
            open: SyncMutex::new(HashMap::new()),
            tasks: SyncMutex::new(JoinSet::new()),
            permits: Arc::new(Semaphore::new(max_open)),
        }
    }

    /// Sends the requests of campaigns that have an open lane to it; returns the others.
    fn route(&self, jobs: impl Iterator<Item = Job>) -> Vec<Job> {
        let mut open = self.open.lock().expect("lanes lock");
        if open.is_empty() {
            return jobs.collect();
        }
        let mut rest = Vec::new();
        for job in jobs {
            let Some(lane) = open.get(&job.campaign_id) else {
                rest.push(job);
                continue;
            };
            match lane.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Closed(job)) => {
                    open.remove(&job.campaign_id);
                    rest.push(job);
                }
                Err(TrySendError::Full(job)) => rest.push(job),
            }
        }
        rest
    }

    /// Gives one campaign's requests to its lane, opening one if a lane is free; returns the
    /// requests it could not take.
    fn hand_over(
        &self,
        shared: &Arc<Shared>,
        memory: &WriterMemory,
        campaign_id: Uuid,
        jobs: Vec<Job>,
    ) -> Vec<Job> {
        let mut open = self.open.lock().expect("lanes lock");
        if open.get(&campaign_id).is_none_or(mpsc::Sender::is_closed) {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                return jobs;
            };
            let (sender, receiver) = mpsc::channel(shared.settings.max_batch * 16);
            open.insert(campaign_id, sender);
            tracing::info!(%campaign_id, "counter row held elsewhere: the campaign waits in its own lane");
            let lane = run_lane(
                receiver,
                shared.clone(),
                WriterMemory::seeded_from(memory, campaign_id),
                permit,
            );
            self.tasks.lock().expect("lanes lock").spawn(lane);
        }
        let lane = &open[&campaign_id];
        jobs.into_iter()
            .filter_map(|job| match lane.try_send(job) {
                Ok(()) => None,
                Err(TrySendError::Closed(job) | TrySendError::Full(job)) => Some(job),
            })
            .collect()
    }

    /// Closes every lane and waits until each has answered what it holds.
    pub(super) async fn finish(&self) {
        self.open.lock().expect("lanes lock").clear();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("lanes lock"));
        while tasks.join_next().await.is_some() {}
    }
}

/// A lane: rounds of one campaign that wait for its counter row, until it has had nothing to
/// do for [`LANE_IDLE`].
async fn run_lane(
    mut receiver: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    mut memory: WriterMemory,
    _permit: OwnedSemaphorePermit,
) {
    let mut jobs = Vec::with_capacity(shared.settings.max_batch);
    loop {
        match tokio::time::timeout(LANE_IDLE, receiver.recv()).await {
            Ok(Some(job)) => jobs.push(job),
            Ok(None) => return,
            // Closed, it still yields what was sent before: those are answered, then it ends.
            Err(_) => {
                receiver.close();
                continue;
            }
        }
        while jobs.len() < shared.settings.max_batch {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        jobs.retain(|job| !job.reply.is_closed());
        let plan = RoundPlan::of(jobs.drain(..));
        if plan.request_count() == 0 {
            continue;
        }
        let started = Instant::now();
        let result = round::claim_round(
            &mut shared.context(&mut memory, CounterLocks::Wait),
            &plan.claims(),
        )
        .await;
        shared.log_round(&plan, &result, started);
        // A lane waits for its counter row, so nothing comes back deferred.
        for job in plan.answer(&result) {
            let _ = job.reply.send(Err(ClaimRefusal::Contended));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;
    use crate::telemetry::RequestId;
    use tokio::sync::oneshot;

    fn job(campaign_id: Uuid, user: &str) -> Job {
        Job {
            campaign_id,
            user: UserId::parse(user).unwrap(),
            request_id: RequestId::from("test"),
            reply: oneshot::channel().0,
            deferrals: 0,
        }
    }

    /// What a writer takes for its next round.
    async fn take_round(
        receiver: &mut mpsc::Receiver<Job>,
        jobs: &mut Vec<Job>,
        deferred: &mut Vec<Job>,
        settings: CoalescingSettings,
        expected: usize,
    ) -> bool {
        if !take_queued(receiver, jobs, deferred, settings.max_batch).await {
            return false;
        }
        linger(receiver, jobs, settings, expected).await;
        true
    }

    fn settings(max_batch: usize) -> CoalescingSettings {
        CoalescingSettings {
            writers: 1,
            max_batch,
            linger: Duration::ZERO,
            request_timeout: Duration::from_secs(1),
            lanes: 1,
        }
    }

    #[tokio::test]
    async fn a_round_takes_what_is_queued_up_to_the_maximum() {
        let (queue, mut receiver) = mpsc::channel(16);
        let campaign = Uuid::new_v4();
        for i in 0..6 {
            queue.send(job(campaign, &format!("u{i}"))).await.unwrap();
        }
        let (mut jobs, mut deferred) = (Vec::new(), Vec::new());
        assert!(take_round(&mut receiver, &mut jobs, &mut deferred, settings(4), 0).await);
        assert_eq!(jobs.len(), 4, "coalesced up to max_batch");
        jobs.clear();
        assert!(take_round(&mut receiver, &mut jobs, &mut deferred, settings(4), 0).await);
        assert_eq!(jobs.len(), 2, "the rest, without waiting for more");
        drop(queue);
        jobs.clear();
        assert!(!take_round(&mut receiver, &mut jobs, &mut deferred, settings(4), 0).await);
    }

    #[tokio::test]
    async fn deferred_requests_come_first_and_keep_a_closed_queue_going() {
        let (queue, mut receiver) = mpsc::channel(16);
        let campaign = Uuid::new_v4();
        queue.send(job(campaign, "new")).await.unwrap();
        drop(queue);
        let mut deferred = vec![job(campaign, "old")];
        let mut jobs = Vec::new();
        assert!(take_round(&mut receiver, &mut jobs, &mut deferred, settings(4), 0).await);
        let users: Vec<&str> = jobs.iter().map(|job| job.user.as_str()).collect();
        assert_eq!(users, ["old", "new"]);
        assert!(deferred.is_empty());
        jobs.clear();
        assert!(!take_round(&mut receiver, &mut jobs, &mut deferred, settings(4), 0).await);
    }

    /// Queues `initial` claims now and `later` more, one each time the test's task yields (no
    /// time passes between them, as when the clients of a round come back).
    async fn arrivals(initial: usize, later: usize) -> mpsc::Receiver<Job> {
        let (queue, receiver) = mpsc::channel(64);
        let campaign = Uuid::new_v4();
        for i in 0..initial {
            queue.send(job(campaign, &format!("q{i}"))).await.unwrap();
        }
        tokio::spawn(async move {
            for i in 0..later {
                tokio::task::yield_now().await;
                queue.send(job(campaign, &format!("l{i}"))).await.unwrap();
            }
            // The clients stay connected: the task, which owns the queue, never ends.
            std::future::pending::<()>().await;
        });
        receiver
    }

    /// How many claims `take_round` took and how long it waited for them.
    async fn taken(
        mut receiver: mpsc::Receiver<Job>,
        linger: Duration,
        expected: usize,
    ) -> (usize, Duration) {
        let lingering = CoalescingSettings {
            linger,
            ..settings(8)
        };
        let mut jobs = Vec::new();
        let started = tokio::time::Instant::now();
        assert!(
            take_round(
                &mut receiver,
                &mut jobs,
                &mut Vec::new(),
                lingering,
                expected
            )
            .await
        );
        (jobs.len(), started.elapsed())
    }

    const LINGER: Duration = Duration::from_millis(10);

    #[tokio::test(start_paused = true)]
    async fn a_lone_claim_after_a_lone_round_runs_at_once() {
        assert_eq!(
            taken(arrivals(1, 3).await, LINGER, 1).await,
            (1, Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn under_load_a_round_takes_claims_until_they_stop_arriving() {
        // Queued behind the first: the round waits for the rest, then one gap of silence.
        assert_eq!(
            taken(arrivals(2, 4).await, LINGER, 0).await,
            (6, LINGER_GAP)
        );
        // Alone, but the last round carried several: their clients are coming back.
        assert_eq!(
            taken(arrivals(1, 2).await, LINGER, 5).await,
            (3, LINGER_GAP)
        );
        // Queued behind the first after a lone round: expecting one says nothing about how many
        // are coming, so the round waits for the gap, not for one.
        assert_eq!(
            taken(arrivals(2, 4).await, LINGER, 1).await,
            (6, LINGER_GAP)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_round_starts_once_the_expected_claims_are_in() {
        assert_eq!(
            taken(arrivals(1, 6).await, LINGER, 4).await,
            (4, Duration::ZERO)
        );
        // Nothing expected yet (the first round under load): it waits for the gap as before.
        assert_eq!(
            taken(arrivals(2, 3).await, LINGER, 0).await,
            (5, LINGER_GAP)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_round_stops_at_the_maximum_or_the_linger() {
        assert_eq!(
            taken(arrivals(2, 20).await, LINGER, 0).await,
            (8, Duration::ZERO)
        );
        assert_eq!(
            taken(arrivals(2, 0).await, Duration::ZERO, 9).await,
            (2, Duration::ZERO)
        );
    }

    fn users(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|job| job.user.as_str()).collect()
    }

    #[test]
    fn a_campaign_in_one_writers_round_waits_for_it_in_the_others() {
        let carriers = Carriers::default();
        let (shared, own) = (Uuid::new_v4(), Uuid::new_v4());
        let (mine, held) = carriers.enter(0, vec![job(shared, "a")]);
        assert_eq!((users(&mine), users(&held)), (vec!["a"], vec![]));
        let (mine, held) = carriers.enter(1, vec![job(shared, "b"), job(own, "c")]);
        assert_eq!((users(&mine), users(&held)), (vec!["c"], vec!["b"]));
        carriers.leave(0, [shared].into_iter());
        carriers.leave(1, [own].into_iter());
        let (mine, held) = carriers.enter(1, held);
        assert_eq!((users(&mine), users(&held)), (vec!["b"], vec![]));
        let (mine, held) = carriers.enter(0, vec![job(shared, "d"), job(own, "e")]);
        assert_eq!((users(&mine), users(&held)), (vec!["e"], vec!["d"]));
    }

    #[test]
    fn a_campaign_held_back_is_kept_for_the_writer_that_waited() {
        let carriers = Carriers::default();
        let (campaign, other) = (Uuid::new_v4(), Uuid::new_v4());
        carriers.enter(0, vec![job(campaign, "a")]);
        let (_, held) = carriers.enter(1, vec![job(campaign, "b")]);
        assert_eq!(users(&held), ["b"]);
        carriers.leave(0, [campaign].into_iter());
        // Writer 0's next round comes first, but it is writer 1's turn.
        let (mine, held) = carriers.enter(0, vec![job(campaign, "c")]);
        assert_eq!((users(&mine), users(&held)), (vec![], vec!["c"]));
        let (mine, _) = carriers.enter(1, vec![job(campaign, "b")]);
        assert_eq!(users(&mine), ["b"]);
        carriers.leave(1, [campaign].into_iter());
        let (mine, _) = carriers.enter(0, vec![job(campaign, "c")]);
        assert_eq!(users(&mine), ["c"]);
        // Nobody waits: leaving frees it.
        carriers.leave(0, [campaign].into_iter());
        let (mine, _) = carriers.enter(1, vec![job(campaign, "d")]);
        assert_eq!(users(&mine), ["d"]);
        let (_, held) = carriers.enter(0, vec![job(campaign, "e")]);
        assert_eq!(users(&held), ["e"]);
        carriers.leave(1, [campaign].into_iter());
        // Kept for writer 0, whose next round has no claim of it any more: free again.
        carriers.enter(0, vec![job(other, "f")]);
        let (mine, _) = carriers.enter(1, vec![job(campaign, "g")]);
        assert_eq!(users(&mine), ["g"]);
    }

    #[test]
    fn a_campaign_with_enough_claims_in_a_round_sends_its_claims_to_that_writer() {
        let carriers = Carriers::default();
        let (hot, cold) = (Uuid::new_v4(), Uuid::new_v4());
        let round = |campaign_id, n: usize| -> Vec<Job> {
            (0..n).map(|i| job(campaign_id, &format!("u{i}"))).collect()
        };
        let mut jobs = round(hot, HOT_CAMPAIGN_CLAIMS);
        jobs.extend(round(cold, HOT_CAMPAIGN_CLAIMS - 1));
        carriers.enter(1, jobs);
        assert_eq!(carriers.hot_carrier_of(hot), Some(1));
        assert_eq!(carriers.hot_carrier_of(cold), None);
        carriers.leave(1, [hot, cold].into_iter());
        // Another writer's round of it does not take it over.
        carriers.enter(0, round(hot, HOT_CAMPAIGN_CLAIMS));
        carriers.leave(0, [hot].into_iter());
        assert_eq!(carriers.hot_carrier_of(hot), Some(1));
        // Its writer's next round with fewer claims of it ends it.
        carriers.enter(1, round(hot, HOT_CAMPAIGN_CLAIMS - 1));
        assert_eq!(carriers.hot_carrier_of(hot), None);
    }

    #[test]
    fn requests_of_a_campaign_with_an_open_lane_go_to_it() {
        let lanes = Lanes::new(1);
        let (with_lane, without) = (Uuid::new_v4(), Uuid::new_v4());
        let (sender, mut lane) = mpsc::channel(4);
        lanes.open.lock().unwrap().insert(with_lane, sender);
        let rest = lanes.route([job(with_lane, "a"), job(without, "b")].into_iter());
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].campaign_id, without);
        assert_eq!(lane.try_recv().unwrap().user.as_str(), "a");
        drop(lane);
        let rest = lanes.route([job(with_lane, "c")].into_iter());
        assert_eq!(rest.len(), 1, "a closed lane hands its campaign back");
        assert!(lanes.open.lock().unwrap().is_empty());
    }
}

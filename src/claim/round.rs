//! One claim round: the claims of one or more campaigns, decided in one issuing transaction
//! (retried on contention) after the replays and the campaign checks.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

use super::queries::{
    self, Assignment, CounterLocks, DayKey, IdRange, LockedDay, PickPart, Picked,
};
use super::{ClaimOutcome, ClaimRefusal, IssuedClaim};
use crate::domain::{Clock, UserId, local_day, seconds_until_next_local_midnight};
use crate::store::failure::{DbFailure, classify, connection_broke};

/// How often a round is retried after a deadlock, lock-wait timeout, busy SQLite file or a
/// concurrent claim of the same user on another instance.
const MAX_RETRIES: u32 = 8;
/// How long to wait before scanning again when codes exist but other transactions hold them.
const LOCKED_STOCK_BACKOFF: Duration = Duration::from_millis(2);
/// How many known counter rows a writer remembers before it starts over (a day's worth of
/// campaigns many times over; forgetting costs one read per campaign).
const KNOWN_COUNTERS_KEPT: usize = 100_000;
/// How long after meeting a user who already held a claim a writer's rounds read the users'
/// claims before their transaction (see [`WriterMemory::reads_claims_first`]).
const READ_CLAIMS_FIRST_FOR: Duration = Duration::from_secs(10);

/// The claims of one campaign in a round: distinct users, in request order.
#[derive(Debug, Clone)]
pub struct CampaignClaims {
    pub campaign_id: Uuid,
    pub users: Vec<UserId>,
}

/// What a writer remembers between rounds.
#[derive(Debug, Default)]
pub struct WriterMemory {
    /// Time zones never change after a campaign is created, so they are cached.
    time_zones: HashMap<Uuid, Tz>,
    /// Per campaign, the highest code id this writer has issued: see [`pick_below_cursor`].
    pick_cursors: HashMap<Uuid, i64>,
    /// The database's clock minus this machine's at the last round: used only to guess which
    /// day a campaign is on (the guess is checked under the locks; a wrong one costs a retry).
    clock_offset: chrono::Duration,
    /// Campaign-day counter rows known to exist (they are never deleted).
    known_counters: HashSet<DayKey>,
    /// When this writer last met a user who already held a claim (a replay).
    last_replay: Option<Instant>,
}

impl WriterMemory {
    /// The highest code id this writer has issued for the campaign (0: none yet).
    fn pick_cursor(&self, campaign_id: Uuid) -> i64 {
        self.pick_cursors.get(&campaign_id).copied().unwrap_or(0)
    }

    /// Whether a round reads its users' existing claims before the transaction. A lane always
    /// does (its campaign's rows may stay held for the whole claim timeout, and a user with a
    /// code should get it at once); a shared round does only within [`READ_CLAIMS_FIRST_FOR`]
    /// of the last replay. Otherwise a user who already holds a claim costs one rolled-back
    /// transaction instead: the issuing `UPDATE` breaks the one-code-per-user unique key, and
    /// the round runs again, reading first. New users — nearly every claim of a busy
    /// campaign — then pay no read at all.
    fn reads_claims_first(&self, counter_locks: CounterLocks) -> bool {
        counter_locks == CounterLocks::Wait
            || self
                .last_replay
                .is_some_and(|at| at.elapsed() < READ_CLAIMS_FIRST_FOR)
    }

    /// A memory that starts with `other`'s pick cursors (a lane taking over a campaign).
    pub fn seeded_from(other: &WriterMemory, campaign_id: Uuid) -> Self {
        let mut memory = Self {
            clock_offset: other.clock_offset,
            ..Self::default()
        };
        if let Some(cursor) = other.pick_cursors.get(&campaign_id) {
            memory.pick_cursors.insert(campaign_id, *cursor);
        }
        memory
    }
}

/// The claim path's view of the database and the time for one round.
pub struct RoundContext<'a> {
    pub db: &'a DatabaseConnection,
    /// A pinned instant (tests); otherwise the database's clock decides.
    pub clock: &'a dyn Clock,
    pub memory: &'a mut WriterMemory,
    /// Whether a campaign whose counter row another transaction holds is left out of this round
    /// (the writer's shared rounds) or waited for (a campaign's own lane).
    pub counter_locks: CounterLocks,
    /// How long the round may retry and wait in all: its requests are answered `unavailable`
    /// by then anyway.
    pub give_up_after: Duration,
    /// A transaction begun while the round's claims gathered (see [`begin_early`]), or why it
    /// could not be: the first attempt runs in it (or fails with that error, as if its own
    /// `BEGIN` had) instead of beginning one.
    pub begun: Option<Result<DatabaseTransaction, DbErr>>,
}

/// What a round decided.
#[derive(Debug, Default)]
pub struct RoundResult {
    pub answers: HashMap<(Uuid, UserId), Result<ClaimOutcome, ClaimRefusal>>,
    /// Campaigns some of whose users were left out (only with [`CounterLocks::Skip`]): another
    /// transaction held the counter row, or every available code. Those users have no answer.
    pub deferred: Vec<Uuid>,
}

impl RoundResult {
    fn answer_all(&mut self, campaign_id: Uuid, users: &[UserId], refusal: &ClaimRefusal) {
        for user in users {
            self.answers
                .insert((campaign_id, user.clone()), Err(refusal.clone()));
        }
    }

    fn is_answered(&self, campaign_id: Uuid, user: &UserId) -> bool {
        // Allocation-free lookups would need a borrowed key type; rounds are small.
        self.answers.contains_key(&(campaign_id, user.clone()))
    }
}

/// Runs the round until every user has a code or a definite refusal, or its campaign is
/// deferred.
pub async fn claim_round(ctx: &mut RoundContext<'_>, claims: &[CampaignClaims]) -> RoundResult {
    let mut result = RoundResult::default();
    let mut pending: Vec<CampaignClaims> = claims.to_vec();
    // Counter rows are locked in key order, so every round lists its campaigns in that order.
    pending.sort_by_key(|claims| claims.campaign_id);
    let mut retries = 0;
    let give_up_at = Instant::now() + ctx.give_up_after;
    let mut refusals_unchecked = false;
    while !pending.is_empty() {
        let read_first = ctx.memory.reads_claims_first(ctx.counter_locks);
        refusals_unchecked |= !read_first;
        match attempt(ctx, &pending, &mut result, read_first).await {
            Ok(unfinished) if unfinished.is_empty() => break,
            // A shared round waits for nothing: what it could not finish comes back in the
            // next round (and, if that lasts, in the campaign's lane, which waits here).
            Ok(unfinished) if ctx.counter_locks == CounterLocks::Skip => {
                result
                    .deferred
                    .extend(unfinished.into_iter().map(|(claims, _)| claims.campaign_id));
                break;
            }
            Ok(unfinished) if Instant::now() + LOCKED_STOCK_BACKOFF < give_up_at => {
                tokio::time::sleep(LOCKED_STOCK_BACKOFF).await;
                pending = unfinished.into_iter().map(|(claims, _)| claims).collect();
            }
            Ok(unfinished) => {
                for (claims, why) in unfinished {
                    tracing::warn!(campaign_id = %claims.campaign_id, ?why,
                        "the campaign could not be decided within the claim timeout");
                    result.answer_all(claims.campaign_id, &claims.users, &ClaimRefusal::Contended);
                }
                break;
            }
            Err(err)
                if retries < MAX_RETRIES && Instant::now() < give_up_at && is_retryable(&err) =>
            {
                retries += 1;
                if classify(&err) == DbFailure::DuplicateKey {
                    // A user of the round already holds a claim: the next attempt reads first.
                    ctx.memory.last_replay = Some(Instant::now());
                }
                tracing::debug!(error = %err, retries, "claim round retried");
                for claims in &mut pending {
                    let campaign_id = claims.campaign_id;
                    claims
                        .users
                        .retain(|user| !result.is_answered(campaign_id, user));
                }
                pending.retain(|claims| {
                    !claims.users.is_empty() && !result.deferred.contains(&claims.campaign_id)
                });
            }
            Err(err) => {
                // Worth a retry by the client, not a 500: contention that outlasted the retries
                // concerns these campaigns only; an unreachable, read-only or killed database
                // concerns every claim queued behind them.
                let refusal = match classify(&err) {
                    DbFailure::LockContention | DbFailure::Busy | DbFailure::DuplicateKey => {
                        tracing::warn!(error = %err, "claim failed: contended");
                        ClaimRefusal::Contended
                    }
                    DbFailure::Statement => {
                        tracing::error!(error = %err, "claim failed");
                        ClaimRefusal::Internal
                    }
                    _ => {
                        tracing::warn!(error = %err, "claim failed: database unavailable");
                        ClaimRefusal::Unavailable
                    }
                };
                for claims in pending.drain(..) {
                    for user in claims.users {
                        result
                            .answers
                            .entry((claims.campaign_id, user))
                            .or_insert_with(|| Err(refusal.clone()));
                    }
                }
            }
        }
    }
    if refusals_unchecked {
        replay_refused(ctx, &mut result).await;
    }
    result
}

/// Answers every user the round refused for the campaign's state (no such campaign, closed,
/// day full, sold out) who holds a claim of it with that claim: run when an attempt did not
/// read the users' claims first. If the read fails, whether those users hold a claim is not
/// known, and they are answered `unavailable` instead.
async fn replay_refused(ctx: &mut RoundContext<'_>, result: &mut RoundResult) {
    let refused = |answer: &Result<ClaimOutcome, ClaimRefusal>| {
        matches!(
            answer,
            Err(ClaimRefusal::CampaignNotFound
                | ClaimRefusal::CampaignInactive
                | ClaimRefusal::DailyLimitReached { .. }
                | ClaimRefusal::OutOfStock)
        )
    };
    let pairs: Vec<(Uuid, &str)> = result
        .answers
        .iter()
        .filter(|(_, answer)| refused(answer))
        .map(|((campaign_id, user), _)| (*campaign_id, user.as_str()))
        .collect();
    if pairs.is_empty() {
        return;
    }
    match queries::claims_of_users(ctx.db, &pairs).await {
        Ok(claimed) => answer_replays(claimed, result, ctx.memory),
        Err(err) => {
            tracing::warn!(error = %err, "refusals could not be checked against the users' claims");
            for answer in result.answers.values_mut().filter(|answer| refused(answer)) {
                *answer = Err(ClaimRefusal::Unavailable);
            }
        }
    }
}

/// Why some of a campaign's users left an attempt without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfinished {
    /// Every available code was locked by other transactions.
    StockLocked,
    /// The campaign-day could not be decided this time: the database's clock had moved to
    /// another day than expected, or (waiting) its rows were gone from under the lock.
    LookAgain,
}

/// A campaign on its way into the transaction, on the day it is expected to be on.
struct Planned<'c> {
    claims: &'c CampaignClaims,
    time_zone: Tz,
    day: NaiveDate,
    /// Users without a claim yet, in request order.
    wanting: Vec<UserId>,
}

impl Planned<'_> {
    fn key(&self) -> DayKey {
        (self.claims.campaign_id, self.day)
    }
}

/// What one campaign's share of the transaction decided.
struct Decided<'p, 'c> {
    planned: &'p Planned<'c>,
    /// The instant of the claims: the database's clock, read under the locks.
    now: DateTime<Utc>,
    /// How many of `wanting` fit under the limit.
    fit: usize,
    /// The day's issued total before this transaction (the counter, or the exact count).
    base: i64,
    counter: i64,
    picked: Vec<(i64, String)>,
}

/// One pass: the campaigns' days, then one issuing transaction; with `read_first`, its `BEGIN`
/// and locking statement run while another connection reads the users' existing claims (the
/// read needs no lock and the locks need nothing from it). Returns the claims it left
/// unfinished.
async fn attempt(
    ctx: &mut RoundContext<'_>,
    pending: &[CampaignClaims],
    result: &mut RoundResult,
    read_first: bool,
) -> Result<Vec<(CampaignClaims, Unfinished)>, DbErr> {
    let db = ctx.db;
    let days = campaign_days(ctx, pending).await?;
    // For each campaign that exists, its day's key and the pick of its codes above this
    // writer's cursor, as many as it has users (what fits is known only under the lock; codes
    // picked and not issued are unlocked at the end).
    let (keys, above_cursor): (Vec<DayKey>, Vec<PickPart>) = pending
        .iter()
        .filter_map(|claims| {
            let campaign_id = claims.campaign_id;
            let (_, day) = days.get(&campaign_id)?;
            let part = PickPart {
                campaign_id,
                ids: IdRange {
                    after: ctx.memory.pick_cursor(campaign_id),
                    up_to: i64::MAX,
                },
                n: claims.users.len(),
            };
            Some(((campaign_id, *day), part))
        })
        .unzip();
    let mode = ctx.counter_locks;
    let begun = ctx.begun.take();
    let read_claims = async {
        if !read_first {
            return Ok(Vec::new());
        }
        let pairs: Vec<(Uuid, &str)> = pending
            .iter()
            .flat_map(|claims| {
                claims
                    .users
                    .iter()
                    .map(move |user| (claims.campaign_id, user.as_str()))
            })
            .collect();
        queries::claims_of_users(db, &pairs).await
    };
    let (claimed, locking) = tokio::join!(read_claims, async {
        if keys.is_empty() {
            return Ok(None);
        }
        let txn = match begun {
            Some(begun) => begun?,
            None => begin(db).await?,
        };
        let (locked, picked) =
            queries::lock_days_and_pick(&txn, &keys, mode, &above_cursor).await?;
        Ok::<_, DbErr>(Some((txn, locked, picked)))
    });
    answer_replays(claimed?, result, ctx.memory);
    let planned = plan(pending, &days, result);
    let Some((txn, locked, picked)) = locking? else {
        return Ok(Vec::new());
    };
    let mut picked_above: HashMap<Uuid, Vec<(i64, String)>> = HashMap::new();
    for (part, code_id, code) in picked {
        let part = above_cursor
            .get(part)
            .ok_or_else(|| DbErr::Custom(format!("pick returned part {part}")))?;
        picked_above
            .entry(part.campaign_id)
            .or_default()
            .push((code_id, code));
    }
    if planned.is_empty() {
        txn.rollback().await?;
        return Ok(Vec::new());
    }
    let mut unfinished = Vec::new();
    let again = |planned: &Planned, why| {
        let claims = CampaignClaims {
            campaign_id: planned.claims.campaign_id,
            users: planned.wanting.clone(),
        };
        (claims, why)
    };

    let mut decided = Vec::with_capacity(planned.len());
    for planned in &planned {
        let campaign_id = planned.claims.campaign_id;
        let Some(day) = locked.get(&planned.key()) else {
            match ctx.counter_locks {
                CounterLocks::Skip => result.deferred.push(campaign_id),
                CounterLocks::Wait => {
                    ctx.memory.known_counters.remove(&planned.key());
                    unfinished.push(again(planned, Unfinished::LookAgain));
                }
            }
            continue;
        };
        ctx.memory.clock_offset = day.now - Utc::now();
        let now = ctx.clock.pinned().unwrap_or(day.now);
        if local_day(now, planned.time_zone) != planned.day {
            unfinished.push(again(planned, Unfinished::LookAgain));
            continue;
        }
        if !is_open(day, now) {
            result.answer_all(
                campaign_id,
                &planned.wanting,
                &ClaimRefusal::CampaignInactive,
            );
            continue;
        }
        let limit = day.daily_limit;
        let counter = day.issued;
        if limit.is_some_and(|limit| counter >= i64::from(limit)) {
            let refusal = ClaimRefusal::DailyLimitReached {
                retry_after_secs: seconds_until_next_local_midnight(now, planned.time_zone),
            };
            result.answer_all(campaign_id, &planned.wanting, &refusal);
            continue;
        }
        let wanted = planned.wanting.len();
        // Far from the limit the locked counter decides; near it, the exact count does.
        let base = if fits_whole(limit, counter, wanted) {
            counter
        } else {
            let counted = queries::count_issued_on(&txn, planned.key()).await?;
            if counted != counter {
                tracing::warn!(
                    %campaign_id, day = %planned.day, counter, counted,
                    "day counter differed from the issued codes; the count wins"
                );
            }
            counted
        };
        let fit = claims_that_fit(limit, base, wanted);
        let mut picked = picked_above.remove(&campaign_id).unwrap_or_default();
        picked.truncate(fit);
        decided.push(Decided {
            planned,
            now,
            fit,
            base,
            counter,
            picked,
        });
    }
    if decided.is_empty() {
        txn.rollback().await?;
        return Ok(unfinished);
    }

    pick_below_cursor(ctx, &txn, &mut decided).await?;
    let issued = issue(&txn, &decided).await?;
    // A counter whose campaign issued nothing is written only when the exact count corrected it
    // (the counters of campaigns that issued were written with their codes).
    let corrected: Vec<(DayKey, i64)> = decided
        .iter()
        .filter(|d| d.picked.is_empty() && d.base != d.counter)
        .map(|d| (d.planned.key(), d.base))
        .collect();
    if !corrected.is_empty() {
        queries::set_counters(&txn, &corrected).await?;
    }
    txn.commit().await?;

    for (d, claims) in decided.iter().zip(issued) {
        let campaign_id = d.planned.claims.campaign_id;
        if let Some(highest) = d.picked.iter().map(|(id, _)| *id).max() {
            let cursor = ctx.memory.pick_cursors.entry(campaign_id).or_default();
            *cursor = (*cursor).max(highest);
        }
        for (user, claim) in d.planned.wanting.iter().zip(claims) {
            result
                .answers
                .insert((campaign_id, user.clone()), Ok(ClaimOutcome::Issued(claim)));
        }
        let limit_reached = ClaimRefusal::DailyLimitReached {
            retry_after_secs: seconds_until_next_local_midnight(d.now, d.planned.time_zone),
        };
        result.answer_all(campaign_id, &d.planned.wanting[d.fit..], &limit_reached);
        let no_code = &d.planned.wanting[d.picked.len()..d.fit];
        if no_code.is_empty() {
            continue;
        }
        if queries::any_available(db, campaign_id).await? {
            let claims = CampaignClaims {
                campaign_id,
                users: no_code.to_vec(),
            };
            unfinished.push((claims, Unfinished::StockLocked));
        } else {
            result.answer_all(campaign_id, no_code, &ClaimRefusal::OutOfStock);
        }
    }
    Ok(unfinished)
}

/// What the reads before the transaction know of a campaign's counter for the day.
enum CounterSeen {
    Value,
    Missing,
    /// The day was not among those read.
    NotRead,
}

/// The day each campaign is expected to be on (by the database's clock; checked under the
/// locks), with its counter row known to exist. Reads only for a campaign whose time zone or
/// day counter this writer has not seen yet: the campaign with the database's clock, then the
/// day's counter row is created if it is missing (in a statement of its own, so the
/// transaction only locks rows that exist). A campaign that does not exist is absent.
async fn campaign_days(
    ctx: &mut RoundContext<'_>,
    pending: &[CampaignClaims],
) -> Result<HashMap<Uuid, (Tz, NaiveDate)>, DbErr> {
    let db = ctx.db;
    let pinned = ctx.clock.pinned();
    let estimate = pinned.unwrap_or_else(|| Utc::now() + ctx.memory.clock_offset);
    let memory = &*ctx.memory;
    let expected = |id: &Uuid| {
        let time_zone = *memory.time_zones.get(id)?;
        let day = local_day(estimate, time_zone);
        memory
            .known_counters
            .contains(&(*id, day))
            .then_some((time_zone, day))
    };
    let mut seen: HashMap<Uuid, (Tz, NaiveDate)> = HashMap::with_capacity(pending.len());
    let mut unseen = Vec::new();
    for claims in pending {
        match expected(&claims.campaign_id) {
            Some(expected) => {
                seen.insert(claims.campaign_id, expected);
            }
            None => unseen.push(claims.campaign_id),
        }
    }
    let guessed_days: Vec<NaiveDate> = unseen
        .iter()
        .map(|id| {
            local_day(
                estimate,
                memory.time_zones.get(id).copied().unwrap_or(Tz::UTC),
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if unseen.is_empty() {
        return Ok(seen);
    }
    let (database_now, states) = queries::sight_campaigns(db, &unseen, &guessed_days).await?;
    if let Some(database_now) = database_now {
        ctx.memory.clock_offset = database_now - Utc::now();
    }
    let now = pinned.or(database_now).unwrap_or(estimate);
    let mut counters: Vec<(DayKey, CounterSeen)> = Vec::with_capacity(states.len());
    for state in &states {
        let time_zone: Tz = state
            .time_zone
            .parse()
            .map_err(|_| DbErr::Custom(format!("stored time zone {:?}", state.time_zone)))?;
        ctx.memory.time_zones.insert(state.id, time_zone);
        let day = local_day(now, time_zone);
        seen.insert(state.id, (time_zone, day));
        let counter = if state.counter_days.contains(&day) {
            CounterSeen::Value
        } else if guessed_days.contains(&day) {
            CounterSeen::Missing
        } else {
            CounterSeen::NotRead
        };
        counters.push(((state.id, day), counter));
    }
    let not_read: Vec<DayKey> = counters
        .iter()
        .filter(|(_, seen)| matches!(seen, CounterSeen::NotRead))
        .map(|(key, _)| *key)
        .collect();
    if !not_read.is_empty() {
        let read = queries::counters(db, &not_read).await?;
        for (key, seen) in &mut counters {
            if matches!(seen, CounterSeen::NotRead) {
                *seen = if read.contains_key(key) {
                    CounterSeen::Value
                } else {
                    CounterSeen::Missing
                };
            }
        }
    }
    let missing: Vec<DayKey> = counters
        .iter()
        .filter(|(_, seen)| matches!(seen, CounterSeen::Missing))
        .map(|(key, _)| *key)
        .collect();
    if !missing.is_empty() {
        queries::ensure_counter_rows(db, &missing).await?;
    }
    if ctx.memory.known_counters.len() > KNOWN_COUNTERS_KEPT {
        ctx.memory.known_counters.clear();
    }
    ctx.memory
        .known_counters
        .extend(counters.into_iter().map(|(key, _)| key));

    Ok(seen)
}

/// Answers the users who already hold a claim with it (a replay), and remembers meeting them.
fn answer_replays(claimed: Vec<IssuedClaim>, result: &mut RoundResult, memory: &mut WriterMemory) {
    if !claimed.is_empty() {
        memory.last_replay = Some(Instant::now());
    }
    for claim in claimed {
        let Ok(user) = UserId::parse(&claim.user_id) else {
            tracing::error!(campaign_id = %claim.campaign_id, user_id = %claim.user_id,
                "stored user id does not parse");
            continue;
        };
        result
            .answers
            .insert((claim.campaign_id, user), Ok(ClaimOutcome::Replayed(claim)));
    }
}

/// The campaigns left to issue for, with their users not answered yet; the users of a campaign
/// that does not exist are answered `campaign_not_found`.
fn plan<'c>(
    pending: &'c [CampaignClaims],
    days: &HashMap<Uuid, (Tz, NaiveDate)>,
    result: &mut RoundResult,
) -> Vec<Planned<'c>> {
    let mut planned = Vec::with_capacity(pending.len());
    for claims in pending {
        let campaign_id = claims.campaign_id;
        let wanting: Vec<UserId> = claims
            .users
            .iter()
            .filter(|user| !result.is_answered(campaign_id, user))
            .cloned()
            .collect();
        let Some((time_zone, day)) = days.get(&campaign_id).copied() else {
            result.answer_all(campaign_id, &wanting, &ClaimRefusal::CampaignNotFound);
            continue;
        };
        if !wanting.is_empty() {
            planned.push(Planned {
                claims,
                time_zone,
                day,
                wanting,
            });
        }
    }
    planned
}

fn is_open(day: &LockedDay, now: DateTime<Utc>) -> bool {
    day.active
        && day.starts_at.is_none_or(|starts| starts <= now)
        && day.ends_at.is_none_or(|ends| now < ends)
}

/// Whether all `wanted` claims fit under `limit` on top of `issued` (no exact count needed).
fn fits_whole(limit: Option<i32>, issued: i64, wanted: usize) -> bool {
    limit.is_none_or(|limit| issued + wanted as i64 <= i64::from(limit))
}

/// How many of `wanted` claims fit under `limit` when `issued` codes went out today.
fn claims_that_fit(limit: Option<i32>, issued: i64, wanted: usize) -> usize {
    match limit {
        None => wanted,
        Some(limit) => {
            let room = (i64::from(limit) - issued).max(0);
            wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
    }
}

/// Picks, for the campaigns whose codes above this writer's cursor (picked with the locks) fell
/// short of what fits, the rest below the cursor, in one statement.
///
/// Issuing a code moves its pick-index entry out of the `status = 0` range, but the old entry
/// stays behind, delete-marked, until InnoDB's purge removes it. A scan from the head of the
/// range steps over every such entry (thousands under load: the pick took 2.4 ms instead of
/// 0.2 ms). Codes are picked in id order, so the codes below the cursor are almost all issued;
/// starting above it skips that graveyard. A code below the cursor can still be available (a
/// transaction elsewhere rolled back, or a batch committed late): this second scan finds it as
/// soon as the codes above run short, so nothing is stranded and `out_of_stock` still means
/// none is left.
async fn pick_below_cursor(
    ctx: &RoundContext<'_>,
    txn: &DatabaseTransaction,
    decided: &mut [Decided<'_, '_>],
) -> Result<(), DbErr> {
    let below: Vec<(usize, PickPart)> = decided
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            d.picked.len() < d.fit && ctx.memory.pick_cursor(d.planned.claims.campaign_id) > 0
        })
        .map(|(i, d)| {
            let ids = IdRange {
                after: 0,
                up_to: ctx.memory.pick_cursor(d.planned.claims.campaign_id),
            };
            (i, pick_part(d, ids, d.fit - d.picked.len()))
        })
        .collect();
    take_picked(txn, decided, &below).await
}

fn pick_part(decided: &Decided, ids: IdRange, n: usize) -> PickPart {
    PickPart {
        campaign_id: decided.planned.claims.campaign_id,
        ids,
        n,
    }
}

async fn take_picked(
    txn: &DatabaseTransaction,
    decided: &mut [Decided<'_, '_>],
    parts: &[(usize, PickPart)],
) -> Result<(), DbErr> {
    if parts.is_empty() {
        return Ok(());
    }
    let only_parts: Vec<PickPart> = parts.iter().map(|(_, part)| *part).collect();
    let picked: Vec<Picked> = queries::pick_available(txn, &only_parts).await?;
    for (part, code_id, code) in picked {
        let index = parts
            .get(part)
            .map(|(index, _)| *index)
            .ok_or_else(|| DbErr::Custom(format!("pick returned part {part}")))?;
        decided[index].picked.push((code_id, code));
    }
    Ok(())
}

/// Gives each campaign's picked codes to its first users and writes its day counter (the
/// base plus the codes issued), one statement per day and instant in the round (usually one);
/// returns the claims per campaign, in `decided` order.
async fn issue(
    txn: &DatabaseTransaction,
    decided: &[Decided<'_, '_>],
) -> Result<Vec<Vec<IssuedClaim>>, DbErr> {
    let claims: Vec<Vec<IssuedClaim>> = decided
        .iter()
        .map(|d| {
            d.planned
                .wanting
                .iter()
                .zip(&d.picked)
                .map(|(user, (_, code))| IssuedClaim {
                    claim_id: Uuid::now_v7(),
                    campaign_id: d.planned.claims.campaign_id,
                    user_id: user.as_str().to_owned(),
                    code: code.clone(),
                    issued_at: d.now,
                    day: d.planned.day,
                })
                .collect()
        })
        .collect();
    let shares: BTreeSet<(NaiveDate, DateTime<Utc>)> = decided
        .iter()
        .filter(|d| !d.picked.is_empty())
        .map(|d| (d.planned.day, d.now))
        .collect();
    for (day, now) in shares {
        let assignments: Vec<Assignment> = decided
            .iter()
            .zip(&claims)
            .filter(|(d, _)| (d.planned.day, d.now) == (day, now))
            .flat_map(|(d, claims)| {
                d.picked
                    .iter()
                    .zip(claims)
                    .map(|((code_id, _), claim)| Assignment {
                        code_id: *code_id,
                        user_id: &claim.user_id,
                        claim_id: claim.claim_id,
                    })
            })
            .collect();
        let counters: Vec<(Uuid, i64)> = decided
            .iter()
            .filter(|d| !d.picked.is_empty() && (d.planned.day, d.now) == (day, now))
            .map(|d| (d.planned.claims.campaign_id, d.base + d.picked.len() as i64))
            .collect();
        queries::issue_codes(txn, &assignments, now, day, &counters).await?;
    }
    Ok(claims)
}

/// Whether a writer may begin a round's transaction ahead of it, while the round's claims
/// gather ([`begin_early`]): on MySQL/MariaDB, where `BEGIN` takes no lock and no snapshot
/// (those come with the round's first statement); not on SQLite, whose `BEGIN IMMEDIATE` would
/// hold the only write lock while the claims gather.
pub fn begins_early(db: &DatabaseConnection) -> bool {
    db.get_database_backend() != DbBackend::Sqlite
}

/// A claim transaction begun ahead of its round (see [`begins_early`]): the `BEGIN` round trip
/// then overlaps the clients' return instead of adding to the round.
pub async fn begin_early(db: DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    begin(&db).await
}

/// A claim transaction. On MySQL/MariaDB it runs at READ COMMITTED, which every pooled
/// connection is set to when it opens (`startup::connect`): the non-locking reads (the exact
/// count) then see every commit made before this transaction took the counter lock, and the
/// scans take no gap locks. On SQLite it is `BEGIN IMMEDIATE`: the only writer.
async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            db.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
        }
        _ => db.begin().await,
    }
}

/// Errors after which the same round may simply run again: deadlock or lock-wait timeout, a
/// duplicate key (the same user claimed on another instance meanwhile; the retry finds that
/// claim and replays it), SQLite's busy file, and the round's connection breaking under it
/// (every pooled connection killed by a failover or an operator: the retry runs on another
/// one). A broken connection's `COMMIT` may have taken effect: the retry's issuing `UPDATE`
/// then breaks the one-code-per-user key, and the attempt after it reads the users' claims
/// and replays them, so no user gets a second code and the counter was read under its lock.
/// A read-only or unreachable database, or a killed statement, is not retried here: the round
/// is answered `unavailable` at once.
fn is_retryable(err: &DbErr) -> bool {
    connection_broke(err)
        || matches!(
            classify(err),
            DbFailure::LockContention | DbFailure::DuplicateKey | DbFailure::Busy
        )
}

#[cfg(test)]
mod tests {
    use super::{claims_that_fit, fits_whole};

    #[test]
    fn without_a_limit_every_claim_fits() {
        assert_eq!(claims_that_fit(None, 1_000_000, 64), 64);
        assert!(fits_whole(None, 1_000_000, 64));
    }

    #[test]
    fn only_the_room_left_under_the_limit_fits() {
        assert_eq!(claims_that_fit(Some(1000), 990, 64), 10);
        assert_eq!(claims_that_fit(Some(1000), 936, 64), 64);
        assert_eq!(claims_that_fit(Some(1000), 1000, 64), 0);
    }

    #[test]
    fn the_counter_alone_decides_only_when_every_claim_fits() {
        assert!(fits_whole(Some(1000), 936, 64));
        assert!(!fits_whole(Some(1000), 937, 64));
        assert!(!fits_whole(Some(0), 0, 1));
    }

    #[test]
    fn a_counter_past_a_lowered_limit_fits_nothing() {
        assert_eq!(claims_that_fit(Some(10), 25, 3), 0);
        assert_eq!(claims_that_fit(Some(0), 0, 3), 0);
    }
}

//! One claim round: the claims of one or more campaigns, decided in one issuing transaction
//! (retried on contention) after the replays and the campaign checks.
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

use super::queries::{
    self, Assignment, CampaignState, CounterLocks, DayKey, IdRange, PickPart, Picked,
};
use super::{ClaimOutcome, ClaimRefusal, IssuedClaim};
use crate::domain::{Clock, UserId, local_day, seconds_until_next_local_midnight};
use crate::store::failure::{DbFailure, classify};

/// How often a round is retried after a deadlock, lock-wait timeout, busy SQLite file or a
/// concurrent claim of the same user on another instance.
const MAX_RETRIES: u32 = 8;
/// How long to wait before scanning again when codes exist but other transactions hold them.
const LOCKED_STOCK_BACKOFF: Duration = Duration::from_millis(2);

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
    /// Per campaign, the highest code id this writer has issued: see [`pick_parts`].
    pick_cursors: HashMap<Uuid, i64>,
    /// The database's clock minus this machine's at the last round: used only to guess which
    /// day's counters to read with the campaign (a wrong guess costs one more read).
    clock_offset: chrono::Duration,
}

impl WriterMemory {
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
    while !pending.is_empty() {
        match attempt(ctx, &pending, &mut result).await {
            Ok(stock_locked) if stock_locked.is_empty() => break,
            // A shared round does not wait for stock others hold: those users come back in the
            // next round (and, if it lasts, in their campaign's lane, which waits here).
            Ok(stock_locked) if ctx.counter_locks == CounterLocks::Skip => {
                result
                    .deferred
                    .extend(stock_locked.iter().map(|claims| claims.campaign_id));
                break;
            }
            Ok(stock_locked) if Instant::now() + LOCKED_STOCK_BACKOFF < give_up_at => {
                pending = stock_locked;
                tokio::time::sleep(LOCKED_STOCK_BACKOFF).await;
            }
            Ok(stock_locked) => {
                for claims in stock_locked {
                    tracing::warn!(campaign_id = %claims.campaign_id,
                        "available codes stayed locked by other transactions");
                    result.answer_all(claims.campaign_id, &claims.users, &ClaimRefusal::Contended);
                }
                break;
            }
            Err(err)
                if retries < MAX_RETRIES && Instant::now() < give_up_at && is_retryable(&err) =>
            {
                retries += 1;
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
    result
}

/// A campaign that passed the checks, on its way into the transaction.
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
    /// How many of `wanting` fit under the limit.
    fit: usize,
    /// The day's issued total before this transaction (the counter, or the exact count).
    base: i64,
    counter: i64,
    picked: Vec<(i64, String)>,
}

/// One pass: the reads, then one issuing transaction. Returns the claims that found every
/// available code locked by other transactions (to be scanned again).
async fn attempt(
    ctx: &mut RoundContext<'_>,
    pending: &[CampaignClaims],
    result: &mut RoundResult,
) -> Result<Vec<CampaignClaims>, DbErr> {
    let db = ctx.db;
    let (now, planned) = read_and_check(ctx, pending, result).await?;
    if planned.is_empty() {
        return Ok(Vec::new());
    }

    let txn = begin(db).await?;
    let keys: Vec<DayKey> = planned.iter().map(Planned::key).collect();
    let counters = queries::lock_counters(&txn, &keys, ctx.counter_locks).await?;
    let (held, deferred): (Vec<&Planned>, Vec<&Planned>) = planned
        .iter()
        .partition(|planned| counters.contains_key(&planned.key()));
    result
        .deferred
        .extend(deferred.iter().map(|planned| planned.claims.campaign_id));
    if held.is_empty() {
        txn.rollback().await?;
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = held.iter().map(|p| p.claims.campaign_id).collect();
    let limits = queries::locked_daily_limits(&txn, &ids).await?;

    let mut decided = Vec::with_capacity(held.len());
    for planned in held {
        let Some(limit) = limits.get(&planned.claims.campaign_id).copied() else {
            result.answer_all(
                planned.claims.campaign_id,
                &planned.wanting,
                &ClaimRefusal::CampaignNotFound,
            );
            continue;
        };
        let counter = counters[&planned.key()];
        let wanted = planned.wanting.len();
        // Far from the limit the locked counter decides; near it, the exact count does.
        let base = if fits_whole(limit, counter, wanted) {
            counter
        } else {
            let counted = queries::count_issued_on(&txn, planned.key()).await?;
            if counted != counter {
                tracing::warn!(
                    campaign_id = %planned.claims.campaign_id, day = %planned.day, counter, counted,
                    "day counter differed from the issued codes; the count wins"
                );
            }
            counted
        };
        decided.push(Decided {
            planned,
            fit: claims_that_fit(limit, base, wanted),
            base,
            counter,
            picked: Vec::new(),
        });
    }

    pick(ctx, &txn, &mut decided).await?;
    let issued = issue(&txn, &decided, now).await?;
    let counter_writes: Vec<(DayKey, i64)> = decided
        .iter()
        .filter(|d| !d.picked.is_empty() || d.base != d.counter)
        .map(|d| (d.planned.key(), d.base + d.picked.len() as i64))
        .collect();
    if !counter_writes.is_empty() {
        queries::set_counters(&txn, &counter_writes).await?;
    }
    txn.commit().await?;

    let mut stock_locked = Vec::new();
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
            retry_after_secs: seconds_until_next_local_midnight(now, d.planned.time_zone),
        };
        result.answer_all(campaign_id, &d.planned.wanting[d.fit..], &limit_reached);
        let no_code = &d.planned.wanting[d.picked.len()..d.fit];
        if no_code.is_empty() {
            continue;
        }
        if queries::any_available(db, campaign_id).await? {
            stock_locked.push(CampaignClaims {
                campaign_id,
                users: no_code.to_vec(),
            });
        } else {
            result.answer_all(campaign_id, no_code, &ClaimRefusal::OutOfStock);
        }
    }
    Ok(stock_locked)
}

/// What the reads before the transaction know of a campaign's counter for the day.
enum CounterSeen {
    Value(i64),
    Missing,
    /// The day was not among those read (a first sight of the campaign, or midnight passed).
    NotRead,
}

/// The reads before the transaction, on two connections at the cost of one round trip: the
/// campaigns with their counters and the database's clock, and the users' existing claims.
/// Answers replays and what committed data refuses (unknown or closed campaign, full day);
/// returns the instant of the round and the campaigns left to issue for, whose counter rows
/// then exist.
async fn read_and_check<'c>(
    ctx: &mut RoundContext<'_>,
    pending: &'c [CampaignClaims],
    result: &mut RoundResult,
) -> Result<(DateTime<Utc>, Vec<Planned<'c>>), DbErr> {
    let db = ctx.db;
    let pinned = ctx.clock.pinned();
    let estimate = pinned.unwrap_or_else(|| Utc::now() + ctx.memory.clock_offset);
    let cached_zone = |id: &Uuid| ctx.memory.time_zones.get(id).copied().unwrap_or(Tz::UTC);
    let ids: Vec<Uuid> = pending.iter().map(|claims| claims.campaign_id).collect();
    let days: Vec<NaiveDate> = ids
        .iter()
        .map(|id| local_day(estimate, cached_zone(id)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let pairs: Vec<(Uuid, &str)> = pending
        .iter()
        .flat_map(|claims| {
            claims
                .users
                .iter()
                .map(move |user| (claims.campaign_id, user.as_str()))
        })
        .collect();
    let (states, claimed) = tokio::join!(
        queries::campaign_states(db, &ids, &days),
        queries::claims_of_users(db, &pairs)
    );
    let (database_now, states) = states?;
    let Some(database_now) = database_now else {
        for claims in pending {
            result.answer_all(
                claims.campaign_id,
                &claims.users,
                &ClaimRefusal::CampaignNotFound,
            );
        }
        return Ok((estimate, Vec::new()));
    };
    ctx.memory.clock_offset = database_now - Utc::now();
    let now = pinned.unwrap_or(database_now);
    for claim in claimed? {
        let Ok(user) = UserId::parse(&claim.user_id) else {
            tracing::error!(campaign_id = %claim.campaign_id, user_id = %claim.user_id,
                "stored user id does not parse");
            continue;
        };
        result
            .answers
            .insert((claim.campaign_id, user), Ok(ClaimOutcome::Replayed(claim)));
    }

    let states: HashMap<Uuid, CampaignState> =
        states.into_iter().map(|state| (state.id, state)).collect();
    let mut planned = Vec::with_capacity(pending.len());
    let mut seen = Vec::with_capacity(pending.len());
    for claims in pending {
        let campaign_id = claims.campaign_id;
        let wanting: Vec<UserId> = claims
            .users
            .iter()
            .filter(|user| !result.is_answered(campaign_id, user))
            .cloned()
            .collect();
        let Some(state) = states.get(&campaign_id) else {
            result.answer_all(campaign_id, &wanting, &ClaimRefusal::CampaignNotFound);
            continue;
        };
        let time_zone: Tz = state
            .time_zone
            .parse()
            .map_err(|_| DbErr::Custom(format!("stored time zone {:?}", state.time_zone)))?;
        ctx.memory.time_zones.insert(campaign_id, time_zone);
        if wanting.is_empty() {
            continue;
        }
        if !is_open(state, now) {
            result.answer_all(campaign_id, &wanting, &ClaimRefusal::CampaignInactive);
            continue;
        }
        let day = local_day(now, time_zone);
        let counter = match state.counters.iter().find(|(d, _)| *d == day) {
            Some((_, issued)) => CounterSeen::Value(*issued),
            None if days.contains(&day) => CounterSeen::Missing,
            None => CounterSeen::NotRead,
        };
        seen.push(counter);
        planned.push(Planned {
            claims,
            time_zone,
            day,
            wanting,
        });
    }

    let not_read: Vec<DayKey> = planned
        .iter()
        .zip(&seen)
        .filter(|(_, counter)| matches!(counter, CounterSeen::NotRead))
        .map(|(planned, _)| planned.key())
        .collect();
    if !not_read.is_empty() {
        let read = queries::counters(db, &not_read).await?;
        for (planned, counter) in planned.iter().zip(seen.iter_mut()) {
            if matches!(counter, CounterSeen::NotRead) {
                *counter = read
                    .get(&planned.key())
                    .map_or(CounterSeen::Missing, |issued| CounterSeen::Value(*issued));
            }
        }
    }
    let missing: Vec<DayKey> = planned
        .iter()
        .zip(&seen)
        .filter(|(_, counter)| matches!(counter, CounterSeen::Missing))
        .map(|(planned, _)| planned.key())
        .collect();
    if !missing.is_empty() {
        queries::ensure_counter_rows(db, &missing).await?;
    }

    // A full day is refused from the committed counter alone, without a transaction.
    let mut open = Vec::with_capacity(planned.len());
    for (planned, counter) in planned.into_iter().zip(seen) {
        let limit = states[&planned.claims.campaign_id].daily_limit;
        let full = matches!(counter, CounterSeen::Value(issued)
            if limit.is_some_and(|limit| issued >= i64::from(limit)));
        if full {
            let refusal = ClaimRefusal::DailyLimitReached {
                retry_after_secs: seconds_until_next_local_midnight(now, planned.time_zone),
            };
            result.answer_all(planned.claims.campaign_id, &planned.wanting, &refusal);
        } else {
            open.push(planned);
        }
    }
    Ok((now, open))
}

fn is_open(state: &CampaignState, now: DateTime<Utc>) -> bool {
    state.active
        && state.starts_at.is_none_or(|starts| starts <= now)
        && state.ends_at.is_none_or(|ends| now < ends)
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

/// Picks the codes that fit, for every campaign in one statement: first above this writer's
/// cursor, then (only for campaigns that fall short) below it.
///
/// Issuing a code moves its pick-index entry out of the `status = 0` range, but the old entry
/// stays behind, delete-marked, until InnoDB's purge removes it. A scan from the head of the
/// range steps over every such entry (thousands under load: the pick took 2.4 ms instead of
/// 0.2 ms). Codes are picked in id order, so the codes below the cursor are almost all issued;
/// starting above it skips that graveyard. A code below the cursor can still be available (a
/// transaction elsewhere rolled back, or a batch committed late): the second scan finds it as
/// soon as the codes above run short, so nothing is stranded and `out_of_stock` still means
/// none is left.
async fn pick(
    ctx: &RoundContext<'_>,
    txn: &DatabaseTransaction,
    decided: &mut [Decided<'_, '_>],
) -> Result<(), DbErr> {
    let cursor = |d: &Decided| {
        ctx.memory
            .pick_cursors
            .get(&d.planned.claims.campaign_id)
            .copied()
            .unwrap_or(0)
    };
    let above: Vec<(usize, PickPart)> = decided
        .iter()
        .enumerate()
        .filter(|(_, d)| d.fit > 0)
        .map(|(i, d)| {
            let ids = IdRange {
                after: cursor(d),
                up_to: i64::MAX,
            };
            (i, pick_part(d, ids, d.fit))
        })
        .collect();
    take_picked(txn, decided, &above).await?;
    let below: Vec<(usize, PickPart)> = decided
        .iter()
        .enumerate()
        .filter(|(_, d)| d.picked.len() < d.fit && cursor(d) > 0)
        .map(|(i, d)| {
            let ids = IdRange {
                after: 0,
                up_to: cursor(d),
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

/// Gives each campaign's picked codes to its first users, one statement per day in the round
/// (usually one); returns the claims per campaign, in `decided` order.
async fn issue(
    txn: &DatabaseTransaction,
    decided: &[Decided<'_, '_>],
    now: DateTime<Utc>,
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
                    issued_at: now,
                    day: d.planned.day,
                })
                .collect()
        })
        .collect();
    let days: BTreeSet<NaiveDate> = decided
        .iter()
        .filter(|d| !d.picked.is_empty())
        .map(|d| d.planned.day)
        .collect();
    for day in days {
        let assignments: Vec<Assignment> = decided
            .iter()
            .zip(&claims)
            .filter(|(d, _)| d.planned.day == day)
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
        queries::issue_codes(txn, &assignments, now, day).await?;
    }
    Ok(claims)
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
/// claim and replays it), and SQLite's busy file. A read-only, killed or unreachable database
/// is not retried here: the round is answered `unavailable` at once.
fn is_retryable(err: &DbErr) -> bool {
    matches!(
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

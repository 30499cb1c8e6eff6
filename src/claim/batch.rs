//! One campaign's share of a coalesced batch: replays, the campaign checks, then claim rounds
//! until every user has a code or a definite refusal.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

use super::queries::{self, Assignment, CampaignState, IdRange};
use super::{ClaimRefusal, IssuedClaim};
use crate::domain::{Clock, UserId, local_day, seconds_until_next_local_midnight};
use crate::store::codes::issued_to_users;
use crate::store::failure::{DbFailure, classify};

/// What one user of a batch gets.
type UserResult = Result<(IssuedClaim, bool), ClaimRefusal>;

/// How often a round is retried after a deadlock, lock-wait timeout, busy SQLite file or a
/// concurrent claim of the same user on another instance.
const MAX_RETRIES: u32 = 8;
/// How long to wait before scanning again when codes exist but other transactions hold them.
const LOCKED_STOCK_BACKOFF: Duration = Duration::from_millis(2);

/// The claim path's view of the database and the time.
pub struct ClaimContext<'a> {
    pub db: &'a DatabaseConnection,
    pub clock: &'a dyn Clock,
    /// Time zones never change after a campaign is created, so they are cached per writer.
    pub time_zones: &'a mut HashMap<Uuid, Tz>,
    /// Per campaign, the highest code id this writer has issued: see [`Issue::pick`].
    pub pick_cursors: &'a mut HashMap<Uuid, i64>,
    /// How long a campaign's share of a batch may retry and wait in all: its requests are
    /// answered `unavailable` by then anyway, and the writer must move on to the others.
    pub give_up_after: Duration,
}

/// Claims one code for each of `users` (distinct) in `campaign_id`. The boolean in each
/// result is true for a code issued now, false for a replay of an earlier claim.
pub async fn claim_for_users(
    ctx: &mut ClaimContext<'_>,
    campaign_id: Uuid,
    users: &[UserId],
) -> HashMap<UserId, UserResult> {
    let mut results = HashMap::with_capacity(users.len());
    let mut pending: Vec<UserId> = users.to_vec();
    let mut retries = 0;
    let give_up_at = Instant::now() + ctx.give_up_after;
    while !pending.is_empty() {
        match claim_round(ctx, campaign_id, &pending, &mut results).await {
            Ok(Round::Done) => break,
            Ok(Round::StockLocked(rest)) if Instant::now() + LOCKED_STOCK_BACKOFF < give_up_at => {
                pending = rest;
                tokio::time::sleep(LOCKED_STOCK_BACKOFF).await;
            }
            Ok(Round::StockLocked(rest)) => {
                tracing::warn!(%campaign_id, "available codes stayed locked by other transactions");
                for user in rest {
                    results.insert(user, Err(ClaimRefusal::Contended));
                }
                break;
            }
            Err(err)
                if retries < MAX_RETRIES && Instant::now() < give_up_at && is_retryable(&err) =>
            {
                retries += 1;
                tracing::debug!(error = %err, retries, "claim round retried");
                pending.retain(|user| !results.contains_key(user));
            }
            Err(err) => {
                // Worth a retry by the client, not a 500: contention that outlasted the retries
                // concerns this campaign only; an unreachable, read-only or killed database
                // concerns every claim queued behind this one.
                let refusal = match classify(&err) {
                    DbFailure::LockContention | DbFailure::Busy | DbFailure::DuplicateKey => {
                        tracing::warn!(%campaign_id, error = %err, "claim failed: contended");
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
                for user in pending.drain(..) {
                    results.entry(user).or_insert(Err(refusal.clone()));
                }
            }
        }
    }
    results
}

enum Round {
    /// Every pending user has a result.
    Done,
    /// These users got nothing because every available code was locked by other transactions.
    StockLocked(Vec<UserId>),
}

async fn claim_round(
    ctx: &mut ClaimContext<'_>,
    campaign_id: Uuid,
    pending: &[UserId],
    results: &mut HashMap<UserId, UserResult>,
) -> Result<Round, DbErr> {
    let db = ctx.db;
    let now = ctx.clock.now();
    let names: Vec<&str> = pending.iter().map(UserId::as_str).collect();
    // Two independent reads on two pooled connections, at the cost of one round trip.
    let (campaign, replays) = tokio::join!(
        load_campaign(ctx, campaign_id, now),
        issued_to_users(db, campaign_id, &names)
    );
    let Some((tz, state)) = campaign? else {
        for user in pending {
            results.insert(user.clone(), Err(ClaimRefusal::CampaignNotFound));
        }
        return Ok(Round::Done);
    };
    for issued in replays? {
        let Ok(user) = UserId::parse(&issued.user_id) else {
            tracing::error!(%campaign_id, user_id = %issued.user_id, "stored user id does not parse");
            continue;
        };
        results.insert(user, Ok((issued, false)));
    }
    let wanting: Vec<&UserId> = pending
        .iter()
        .filter(|user| !results.contains_key(*user))
        .collect();
    if wanting.is_empty() {
        return Ok(Round::Done);
    }

    if !is_open(&state, now) {
        refuse_all_of(results, &wanting, ClaimRefusal::CampaignInactive);
        return Ok(Round::Done);
    }
    let limit_reached = ClaimRefusal::DailyLimitReached {
        retry_after_secs: seconds_until_next_local_midnight(now, tz),
    };
    if state
        .daily_limit
        .is_some_and(|limit| state.issued_today >= i64::from(limit))
    {
        refuse_all_of(results, &wanting, limit_reached);
        return Ok(Round::Done);
    }

    let day = local_day(now, tz);
    let issue = Issue {
        campaign_id,
        now,
        day,
        cursor: ctx.pick_cursors.get(&campaign_id).copied().unwrap_or(0),
    };
    let outcome = match issue.fast(db, &wanting).await? {
        Some(outcome) => outcome,
        None => issue.exact(db, &wanting).await?,
    };
    if let Some(highest) = outcome.highest_code_id {
        ctx.pick_cursors
            .insert(campaign_id, highest.max(issue.cursor));
    }
    for (user, claim) in outcome.issued {
        results.insert(user.clone(), Ok((claim, true)));
    }
    for user in outcome.over_limit {
        results.insert(user.clone(), Err(limit_reached.clone()));
    }
    if outcome.no_code.is_empty() {
        return Ok(Round::Done);
    }
    if queries::any_available(db, campaign_id).await? {
        return Ok(Round::StockLocked(
            outcome.no_code.into_iter().cloned().collect(),
        ));
    }
    refuse_all_of(results, &outcome.no_code, ClaimRefusal::OutOfStock);
    Ok(Round::Done)
}

fn refuse_all_of(
    results: &mut HashMap<UserId, UserResult>,
    users: &[&UserId],
    refusal: ClaimRefusal,
) {
    for user in users {
        results.insert((*user).clone(), Err(refusal.clone()));
    }
}

async fn load_campaign(
    ctx: &mut ClaimContext<'_>,
    campaign_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(Tz, CampaignState)>, DbErr> {
    // Unknown time zone: read once with any day, then again for the right day's counter.
    let cached = ctx.time_zones.get(&campaign_id).copied();
    let guess = cached.unwrap_or(Tz::UTC);
    let Some(state) = queries::campaign_state(ctx.db, campaign_id, local_day(now, guess)).await?
    else {
        return Ok(None);
    };
    let tz: Tz = state
        .time_zone
        .parse()
        .map_err(|_| DbErr::Custom(format!("stored time zone {:?}", state.time_zone)))?;
    ctx.time_zones.insert(campaign_id, tz);
    if cached.is_some() || local_day(now, tz) == local_day(now, guess) {
        return Ok(Some((tz, state)));
    }
    Ok(
        queries::campaign_state(ctx.db, campaign_id, local_day(now, tz))
            .await?
            .map(|state| (tz, state)),
    )
}

fn is_open(state: &CampaignState, now: DateTime<Utc>) -> bool {
    state.active
        && state.starts_at.is_none_or(|starts| starts <= now)
        && state.ends_at.is_none_or(|ends| now < ends)
}

fn highest_id(picked: &[(i64, String)]) -> Option<i64> {
    picked.iter().map(|(id, _)| *id).max()
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

/// One issuing transaction's parameters.
struct Issue {
    campaign_id: Uuid,
    now: DateTime<Utc>,
    day: chrono::NaiveDate,
    cursor: i64,
}

/// Who got what in one issuing transaction (users in request order).
struct Outcome<'u> {
    /// The highest code id issued (committed), if any.
    highest_code_id: Option<i64>,
    issued: Vec<(&'u UserId, IssuedClaim)>,
    /// Refused because the day's limit is reached.
    over_limit: Vec<&'u UserId>,
    /// Within the limit but no code could be picked.
    no_code: Vec<&'u UserId>,
}

impl Issue {
    /// Fast path: pick, issue, then bump the counter only if the result stays within the
    /// limit. `None` (after rolling back) when the counter refuses: the exact path decides.
    async fn fast<'u>(
        &self,
        db: &DatabaseConnection,
        users: &[&'u UserId],
    ) -> Result<Option<Outcome<'u>>, DbErr> {
        let txn = begin(db).await?;
        let picked = self.pick(&txn, users.len()).await?;
        let issued = self.issue(&txn, users, &picked).await?;
        let bumped = picked.is_empty()
            || queries::bump_counter_within_limit(
                &txn,
                self.campaign_id,
                self.day,
                issued.len() as i64,
            )
            .await?;
        if !bumped {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        let no_code = users[issued.len()..].to_vec();
        Ok(Some(Outcome {
            highest_code_id: highest_id(&picked),
            issued,
            over_limit: Vec::new(),
            no_code,
        }))
    }

    /// Exact path: read the limit under the campaign row's shared lock, lock the day's
    /// counter, count the day's issued codes, issue only what fits, and write the exact count
    /// back.
    async fn exact<'u>(
        &self,
        db: &DatabaseConnection,
        users: &[&'u UserId],
    ) -> Result<Outcome<'u>, DbErr> {
        queries::ensure_counter_row(db, self.campaign_id, self.day).await?;
        let txn = begin(db).await?;
        let limit = queries::locked_daily_limit(&txn, self.campaign_id).await?;
        let counter = queries::lock_counter(&txn, self.campaign_id, self.day).await?;
        let counted = queries::count_issued_on(&txn, self.campaign_id, self.day).await?;
        if counter != counted {
            tracing::warn!(
                campaign_id = %self.campaign_id, day = %self.day, counter, counted,
                "day counter differed from the issued codes; the count wins"
            );
        }
        let fit = claims_that_fit(limit, counted, users.len());
        let picked = if fit == 0 {
            Vec::new()
        } else {
            self.pick(&txn, fit).await?
        };
        let issued = self.issue(&txn, &users[..fit], &picked).await?;
        queries::set_counter(
            &txn,
            self.campaign_id,
            self.day,
            counted + issued.len() as i64,
        )
        .await?;
        txn.commit().await?;
        let no_code = users[issued.len()..fit].to_vec();
        Ok(Outcome {
            highest_code_id: highest_id(&picked),
            issued,
            over_limit: users[fit..].to_vec(),
            no_code,
        })
    }

    /// Picks up to `n` codes, first above this writer's cursor, then (only if that falls short)
    /// below it.
    ///
    /// Issuing a code moves its pick-index entry out of the `status = 0` range, but the old
    /// entry stays behind, delete-marked, until InnoDB's purge removes it. A scan from the head
    /// of the range steps over every such entry (thousands under load: the pick took 2.4 ms
    /// instead of 0.2 ms). Codes are picked in id order, so the codes below the cursor are
    /// almost all issued; starting above it skips that graveyard. A code below the cursor can
    /// still be available (a transaction elsewhere rolled back, or a batch committed late):
    /// the second scan finds it as soon as the codes above run short, so nothing is stranded
    /// and `out_of_stock` still means none is left.
    async fn pick(&self, txn: &DatabaseTransaction, n: usize) -> Result<Vec<(i64, String)>, DbErr> {
        let above = IdRange {
            after: self.cursor,
            up_to: i64::MAX,
        };
        let mut picked = queries::pick_available(txn, self.campaign_id, above, n).await?;
        if picked.len() < n && self.cursor > 0 {
            let below = IdRange {
                after: 0,
                up_to: self.cursor,
            };
            let more = n - picked.len();
            picked.extend(queries::pick_available(txn, self.campaign_id, below, more).await?);
        }
        Ok(picked)
    }

    /// Gives `picked[i]` to `users[i]` for as many as were picked.
    async fn issue<'u>(
        &self,
        txn: &DatabaseTransaction,
        users: &[&'u UserId],
        picked: &[(i64, String)],
    ) -> Result<Vec<(&'u UserId, IssuedClaim)>, DbErr> {
        if picked.is_empty() {
            return Ok(Vec::new());
        }
        let assignments: Vec<Assignment> = users
            .iter()
            .zip(picked)
            .map(|(user, (code_id, _))| Assignment {
                code_id: *code_id,
                user_id: user.as_str(),
                claim_id: Uuid::now_v7(),
            })
            .collect();
        queries::issue_codes(txn, &assignments, self.now, self.day).await?;
        Ok(users
            .iter()
            .zip(picked)
            .zip(&assignments)
            .map(|((user, (_, code)), assignment)| {
                (
                    *user,
                    IssuedClaim {
                        claim_id: assignment.claim_id,
                        campaign_id: self.campaign_id,
                        user_id: user.as_str().to_owned(),
                        code: code.clone(),
                        issued_at: self.now,
                        day: self.day,
                    },
                )
            })
            .collect())
    }
}

/// A claim transaction. On MySQL/MariaDB it runs at READ COMMITTED, which every pooled
/// connection is set to when it opens (`startup::connect`): the non-locking reads (the exact
/// path's `COUNT`) then see every commit made before this transaction took the counter lock,
/// and the scans take no gap locks. On SQLite it is `BEGIN IMMEDIATE`: the only writer.
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
/// is not retried here: the batch is answered `unavailable` at once.
fn is_retryable(err: &DbErr) -> bool {
    matches!(
        classify(err),
        DbFailure::LockContention | DbFailure::DuplicateKey | DbFailure::Busy
    )
}

#[cfg(test)]
mod tests {
    use super::claims_that_fit;

    #[test]
    fn without_a_limit_every_claim_fits() {
        assert_eq!(claims_that_fit(None, 1_000_000, 64), 64);
    }

    #[test]
    fn only_the_room_left_under_the_limit_fits() {
        assert_eq!(claims_that_fit(Some(1000), 990, 64), 10);
        assert_eq!(claims_that_fit(Some(1000), 936, 64), 64);
        assert_eq!(claims_that_fit(Some(1000), 1000, 64), 0);
    }

    #[test]
    fn a_counter_past_a_lowered_limit_fits_nothing() {
        assert_eq!(claims_that_fit(Some(10), 25, 3), 0);
        assert_eq!(claims_that_fit(Some(0), 0, 3), 0);
    }
}

//! The claim path's SQL, one function per statement, over `&impl ConnectionTrait`.
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Value};
use uuid::Uuid;

use crate::store::{CodeStatus, padded, placeholders, statement};

/// What the claim path needs to know about a campaign, with today's counter.
#[derive(Debug, Clone)]
pub struct CampaignState {
    pub active: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub daily_limit: Option<i32>,
    pub time_zone: String,
    /// The campaign-day counter of the day asked for (0 when its row does not exist yet).
    pub issued_today: i64,
}

/// The campaign's settings and the counter of `day`, in one round trip.
pub async fn campaign_state(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    day: NaiveDate,
) -> Result<Option<CampaignState>, DbErr> {
    let row = db
        .query_one_raw(statement(
            db,
            "SELECT c.active, c.starts_at, c.ends_at, c.daily_limit, c.time_zone, d.issued \
             FROM campaigns c LEFT JOIN campaign_day_counters d \
             ON d.campaign_id = c.id AND d.day = ? WHERE c.id = ?",
            vec![day.into(), campaign_id.into()],
        ))
        .await?;
    row.map(|row| {
        Ok(CampaignState {
            active: row.try_get_by_index(0)?,
            starts_at: row.try_get_by_index(1)?,
            ends_at: row.try_get_by_index(2)?,
            daily_limit: row.try_get_by_index(3)?,
            time_zone: row.try_get_by_index(4)?,
            issued_today: row.try_get_by_index::<Option<i32>>(5)?.map_or(0, i64::from),
        })
    })
    .transpose()
}

/// The pick: up to `n` available codes of the campaign with `after < id <= up_to`, oldest
/// first, locked for this transaction. On MySQL/MariaDB rows other transactions hold are
/// skipped (`SKIP LOCKED`), so concurrent claimers never wait on each other here; the index is
/// forced so the plan cannot flip to a PRIMARY walk over issued rows. SQLite has one writer
/// (`BEGIN IMMEDIATE`) and no row locks, so it reads plainly through the same index.
/// (`issue_day IS NULL` always holds for available codes; saying so lets the index deliver
/// them in `id` order without a sort.)
pub async fn pick_available(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    ids: IdRange,
    n: usize,
) -> Result<Vec<(i64, String)>, DbErr> {
    let sql = pick_sql(db.get_database_backend());
    let rows = db
        .query_all_raw(statement(
            db,
            sql,
            vec![
                campaign_id.into(),
                (CodeStatus::Available as i16).into(),
                ids.after.into(),
                ids.up_to.into(),
                (n as i64).into(),
            ],
        ))
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
}

/// Which code ids a pick may return: `after < id <= up_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub after: i64,
    pub up_to: i64,
}

impl IdRange {
    pub const ALL: IdRange = IdRange {
        after: 0,
        up_to: i64::MAX,
    };
}

/// The pick statement for `backend` (public so a test can `EXPLAIN` it); binds campaign id,
/// status, the id range and the limit.
pub fn pick_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Sqlite => {
            "SELECT id, code FROM codes INDEXED BY idx_codes_pick \
             WHERE campaign_id = ? AND status = ? AND issue_day IS NULL AND id > ? AND id <= ? \
             ORDER BY id LIMIT ?"
        }
        _ => {
            "SELECT id, code FROM codes FORCE INDEX (idx_codes_pick) \
             WHERE campaign_id = ? AND status = ? AND issue_day IS NULL AND id > ? AND id <= ? \
             ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"
        }
    }
}

/// One code picked for one user.
pub struct Assignment<'a> {
    pub code_id: i64,
    pub user_id: &'a str,
    pub claim_id: Uuid,
}

/// Marks the picked codes issued to their users, in one statement (`assignments` not empty).
pub async fn issue_codes(
    db: &impl ConnectionTrait,
    assignments: &[Assignment<'_>],
    issued_at: DateTime<Utc>,
    day: NaiveDate,
) -> Result<(), DbErr> {
    let n = assignments.len().next_power_of_two();
    let mut users = String::with_capacity(n * 16);
    let mut claims = String::with_capacity(n * 16);
    let mut values: Vec<Value> = Vec::with_capacity(5 * n + 3);
    values.push((CodeStatus::Issued as i16).into());
    values.push(issued_at.into());
    values.push(day.into());
    for a in padded(assignments) {
        users.push_str(" WHEN ? THEN ?");
        values.push(a.code_id.into());
        values.push(a.user_id.into());
    }
    for a in padded(assignments) {
        claims.push_str(" WHEN ? THEN ?");
        values.push(a.code_id.into());
        values.push(a.claim_id.into());
    }
    values.extend(padded(assignments).map(|a| Value::from(a.code_id)));
    let sql = format!(
        "UPDATE codes SET status = ?, issued_at = ?, issue_day = ?, \
         issued_to = CASE id{users} END, claim_id = CASE id{claims} END WHERE id IN {}",
        placeholders(n)
    );
    db.execute_raw(statement(db, sql, values)).await?;
    Ok(())
}

/// The fast gate: adds `k` to the day's counter if the result stays within the campaign's
/// daily limit (always, when it has none). False when the row is missing or the day is too
/// near its limit. The limit is read here, at the gate, under the campaign row's shared lock
/// (see [`locked_daily_limit`]), so a limit an operator lowered holds from the moment the
/// change answered.
pub async fn bump_counter_within_limit(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    day: NaiveDate,
    k: i64,
) -> Result<bool, DbErr> {
    let limit = locked_daily_limit(db, campaign_id).await?;
    let result = db
        .execute_raw(statement(
            db,
            "UPDATE campaign_day_counters SET issued = issued + ? \
             WHERE campaign_id = ? AND day = ? AND issued + ? <= ?",
            vec![
                k.into(),
                campaign_id.into(),
                day.into(),
                k.into(),
                limit.map_or(i64::MAX, i64::from).into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// The campaign's daily limit (`None`: no limit), read under a shared lock on its row
/// (`LOCK IN SHARE MODE`, which MySQL 8.0 and MariaDB both accept). Changing the limit needs
/// that row exclusively, so the change and every claim transaction are serialized: a claim
/// that read the old limit commits before the change can answer, and one that starts after
/// reads the new limit. Claim transactions take it after their code rows and before the day's
/// counter, in that order on both paths. On SQLite the immediate transaction is the only
/// writer, so a plain read is as good.
pub async fn locked_daily_limit(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
) -> Result<Option<i32>, DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "SELECT daily_limit FROM campaigns WHERE id = ?",
        _ => "SELECT daily_limit FROM campaigns WHERE id = ? LOCK IN SHARE MODE",
    };
    let row = db
        .query_one_raw(statement(db, sql, vec![campaign_id.into()]))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("campaigns row".to_owned()))?;
    row.try_get_by_index(0)
}

/// Creates the day's counter row at 0 if it does not exist (run on its own, outside the claim
/// transaction, so that transaction never holds a shared lock it later upgrades).
pub async fn ensure_counter_row(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    day: NaiveDate,
) -> Result<(), DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => {
            "INSERT INTO campaign_day_counters (campaign_id, day, issued) VALUES (?, ?, 0) \
             ON CONFLICT DO NOTHING"
        }
        _ => {
            "INSERT INTO campaign_day_counters (campaign_id, day, issued) VALUES (?, ?, 0) \
             ON DUPLICATE KEY UPDATE issued = issued"
        }
    };
    db.execute_raw(statement(db, sql, vec![campaign_id.into(), day.into()]))
        .await?;
    Ok(())
}

/// Locks the day's counter row (`FOR UPDATE`; SQLite's immediate transaction already holds the
/// only write lock) so that every other claimer of the day waits behind this transaction.
pub async fn lock_counter(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    day: NaiveDate,
) -> Result<i64, DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => {
            "SELECT issued FROM campaign_day_counters WHERE campaign_id = ? AND day = ?"
        }
        _ => {
            "SELECT issued FROM campaign_day_counters WHERE campaign_id = ? AND day = ? FOR UPDATE"
        }
    };
    let row = db
        .query_one_raw(statement(db, sql, vec![campaign_id.into(), day.into()]))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("campaign_day_counters row".to_owned()))?;
    Ok(i64::from(row.try_get_by_index::<i32>(0)?))
}

/// The exact number of codes the campaign issued on `day`.
pub async fn count_issued_on(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    day: NaiveDate,
) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(statement(
            db,
            "SELECT COUNT(*) FROM codes WHERE campaign_id = ? AND status = ? AND issue_day = ?",
            vec![
                campaign_id.into(),
                (CodeStatus::Issued as i16).into(),
                day.into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("COUNT(*) row".to_owned()))?;
    row.try_get_by_index(0)
}

pub async fn set_counter(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    day: NaiveDate,
    issued: i64,
) -> Result<(), DbErr> {
    db.execute_raw(statement(
        db,
        "UPDATE campaign_day_counters SET issued = ? WHERE campaign_id = ? AND day = ?",
        vec![issued.into(), campaign_id.into(), day.into()],
    ))
    .await?;
    Ok(())
}

/// Whether any code of the campaign is available in committed data (a plain read: it does not
/// skip rows others have locked, which is the point: see invariant 4).
pub async fn any_available(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<bool, DbErr> {
    Ok(db
        .query_one_raw(statement(
            db,
            "SELECT 1 FROM codes WHERE campaign_id = ? AND status = ? LIMIT 1",
            vec![campaign_id.into(), (CodeStatus::Available as i16).into()],
        ))
        .await?
        .is_some())
}

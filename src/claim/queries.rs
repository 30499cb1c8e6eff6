//! The claim path's SQL, one function per statement, over `&impl ConnectionTrait`.
//!
//! Lists that grow with a round (campaigns, users, codes) are padded to a power of two
//! (`store::padded`), so each statement comes in a handful of shapes and the driver's
//! prepared-statement cache always hits. The one exception is the picks of the locking
//! statement, one per campaign up to 64 (see `locking_pick_slots`): each padding pick costs
//! the server work of its own.
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Value};
use uuid::Uuid;

use crate::store::codes::IssuedClaim;
use crate::store::{CodeStatus, padded, padded_to, placeholders, statement};

/// A campaign-day counter's key.
pub type DayKey = (Uuid, NaiveDate);

/// What a writer learns about a campaign it has not seen yet: the time zone (never changed
/// after creation) and which of the asked days already have a counter row. Everything that
/// decides a claim is read later, under the transaction's locks.
#[derive(Debug, Clone)]
pub struct CampaignSighting {
    pub id: Uuid,
    pub time_zone: String,
    /// The days among those asked for whose counter row exists.
    pub counter_days: Vec<NaiveDate>,
}

/// The campaigns' time zones with their counter rows among `days` (the days the caller
/// expects each campaign to be on), and the database's clock, in one round trip. `None` for
/// the instant when no campaign exists.
pub async fn sight_campaigns(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    days: &[NaiveDate],
) -> Result<(Option<DateTime<Utc>>, Vec<CampaignSighting>), DbErr> {
    let now = match db.get_database_backend() {
        DbBackend::Sqlite => "strftime('%Y-%m-%d %H:%M:%S', 'now')",
        _ => "UTC_TIMESTAMP()",
    };
    let sql = format!(
        "SELECT c.id, c.time_zone, d.day, {now} FROM campaigns c \
         LEFT JOIN campaign_day_counters d ON d.campaign_id = c.id AND d.day IN {} \
         WHERE c.id IN {} ORDER BY c.id",
        placeholders(days.len().next_power_of_two()),
        placeholders(ids.len().next_power_of_two()),
    );
    let mut values: Vec<Value> = padded(days).map(|day| Value::from(*day)).collect();
    values.extend(padded(ids).map(|id| Value::from(*id)));
    let rows = db.query_all_raw(statement(db, sql, values)).await?;
    let mut now = None;
    let mut sightings: Vec<CampaignSighting> = Vec::with_capacity(ids.len());
    for row in rows {
        now = Some(row.try_get_by_index::<NaiveDateTime>(3)?.and_utc());
        let id: Uuid = row.try_get_by_index(0)?;
        let day: Option<NaiveDate> = row.try_get_by_index(2)?;
        if let Some(sighting) = sightings.last_mut().filter(|sighting| sighting.id == id) {
            sighting.counter_days.extend(day);
            continue;
        }
        sightings.push(CampaignSighting {
            id,
            time_zone: row.try_get_by_index(1)?,
            counter_days: day.into_iter().collect(),
        });
    }
    Ok((now, sightings))
}

/// `(a, b) IN …` over `n` pairs: a row-constructor list on MySQL/MariaDB (a range scan of the
/// two-column index), `VALUES` rows on SQLite.
fn pairs_in(backend: DbBackend, columns: &str, n: usize) -> String {
    let rows = vec!["(?, ?)"; n].join(", ");
    match backend {
        DbBackend::Sqlite => format!("({columns}) IN (VALUES {rows})"),
        _ => format!("({columns}) IN ({rows})"),
    }
}

/// The claims the given users already hold, one per (campaign, user) pair. When every pair
/// names one campaign (the usual round) the users are listed after it (`campaign_id = ? AND
/// issued_to IN …`: a quarter of the server time of the row-constructor list measured here).
pub async fn claims_of_users(
    db: &impl ConnectionTrait,
    pairs: &[(Uuid, &str)],
) -> Result<Vec<IssuedClaim>, DbErr> {
    let Some(&(first_campaign, _)) = pairs.first() else {
        return Ok(Vec::new());
    };
    let slots = pairs.len().next_power_of_two();
    let mut values = Vec::with_capacity(2 * slots);
    let one_campaign = pairs
        .iter()
        .all(|(campaign_id, _)| *campaign_id == first_campaign);
    let condition = if one_campaign {
        values.push(Value::from(first_campaign));
        values.extend(padded(pairs).map(|(_, user)| Value::from(*user)));
        format!("campaign_id = ? AND issued_to IN {}", placeholders(slots))
    } else {
        for (campaign_id, user) in padded(pairs) {
            values.push(Value::from(*campaign_id));
            values.push(Value::from(*user));
        }
        pairs_in(db.get_database_backend(), "campaign_id, issued_to", slots)
    };
    let sql = format!(
        "SELECT campaign_id, claim_id, issued_to, code, issued_at, issue_day FROM codes \
         WHERE {condition}"
    );
    let rows = db.query_all_raw(statement(db, sql, values)).await?;
    rows.into_iter()
        .map(|row| {
            Ok(IssuedClaim {
                campaign_id: row.try_get_by_index(0)?,
                claim_id: row.try_get_by_index(1)?,
                user_id: row.try_get_by_index(2)?,
                code: row.try_get_by_index(3)?,
                issued_at: row.try_get_by_index(4)?,
                day: row.try_get_by_index(5)?,
            })
        })
        .collect()
}

/// The counters of `keys` in committed data (a plain read; rows that do not exist are absent).
pub async fn counters(
    db: &impl ConnectionTrait,
    keys: &[DayKey],
) -> Result<HashMap<DayKey, i64>, DbErr> {
    let sql = format!(
        "SELECT campaign_id, day, issued FROM campaign_day_counters WHERE {}",
        pairs_in(
            db.get_database_backend(),
            "campaign_id, day",
            keys.len().next_power_of_two()
        )
    );
    let rows = db
        .query_all_raw(statement(db, sql, key_values(keys)))
        .await?;
    rows.into_iter()
        .map(|row| {
            let key = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
            Ok((key, i64::from(row.try_get_by_index::<i32>(2)?)))
        })
        .collect()
}

/// How [`lock_days_and_pick`] treats rows another transaction holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterLocks {
    /// Leave them out of the answer (`FOR UPDATE SKIP LOCKED`): the round goes on without them.
    Skip,
    /// Wait for them (`FOR UPDATE`), at most the session's lock-wait timeout.
    Wait,
}

/// A campaign-day as the issuing transaction sees it, under its locks.
#[derive(Debug, Clone)]
pub struct LockedDay {
    pub issued: i64,
    pub active: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub daily_limit: Option<i32>,
    /// The database's clock when the row was read.
    pub now: DateTime<Utc>,
}

/// Locks the counter rows of `keys` and their campaigns' rows (`FOR UPDATE`, counters first,
/// in key order), returns what the transaction decides with — the day's count, the campaign's
/// settings as committed, and the database's clock — and then picks `parts` (see
/// [`pick_available`]), on MySQL/MariaDB in the same statement: a `UNION ALL` runs its
/// selects in order, so the rows are locked in the same order as by two statements, at one
/// round trip. With [`CounterLocks::Skip`] a key whose counter or campaign row another
/// transaction holds is left out, so this never waits. On SQLite the immediate transaction
/// already holds the only write lock, and the two reads run one after the other. `keys` and
/// `parts` are not empty.
pub async fn lock_days_and_pick(
    db: &impl ConnectionTrait,
    keys: &[DayKey],
    mode: CounterLocks,
    parts: &[PickPart],
) -> Result<(HashMap<DayKey, LockedDay>, Vec<Picked>), DbErr> {
    let backend = db.get_database_backend();
    if backend == DbBackend::Sqlite {
        let sql = format!(
            "SELECT d.campaign_id, d.day, d.issued, c.active, c.starts_at, c.ends_at, \
             c.daily_limit, strftime('%Y-%m-%d %H:%M:%S', 'now') FROM campaign_day_counters d \
             JOIN campaigns c ON c.id = d.campaign_id WHERE {}",
            pairs_in(
                backend,
                "d.campaign_id, d.day",
                keys.len().next_power_of_two()
            )
        );
        let rows = db
            .query_all_raw(statement(db, sql, key_values(keys)))
            .await?;
        let locked = rows
            .iter()
            .map(|row| locked_day(row, 0))
            .collect::<Result<_, DbErr>>()?;
        return Ok((locked, pick_available(db, parts).await?));
    }
    let locking = match mode {
        CounterLocks::Skip => "FOR UPDATE SKIP LOCKED",
        CounterLocks::Wait => "FOR UPDATE",
    };
    // Every select yields the same columns: `part` (NULL for a campaign-day), the campaign-day's
    // seven, then the picked code's id and text.
    let mut sql = format!(
        "(SELECT NULL AS part, d.campaign_id, d.day, d.issued, c.active, c.starts_at, \
         c.ends_at, c.daily_limit, UTC_TIMESTAMP() AS now, NULL AS id, NULL AS code \
         FROM campaign_day_counters d STRAIGHT_JOIN campaigns c ON c.id = d.campaign_id \
         WHERE {} ORDER BY d.campaign_id, d.day {locking})",
        pairs_in(
            backend,
            "d.campaign_id, d.day",
            keys.len().next_power_of_two()
        )
    );
    let slots = locking_pick_slots(parts.len());
    for part in 0..slots {
        sql.push_str(&format!(
            " UNION ALL (SELECT {part}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, id, \
             code {PICK_PART_BODY})"
        ));
    }
    let mut values = key_values(keys);
    values.extend(pick_values(parts, slots));
    let rows = db.query_all_raw(statement(db, sql, values)).await?;
    let mut locked = HashMap::with_capacity(keys.len());
    let mut picked = Vec::new();
    for row in &rows {
        match row.try_get_by_index::<Option<i64>>(0)? {
            None => {
                let (key, day) = locked_day(row, 1)?;
                locked.insert(key, day);
            }
            Some(part) => picked.push((
                part as usize,
                row.try_get_by_index(9)?,
                row.try_get_by_index(10)?,
            )),
        }
    }
    Ok((locked, picked))
}

/// Rounds of at most this many campaigns get one pick part each in [`lock_days_and_pick`].
const EXACT_PICK_PARTS_UP_TO: usize = 64;

/// How many pick parts [`lock_days_and_pick`] sends for `parts` campaigns: exactly as many up
/// to [`EXACT_PICK_PARTS_UP_TO`] (a round at the default batch size), the next power of two
/// beyond. A padding part (`LIMIT 0`) still costs the server a table open and an index dive:
/// padded to powers of two, rounds of 26 claims over 200 campaigns cost the database 2–8 µs
/// a claim more (`bench/shapes.sh`, `service-padded-picks` against `service`). The number of
/// parts also fixes the number of keys, so the statement comes in at most 64 shapes (plus one
/// per power of two above) a lock mode: within the connection's statement cache (`startup`).
fn locking_pick_slots(parts: usize) -> usize {
    if parts <= EXACT_PICK_PARTS_UP_TO {
        parts
    } else {
        parts.next_power_of_two()
    }
}

/// A campaign-day read under the lock, from the row's columns starting at `first`: campaign,
/// day, counter, active, window, limit, the database's clock.
fn locked_day(row: &QueryResult, first: usize) -> Result<(DayKey, LockedDay), DbErr> {
    let key = (
        row.try_get_by_index(first)?,
        row.try_get_by_index(first + 1)?,
    );
    let locked = LockedDay {
        issued: i64::from(row.try_get_by_index::<i32>(first + 2)?),
        active: row.try_get_by_index(first + 3)?,
        starts_at: row.try_get_by_index(first + 4)?,
        ends_at: row.try_get_by_index(first + 5)?,
        daily_limit: row.try_get_by_index(first + 6)?,
        now: row.try_get_by_index::<NaiveDateTime>(first + 7)?.and_utc(),
    };
    Ok((key, locked))
}

fn key_values(keys: &[DayKey]) -> Vec<Value> {
    let mut values = Vec::with_capacity(2 * keys.len().next_power_of_two());
    for (campaign_id, day) in padded(keys) {
        values.push(Value::from(*campaign_id));
        values.push(Value::from(*day));
    }
    values
}

/// Creates the counter rows of `keys` at 0 where they do not exist (run on its own, before the
/// claim transaction, so that transaction only ever locks rows that exist).
pub async fn ensure_counter_rows(db: &impl ConnectionTrait, keys: &[DayKey]) -> Result<(), DbErr> {
    let verb = match db.get_database_backend() {
        DbBackend::Sqlite => "INSERT OR IGNORE",
        _ => "INSERT IGNORE",
    };
    let rows = vec!["(?, ?, 0)"; keys.len().next_power_of_two()].join(", ");
    db.execute_raw(statement(
        db,
        format!("{verb} INTO campaign_day_counters (campaign_id, day, issued) VALUES {rows}"),
        key_values(keys),
    ))
    .await?;
    Ok(())
}

/// Writes the counters' new values (their rows exist and this transaction holds them).
pub async fn set_counters(
    db: &impl ConnectionTrait,
    counters: &[(DayKey, i64)],
) -> Result<(), DbErr> {
    let n = counters.len().next_power_of_two();
    let conflict = match db.get_database_backend() {
        DbBackend::Sqlite => {
            "ON CONFLICT (campaign_id, day) DO UPDATE SET issued = excluded.issued"
        }
        _ => "ON DUPLICATE KEY UPDATE issued = VALUES(issued)",
    };
    let mut values = Vec::with_capacity(3 * n);
    for ((campaign_id, day), issued) in padded(counters) {
        values.push(Value::from(*campaign_id));
        values.push(Value::from(*day));
        values.push(Value::from(*issued));
    }
    db.execute_raw(statement(
        db,
        format!(
            "INSERT INTO campaign_day_counters (campaign_id, day, issued) VALUES {} {conflict}",
            vec!["(?, ?, ?)"; n].join(", ")
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// The exact number of codes the campaign issued on `day`.
pub async fn count_issued_on(
    db: &impl ConnectionTrait,
    (campaign_id, day): DayKey,
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

/// One campaign's part of a pick: up to `n` available codes with ids in `ids`.
#[derive(Debug, Clone, Copy)]
pub struct PickPart {
    pub campaign_id: Uuid,
    pub ids: IdRange,
    pub n: usize,
}

/// One picked code: which part of the pick it answers, its id and its text.
pub type Picked = (usize, i64, String);

/// The pick, for several campaigns in one statement (`UNION ALL` of one locking read per
/// part): up to `n` available codes of each part's campaign, oldest first, locked for this
/// transaction. On MySQL/MariaDB rows other transactions hold are skipped (`SKIP LOCKED`), so
/// concurrent claimers never wait on each other here; the index is forced so the plan cannot
/// flip to a PRIMARY walk over issued rows. SQLite has one writer (`BEGIN IMMEDIATE`) and no
/// row locks, so it reads plainly through the same index. (`issue_day IS NULL` always holds
/// for available codes; saying so lets the index deliver them in `id` order without a sort.)
/// Padding parts repeat the last one with `n = 0`.
pub async fn pick_available(
    db: &impl ConnectionTrait,
    parts: &[PickPart],
) -> Result<Vec<Picked>, DbErr> {
    let backend = db.get_database_backend();
    let slots = parts.len().next_power_of_two();
    let sql = (0..slots)
        .map(|part| pick_part_sql(backend, part))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows = db
        .query_all_raw(statement(db, sql, pick_values(parts, slots)))
        .await?;
    rows.into_iter()
        .map(|row| {
            let part: i64 = row.try_get_by_index(0)?;
            Ok((
                part as usize,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
            ))
        })
        .collect()
}

/// The values of a pick of `slots` parts (at least `parts.len()`), in [`pick_part_sql`]'s
/// order; padding parts repeat the last one with `n = 0`.
fn pick_values(parts: &[PickPart], slots: usize) -> Vec<Value> {
    let mut values = Vec::with_capacity(5 * slots);
    for (slot, part) in padded_to(parts, slots).enumerate() {
        values.push(part.campaign_id.into());
        values.push((CodeStatus::Available as i16).into());
        values.push(part.ids.after.into());
        values.push(part.ids.up_to.into());
        let n = if slot < parts.len() { part.n } else { 0 };
        values.push((n as i64).into());
    }
    values
}

/// A MySQL/MariaDB pick part after its selected columns.
const PICK_PART_BODY: &str = "FROM codes FORCE INDEX (idx_codes_pick) \
    WHERE campaign_id = ? AND status = ? AND issue_day IS NULL AND id > ? AND id <= ? \
    ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";

/// The pick of one campaign for `backend`, as part number `part` of a pick (public so a test
/// can `EXPLAIN` it); binds campaign id, status, the id range and the limit.
pub fn pick_part_sql(backend: DbBackend, part: usize) -> String {
    match backend {
        DbBackend::Sqlite => format!(
            "SELECT * FROM (SELECT {part} AS part, id, code FROM codes INDEXED BY idx_codes_pick \
             WHERE campaign_id = ? AND status = ? AND issue_day IS NULL AND id > ? AND id <= ? \
             ORDER BY id LIMIT ?)"
        ),
        _ => format!("(SELECT {part} AS part, id, code {PICK_PART_BODY})"),
    }
}

/// One code picked for one user.
pub struct Assignment<'a> {
    pub code_id: i64,
    pub user_id: &'a str,
    pub claim_id: Uuid,
}

/// Marks the picked codes issued to their users on `day` and writes their campaigns' day
/// counters (`counters`: each campaign's new total for `day`; this transaction holds those rows
/// and every assigned code belongs to one of them). On MySQL/MariaDB that is one statement, a
/// multi-table `UPDATE` joining each code to its campaign's counter row (a row matched by
/// several codes is still written once); on SQLite, two. The join is fixed — the codes by id,
/// then each one's counter by its key — because a scan of the counters (the plan MariaDB picks
/// for a small table) would lock, and wait for, the counter rows of other campaigns that other
/// transactions hold. An inner join writes nothing for a code whose counter row is missing, so
/// the rows the statement matched are checked: fewer than the codes and counters it names is
/// an error (the round rolls back) instead of claims answered for codes left unissued.
/// `assignments` is not empty.
pub async fn issue_codes(
    db: &impl ConnectionTrait,
    assignments: &[Assignment<'_>],
    issued_at: DateTime<Utc>,
    day: NaiveDate,
    counters: &[(Uuid, i64)],
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let n = assignments.len().next_power_of_two();
    let mut users = String::with_capacity(n * 16);
    let mut claims = String::with_capacity(n * 16);
    let mut values: Vec<Value> = Vec::with_capacity(5 * n + 4 + 2 * counters.len());
    if backend != DbBackend::Sqlite {
        values.push(day.into());
    }
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
    if backend == DbBackend::Sqlite {
        values.extend(padded(assignments).map(|a| Value::from(a.code_id)));
        let sql = format!(
            "UPDATE codes SET status = ?, issued_at = ?, issue_day = ?, \
             issued_to = CASE id{users} END, claim_id = CASE id{claims} END WHERE id IN {}",
            placeholders(n)
        );
        db.execute_raw(statement(db, sql, values)).await?;
        let keyed: Vec<(DayKey, i64)> = counters
            .iter()
            .map(|(campaign_id, issued)| ((*campaign_id, day), *issued))
            .collect();
        return set_counters(db, &keyed).await;
    }
    let mut totals = String::with_capacity(counters.len().next_power_of_two() * 16);
    for (campaign_id, issued) in padded(counters) {
        totals.push_str(" WHEN ? THEN ?");
        values.push((*campaign_id).into());
        values.push((*issued).into());
    }
    values.extend(padded(assignments).map(|a| Value::from(a.code_id)));
    let sql = format!(
        "UPDATE codes c STRAIGHT_JOIN campaign_day_counters d FORCE INDEX (PRIMARY) \
         ON d.campaign_id = c.campaign_id AND d.day = ? \
         SET c.status = ?, c.issued_at = ?, c.issue_day = ?, \
         c.issued_to = CASE c.id{users} END, c.claim_id = CASE c.id{claims} END, \
         d.issued = CASE d.campaign_id{totals} END WHERE c.id IN {}",
        placeholders(n)
    );
    // The driver asks for rows matched, not changed (`CLIENT_FOUND_ROWS`): each code and each
    // counter row the join reached counts once.
    let matched = db
        .execute_raw(statement(db, sql, values))
        .await?
        .rows_affected();
    let named = (assignments.len() + counters.len()) as u64;
    if matched != named {
        return Err(DbErr::Custom(format!(
            "issuing matched {matched} rows of the {named} codes and day counters it names"
        )));
    }
    Ok(())
}

/// Whether any code of the campaign is available in committed data (a plain read: it does not
/// skip rows others have locked, which is the point: a shortfall of the skipping pick is
/// `out_of_stock` only when this finds none).
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

#[cfg(test)]
mod tests {
    use super::locking_pick_slots;

    #[test]
    fn locking_picks_are_exact_up_to_64_campaigns_then_powers_of_two() {
        for parts in [1, 2, 3, 26, 63, 64] {
            assert_eq!(locking_pick_slots(parts), parts);
        }
        assert_eq!(locking_pick_slots(65), 128);
        assert_eq!(locking_pick_slots(200), 256);
    }
}

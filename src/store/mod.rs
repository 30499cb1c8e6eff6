//! Database queries of the admin side and the read paths, as functions over
//! `&impl ConnectionTrait` so each runs inside or outside a transaction.
pub mod audit;
pub mod batches;
pub mod campaigns;
pub mod codes;
pub mod failure;
pub mod stock;

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    IsolationLevel, Statement, TransactionTrait, Value,
};

/// A read-only transaction whose reads all see one snapshot (REPEATABLE READ on MySQL/MariaDB;
/// a deferred transaction on SQLite, which in WAL mode reads one snapshot too), for views that
/// combine several counts.
pub async fn read_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => db.begin().await,
        _ => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
    }
}

/// Whether the database answers and takes writes: on MySQL/MariaDB the server must not be
/// read-only (after a failover the old writer still answers pings, but refuses every write).
pub async fn accepts_writes(db: &DatabaseConnection) -> Result<bool, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => db.ping().await.map(|()| true),
        _ => {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::MySql,
                    "SELECT CAST(@@global.read_only + @@global.innodb_read_only AS SIGNED)",
                ))
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("read_only row".to_owned()))?;
            let read_only = row.try_get_by_index::<i64>(0)? > 0;
            if read_only {
                failure::note_read_only();
            }
            Ok(!read_only)
        }
    }
}

/// The database's clock (whole seconds, UTC): the one clock every instance agrees on.
pub async fn database_now(db: &impl ConnectionTrait) -> Result<DateTime<Utc>, DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "SELECT strftime('%Y-%m-%d %H:%M:%S', 'now')",
        _ => "SELECT UTC_TIMESTAMP()",
    };
    let row = db
        .query_one_raw(statement(db, sql, Vec::new()))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("clock row".to_owned()))?;
    Ok(row.try_get_by_index::<NaiveDateTime>(0)?.and_utc())
}

/// The pool's open connections and how many of them are idle.
pub fn pool_connections(db: &DatabaseConnection) -> (u32, u32) {
    match db.get_database_backend() {
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        _ => {
            let pool = db.get_mysql_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
    }
}

/// How long taking a connection from the pool takes now (it is handed back at once); `None`
/// when none could be had within the pool's acquire timeout.
pub async fn acquire_wait(db: &DatabaseConnection) -> Option<std::time::Duration> {
    let started = std::time::Instant::now();
    let acquired = match db.get_database_backend() {
        DbBackend::Sqlite => db.get_sqlite_connection_pool().acquire().await.map(drop),
        _ => db.get_mysql_connection_pool().acquire().await.map(drop),
    };
    acquired.ok().map(|()| started.elapsed())
}

/// Code status as stored in `codes.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum CodeStatus {
    Available = 0,
    Issued = 1,
    Revoked = 2,
}

impl CodeStatus {
    pub fn from_db(value: i16) -> Option<Self> {
        match value {
            0 => Some(Self::Available),
            1 => Some(Self::Issued),
            2 => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// `items` repeated up to the next power of two in length (the last one repeats): the
/// hot-path statements whose lists grow with the batch then come in a handful of shapes, so
/// the driver's prepared-statement cache always hits (a miss costs a prepare round trip that
/// stalled claims by ~45 ms under load). Repeats are harmless in `IN (…)` and `CASE`.
pub(crate) fn padded<T>(items: &[T]) -> impl Iterator<Item = &T> {
    padded_to(items, items.len().next_power_of_two())
}

/// `items` repeated up to `slots` in length (at least `items.len()`; the last one repeats).
pub(crate) fn padded_to<T>(items: &[T], slots: usize) -> impl Iterator<Item = &T> {
    (0..slots).map(move |i| &items[i.min(items.len() - 1)])
}

/// `(?, ?, …)` with `n` placeholders.
pub(crate) fn placeholders(n: usize) -> String {
    let mut list = String::with_capacity(2 + n * 3);
    list.push('(');
    for i in 0..n {
        if i > 0 {
            list.push_str(", ");
        }
        list.push('?');
    }
    list.push(')');
    list
}

/// A raw statement for the connection's backend (`?` placeholders, which MySQL and SQLite
/// share; PostgreSQL is not a target yet).
pub(crate) fn statement(
    db: &impl ConnectionTrait,
    sql: impl Into<String>,
    values: Vec<Value>,
) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// `INSERT IGNORE` on MySQL/MariaDB, `INSERT OR IGNORE` on SQLite.
pub(crate) fn insert_ignore(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Sqlite => "INSERT OR IGNORE",
        _ => "INSERT IGNORE",
    }
}

/// Counts `codes` rows by status with `condition` (which binds `value`).
pub(crate) async fn count_codes_by_status(
    db: &impl ConnectionTrait,
    condition: &str,
    value: Value,
) -> Result<StatusCounts, DbErr> {
    let rows = db
        .query_all_raw(statement(
            db,
            format!("SELECT status, COUNT(*) FROM codes WHERE {condition} GROUP BY status"),
            vec![value],
        ))
        .await?;
    let mut counts = StatusCounts::default();
    for row in rows {
        let status: i16 = row.try_get_by_index(0)?;
        let count: i64 = row.try_get_by_index(1)?;
        match CodeStatus::from_db(status) {
            Some(CodeStatus::Available) => counts.available = count,
            Some(CodeStatus::Issued) => counts.issued = count,
            Some(CodeStatus::Revoked) => counts.revoked = count,
            None => {}
        }
    }
    Ok(counts)
}

/// How many codes are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub available: i64,
    pub issued: i64,
    pub revoked: i64,
}

#[cfg(test)]
mod tests {
    use super::padded;

    #[test]
    fn padding_repeats_the_last_item_up_to_a_power_of_two() {
        let padded_five: Vec<i32> = padded(&[1, 2, 3, 4, 5]).copied().collect();
        assert_eq!(padded_five, [1, 2, 3, 4, 5, 5, 5, 5]);
        assert_eq!(padded(&[7]).count(), 1);
        assert_eq!(padded(&[1, 2, 3, 4]).count(), 4);
    }
}

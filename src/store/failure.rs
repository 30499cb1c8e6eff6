//! What a database error means for the service, decided in one place: the HTTP answer, the
//! claim writer's retries and the pool's handling of a read-only server all match on it.
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{DbErr, RuntimeErr};

/// The kinds of database failure the service tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// No connection could be had, or it broke (network, server gone, pool timed out, login
    /// refused). A claim round whose connection broke runs again on another (see
    /// [`connection_broke`]); a claim answered 503 after a `COMMIT` of unknown outcome gets
    /// whatever committed when the user retries.
    Unreachable,
    /// The server refuses writes (MySQL 1290, 1792, 1836): after a failover the old writer is
    /// read-only. Connections that saw it are not reused.
    ReadOnly,
    /// The statement or the connection was killed (1317, 1927) or the server is shutting
    /// down (1053).
    Killed,
    /// A deadlock (1213) or a lock wait timeout (1205): the statement may succeed when retried.
    LockContention,
    /// A unique key refused the row (MySQL 1062; SQLite 2067, 1555).
    DuplicateKey,
    /// The server has no room now: too many connections (1040, 1203), or SQLite's file is busy
    /// or locked (5, 6, 517).
    Busy,
    /// Anything else: a fault in a statement, answered as an opaque 500.
    Statement,
}

impl DbFailure {
    /// Whether a client may simply retry later (answered 503 `unavailable` + `Retry-After`).
    pub fn is_transient(self) -> bool {
        !matches!(self, DbFailure::DuplicateKey | DbFailure::Statement)
    }
}

/// Classifies `err`; a read-only answer is also remembered (see [`connection_predates_read_only`]).
pub fn classify(err: &DbErr) -> DbFailure {
    let failure = classify_quietly(err);
    if failure == DbFailure::ReadOnly {
        note_read_only();
    }
    failure
}

/// Whether `err` is a statement's own connection breaking under it — the server closed it (a
/// failover, `KILL CONNECTION`, a restart) or the network reset it — rather than no connection
/// to be had. The pool does not hand that connection out again (it is tested as it is given
/// back), so the work may run again at once on another one; whatever the broken connection left
/// uncommitted went with it, and a `COMMIT` it carried may or may not have taken effect.
pub fn connection_broke(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx))) =
        err
    else {
        return false;
    };
    match sqlx.as_ref() {
        Sqlx::Io(_) => true,
        Sqlx::Database(db_err) => db_err
            .try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|mysql| ends_the_connection(mysql.number())),
        _ => false,
    }
}

/// MySQL's/MariaDB's numbers for a connection that is gone: killed (1927), the server gone
/// away (2006), the connection lost mid-query (2013).
fn ends_the_connection(number: u16) -> bool {
    matches!(number, 1927 | 2006 | 2013)
}

fn classify_quietly(err: &DbErr) -> DbFailure {
    use sea_orm::sqlx::Error as Sqlx;
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return DbFailure::Unreachable,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return DbFailure::Statement,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_) => DbFailure::Unreachable,
        Sqlx::Database(db_err) => {
            if let Some(mysql) =
                db_err.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
            {
                return classify_mysql(mysql.number());
            }
            match db_err.code().as_deref() {
                Some("2067" | "1555") => DbFailure::DuplicateKey,
                Some("5" | "6" | "517") => DbFailure::Busy,
                _ => DbFailure::Statement,
            }
        }
        _ => DbFailure::Statement,
    }
}

/// MySQL's/MariaDB's error numbers.
fn classify_mysql(number: u16) -> DbFailure {
    match number {
        1290 | 1792 | 1836 => DbFailure::ReadOnly,
        1317 | 1927 | 1053 => DbFailure::Killed,
        1205 | 1213 => DbFailure::LockContention,
        1062 => DbFailure::DuplicateKey,
        1040 | 1203 => DbFailure::Busy,
        1044 | 1045 | 2002 | 2003 | 2006 | 2013 => DbFailure::Unreachable,
        _ => DbFailure::Statement,
    }
}

/// When this process last saw the database refuse a write as read-only, in microseconds
/// after [`PROCESS_START`] (0: never).
static READ_ONLY_SEEN_US: AtomicU64 = AtomicU64::new(0);
static PROCESS_START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Remembers that the database answered read-only now.
pub fn note_read_only() {
    let micros = PROCESS_START.elapsed().as_micros().max(1) as u64;
    READ_ONLY_SEEN_US.fetch_max(micros, Ordering::Relaxed);
}

/// Whether a pooled connection of age `age` was opened before the last read-only answer:
/// such a connection may still lead to the old, read-only writer (a failover moves the
/// writer's address, not the sockets already open), so the pool closes it instead of
/// handing it out.
pub fn connection_predates_read_only(age: Duration) -> bool {
    let seen = READ_ONLY_SEEN_US.load(Ordering::Relaxed);
    if seen == 0 {
        return false;
    }
    let opened = PROCESS_START.elapsed().saturating_sub(age);
    opened <= Duration::from_micros(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_and_kill_numbers_are_transient_not_statement_faults() {
        for number in [1290, 1792, 1836] {
            assert_eq!(classify_mysql(number), DbFailure::ReadOnly);
        }
        for number in [1317, 1927, 1053] {
            assert_eq!(classify_mysql(number), DbFailure::Killed);
        }
        assert_eq!(classify_mysql(1205), DbFailure::LockContention);
        assert_eq!(classify_mysql(1213), DbFailure::LockContention);
        assert_eq!(classify_mysql(1040), DbFailure::Busy);
        assert_eq!(classify_mysql(1062), DbFailure::DuplicateKey);
        assert_eq!(classify_mysql(1064), DbFailure::Statement);
        for failure in [
            DbFailure::Unreachable,
            DbFailure::ReadOnly,
            DbFailure::Killed,
            DbFailure::LockContention,
            DbFailure::Busy,
        ] {
            assert!(failure.is_transient(), "{failure:?}");
        }
        assert!(!DbFailure::DuplicateKey.is_transient());
        assert!(!DbFailure::Statement.is_transient());
    }

    #[test]
    fn only_a_statement_s_broken_connection_counts_as_broken() {
        use sea_orm::{ConnAcquireErr, sqlx::Error as Sqlx};
        let io = || {
            std::sync::Arc::new(Sqlx::Io(std::io::Error::from(
                std::io::ErrorKind::UnexpectedEof,
            )))
        };
        assert!(connection_broke(&DbErr::Query(RuntimeErr::SqlxError(io()))));
        assert!(connection_broke(&DbErr::Exec(RuntimeErr::SqlxError(io()))));
        // No connection could be had: running again would only wait for it again.
        assert!(!connection_broke(&DbErr::Conn(RuntimeErr::SqlxError(io()))));
        assert!(!connection_broke(&DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout
        )));
        let timed_out = std::sync::Arc::new(Sqlx::PoolTimedOut);
        assert!(!connection_broke(&DbErr::Query(RuntimeErr::SqlxError(
            timed_out
        ))));
        assert!(ends_the_connection(1927));
        assert!(ends_the_connection(2006));
        assert!(ends_the_connection(2013));
        // A killed statement (`KILL QUERY`) leaves its connection open: not retried.
        assert!(!ends_the_connection(1317));
        assert!(!ends_the_connection(1205));
    }

    #[test]
    fn connections_opened_before_a_read_only_answer_are_not_reused() {
        LazyLock::force(&PROCESS_START);
        std::thread::sleep(Duration::from_millis(5));
        let old = PROCESS_START.elapsed();
        note_read_only();
        assert!(connection_predates_read_only(old));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!connection_predates_read_only(Duration::from_millis(1)));
    }

    #[test]
    fn pool_and_connection_errors_are_unreachable() {
        let timed_out = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(classify(&timed_out), DbFailure::Unreachable);
        let custom = DbErr::Custom("bad stored value".to_owned());
        assert_eq!(classify(&custom), DbFailure::Statement);
    }
}

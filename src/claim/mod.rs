//! The claim path: one code per user, never twice, within an exact daily cap, with concurrent
//! claims of any number of campaigns coalesced into few transactions.
//!
//! # Shape
//! A request goes to the bounded queue of one writer task: the writer of its client connection
//! (so each writer has a steady group of clients, and one writer's transaction runs while the
//! clients another has answered come back), or, for a hot campaign (several claims in one
//! round), the writer carrying it (`writer::Carriers`). A campaign is in one writer's round at
//! a time: a writer holds back the claims of a campaign another writer's round carries until
//! that round has left. A writer takes whatever is queued for it (up to `max_batch`).
//! Under load — more than one claim queued, or a last round of several — it waits for more
//! while they keep coming (the clients the last round answered are on their way back), up to
//! `linger` in all, and on MySQL/MariaDB sends the round's `BEGIN` meanwhile (it takes no lock
//! and no snapshot); a lone claim after a lone round runs at once, so an idle service adds no
//! delay. It decides them as one round (`round::claim_round`): for a campaign the writer has
//! not seen yet, a read of the campaign; then one issuing transaction for every campaign of the
//! round. The users' existing claims are read (on another connection, beside the transaction's
//! `BEGIN` and first statement) only by a writer that met a replay in the last seconds, and by
//! a lane; otherwise the one-code-per-user unique key finds a returning user (the round rolls
//! back and runs again, reading first), and refusals are checked against the users' claims
//! before they are answered. The first statement locks the counter and campaign rows and
//! picks codes (one `UNION ALL`, its locking read first); one `UPDATE` then marks the codes
//! issued and writes the counters, and the transaction commits. Each request is answered only
//! after that commit.
//! Repeats of one user inside a round share one result (`plan`).
//!
//! # Isolation: one campaign never holds back another
//! The shared round locks its campaigns' counter rows and campaign rows with `FOR UPDATE SKIP
//! LOCKED`: it never waits for a row lock. A campaign whose rows another transaction holds (an
//! instance's round, a frozen instance, an operator's change) is left out of the round
//! (deferred) and tried again in the next one, and so are users who found every available code
//! locked by others; after three deferrals in a row the requests go to their campaign's lane
//! (`writer::Lanes`): that campaign's own writer, on its own connection, which waits for the
//! rows (at most the session's lock-wait timeout, and the claim timeout in all). So a row held
//! by a frozen instance or a long transaction stalls that campaign's claims only.
//!
//! # Why the cap is exact
//! Every issuing transaction locks, for each campaign-day it issues for, the day's counter row
//! and the campaign's row (`FOR UPDATE`, counter first, in key order), holds them until it
//! commits, and decides from what that locking read returns — the counter, the daily limit,
//! `active` and the window, and the database's clock; the codes it marks issued commit together
//! with the counter's new value. (The same statement picks codes after taking those locks,
//! before what fits is known: picked codes beyond it are left as they were, and unlocked at
//! the commit.) Writes to one row are serialized by its row lock and each
//! locking read sees the latest committed value, so:
//! * **An operator's change** (limit, `active`, window) updates the campaign row and so waits
//!   for every claim transaction holding it; every transaction after it reads the new value.
//!   A lowered limit or a deactivation holds from the moment the PATCH answers.
//! * **Far from the limit** (counter + wanted ≤ limit) the locked counter decides: it already
//!   includes every committed issue of the day, and nobody else can issue for that day until
//!   this transaction commits, so all wanted claims fit.
//! * **Near the limit** a `COUNT` of the day's issued codes decides, under the same lock (READ
//!   COMMITTED: the count sees every transaction that committed before us): the transaction
//!   issues `min(wanted, limit - count)` and writes `count + issued` back.
//!
//! The day is full when the counter reaches the limit; the rest is refused. A refusal happens
//! only when the committed total plus this round's claims would pass the limit, and the exact
//! count then issues exactly the room left: the cap is neither exceeded nor under-filled,
//! across any number of writers, lanes and instances, which share only the database. Counter
//! rows are created (at 0) before the transaction, in a statement of their own, so a
//! transaction only locks rows that exist and "not returned by `SKIP LOCKED`" means "held by
//! another". Waiting is only ever for rows in that order (a lane: counter, then campaign; an
//! operator's change: the campaign row alone), so claim transactions cannot deadlock each
//! other; the database breaks any cycle it finds and the round is retried.
//!
//! # One clock
//! The instant of a claim is the database's clock (`UTC_TIMESTAMP()`), read by the locking
//! statement: it decides the campaign's window, the day the claim counts against,
//! `Retry-After` and `issued_at`. The writer picks the day's counter to lock from its estimate
//! of that clock and checks it against the instant returned; a campaign whose day turned out
//! different (midnight) is decided again. Instances whose own clocks disagree still agree on
//! the day, since they all read it from the one database.
//!
//! # No false sold-out
//! `SKIP LOCKED` returns nothing when every free row is locked by another transaction, and the
//! pick starts above a per-writer cursor (see `round::pick_below_cursor`) before it looks
//! below. A shortfall is answered `out_of_stock` only after a plain (non-skipping) read finds
//! no available code in committed data; otherwise those users come back in the next round
//! (and, if the codes stay locked, wait in their campaign's lane, which scans again until the
//! claim timeout).
//!
//! # One code per user, and the same one again
//! The unique key `(campaign_id, issued_to)` is the rule: an issuing `UPDATE` that would give a
//! user a second code of a campaign fails as a whole, the transaction rolls back, and the round
//! runs again, this time reading the users' claims first, which answers that user with the
//! claim they hold (committed by this or another instance). A refusal is answered only after
//! the users' claims have been read, so a user who holds a code gets it back whatever the
//! campaign's state (sold out, closed, its day full).
mod plan;
pub mod queries;
pub mod round;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};
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
    /// Writer tasks in this process (each runs one transaction at a time; client connections
    /// are spread over them).
    pub writers: usize,
    /// Most claims one transaction carries.
    pub max_batch: usize,
    /// How long in all a writer under load (more than one claim queued, or a last round of
    /// several) waits for more while they keep arriving and fewer than `max_batch` are there
    /// (zero: never). A lone claim after a lone round never waits, so an idle service answers
    /// at once.
    pub linger: Duration,
    /// How long a request waits for its answer before it is told `unavailable`.
    pub request_timeout: Duration,
    /// Most lanes open at once (each holds a connection while it waits for a counter row).
    pub lanes: usize,
}

/// What a request is answered.
type Answer = Result<ClaimOutcome, ClaimRefusal>;

/// A queued request.
struct Job {
    campaign_id: Uuid,
    user: UserId,
    /// The request's id, named in the round's log line.
    request_id: RequestId,
    reply: oneshot::Sender<Answer>,
    /// Shared rounds in a row that left this request's campaign out (its counter row held).
    deferrals: u32,
}

/// The handle requests use to claim; cheap to clone.
#[derive(Clone)]
pub struct ClaimEngine {
    /// One queue per writer.
    queues: Arc<[mpsc::Sender<Job>]>,
    carriers: Arc<writer::Carriers>,
    request_timeout: Duration,
}

/// The client connection a request came on, as far as the claim path cares: requests with the
/// same key go to the same writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionKey(u64);

impl ConnectionKey {
    /// The key of a client connection's peer address (a TCP connection's address and port);
    /// every other kind of address shares one key.
    pub fn of_peer(peer: Option<&std::net::SocketAddr>) -> Self {
        Self(peer.map_or(0, |peer| {
            std::hash::BuildHasher::hash_one(
                &std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(),
                peer,
            )
        }))
    }
}

/// The writer a client connection's claims go to unless their campaign has a carrier (see
/// [`writer::Carriers`]). A connection carries one request at a time, so each writer serves a
/// steady group of clients: while one writer's transaction runs, the clients another writer
/// has just answered are on their way back to it, and the database works while the service
/// turns requests around (writers fed by campaign instead would each get a share of every
/// group and wait for all of them).
fn writer_of(connection: ConnectionKey, writers: usize) -> usize {
    (connection.0 % writers as u64) as usize
}

impl ClaimEngine {
    /// Starts the writer tasks on the current Tokio runtime. The writers run until every
    /// engine handle is dropped and their queues are empty; [`ClaimWriters::finish`] waits for
    /// that.
    pub fn start(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        settings: CoalescingSettings,
        metrics: ClaimMetrics,
    ) -> (Self, ClaimWriters) {
        // Room for 64 rounds per writer: a burst waits in the queue rather than being refused,
        // and the claim timeout bounds how long anyone waits there.
        let (queues, receivers): (Vec<_>, Vec<_>) = (0..settings.writers)
            .map(|_| mpsc::channel(settings.max_batch * 64))
            .unzip();
        let shared = Arc::new(writer::Shared {
            db,
            clock,
            settings,
            lanes: writer::Lanes::new(settings.lanes),
            carriers: Arc::new(writer::Carriers::default()),
            metrics,
        });
        let mut tasks = JoinSet::new();
        for (index, receiver) in receivers.into_iter().enumerate() {
            tasks.spawn(writer::run_writer(index, receiver, shared.clone()));
        }
        let engine = Self {
            queues: queues.into(),
            carriers: shared.carriers.clone(),
            request_timeout: settings.request_timeout,
        };
        (engine, ClaimWriters { tasks, shared })
    }

    /// Claims waiting for a writer now.
    pub fn queued(&self) -> usize {
        self.queues
            .iter()
            .map(|queue| queue.max_capacity() - queue.capacity())
            .sum()
    }

    /// Claims a code of `campaign_id` for `user`, who asked on `connection`; answered after the
    /// issuing commit.
    pub async fn claim(
        &self,
        campaign_id: Uuid,
        user: UserId,
        connection: ConnectionKey,
    ) -> Result<ClaimOutcome, AppError> {
        let (reply, answer) = oneshot::channel();
        let unavailable = || AppError::from(ClaimRefusal::Unavailable);
        let job = Job {
            campaign_id,
            user,
            request_id: current_request_id(),
            reply,
            deferrals: 0,
        };
        let answered = tokio::time::timeout(self.request_timeout, async {
            let writers = self.queues.len();
            let writer = if writers == 1 {
                0
            } else {
                self.carriers
                    .hot_carrier_of(campaign_id)
                    .unwrap_or_else(|| writer_of(connection, writers))
            };
            let queue = &self.queues[writer];
            queue.send(job).await.map_err(|_| unavailable())?;
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
    shared: Arc<writer::Shared>,
}

impl ClaimWriters {
    /// Waits until the writers have answered every queued claim and stopped (they stop once
    /// every engine handle is gone), for at most `deadline`; false if some were still running.
    pub async fn finish(mut self, deadline: Duration) -> bool {
        tokio::time::timeout(deadline, async {
            while self.tasks.join_next().await.is_some() {}
            self.shared.lanes.finish().await;
        })
        .await
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectionKey, writer_of};
    use std::net::SocketAddr;

    #[test]
    fn a_connection_always_goes_to_one_writer_and_connections_use_every_writer() {
        // A client's connections differ in their port only.
        let connections: Vec<ConnectionKey> = (40_000..40_064)
            .map(|port| {
                let peer: SocketAddr = format!("10.0.0.7:{port}").parse().unwrap();
                ConnectionKey::of_peer(Some(&peer))
            })
            .collect();
        for writers in [1, 2, 3] {
            let mut served = vec![0; writers];
            for connection in &connections {
                let writer = writer_of(*connection, writers);
                assert_eq!(writer, writer_of(*connection, writers));
                served[writer] += 1;
            }
            assert!(
                served.iter().all(|n| *n >= 64 / writers / 2),
                "{writers} writers: {served:?}"
            );
        }
        assert_eq!(ConnectionKey::of_peer(None), ConnectionKey::of_peer(None));
    }
}

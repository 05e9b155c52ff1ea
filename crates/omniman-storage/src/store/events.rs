//! The event log's reads, its pruning, and the wake-ups of those who follow it or the directive
//! queue.

use chrono::{DateTime, Utc};
use diesel_async::SimpleAsyncConnection;
use diesel_async::pooled_connection::deadpool::Object;
use futures_util::StreamExt;
use omniman_core::events::{EventLog, EventRead};
use omniman_core::ports::StoreResult;
use tokio::sync::{mpsc, watch};

use super::rows::{db_error, event_read};
use super::{pg, run, sqlite};
use crate::error::StorageError;
use crate::pool::{Database, checkout_with};

/// The PostgreSQL channel the `directives` insert trigger notifies.
pub const DIRECTIVES_CHANNEL: &str = "omniman_directives";

impl EventLog for Database {
    async fn read_events(&self, after: i64, limit: usize) -> StoreResult<EventRead> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_db!(read self, |conn, q| event_read(q::read_events(conn, after, limit).await.map_err(db_error)?))
    }

    async fn transaction_horizon(&self) -> StoreResult<i64> {
        on_db!(read self, |conn, q| q::transaction_horizon(conn).await.map_err(db_error))
    }

    async fn last_event_id(&self) -> StoreResult<i64> {
        on_db!(read self, |conn, q| q::last_event_id(conn).await.map_err(db_error))
    }
}

/// Wake-ups: one per committed transaction that wrote what is listened for (coalesced while
/// nobody waits). Dropping it stops listening.
#[derive(Debug)]
pub struct Wakeups(Source);

/// The wake-ups of idle directive workers.
pub type DirectiveWakeups = Wakeups;

#[derive(Debug)]
enum Source {
    /// PostgreSQL `LISTEN` on a dedicated connection.
    Listen { rx: mpsc::Receiver<()>, task: tokio::task::JoinHandle<()> },
    /// The writes of this process (see `Writes`).
    Local(watch::Receiver<u64>),
}

impl Wakeups {
    /// Waits for the next wake-up; `false` when the source is gone (fall back to polling, or
    /// listen again).
    pub async fn wait(&mut self) -> bool {
        match &mut self.0 {
            Source::Listen { rx, .. } => rx.recv().await.is_some(),
            Source::Local(rx) => rx.changed().await.is_ok(),
        }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let Source::Listen { task, .. } = &self.0 {
            task.abort();
        }
    }
}

impl Database {
    /// Listens for new directives on a dedicated connection (taken out of the pool). `None` on
    /// SQLite, where one process owns the database and workers poll.
    pub async fn listen_directives(&self) -> Result<Option<DirectiveWakeups>, StorageError> {
        match self {
            Database::Postgres(..) => self.listen(DIRECTIVES_CHANNEL).await.map(Some),
            Database::Sqlite(..) => Ok(None),
        }
    }

    /// Wakes up after each write call of this process, for readers of the event log. Writes of
    /// other processes (other instances, workers, the CLI) are found by polling: a `NOTIFY` in
    /// every writing transaction would serialise the commits of the whole PostgreSQL cluster
    /// (docs/events.md).
    pub fn event_wakeups(&self) -> Wakeups {
        Wakeups(Source::Local(self.writes().subscribe()))
    }

    /// Wakes up after each write of this process that queued directives (a modify or commit
    /// with directives, an enqueue, a retry, webhook deliveries), for this process's idle
    /// workers; not after the writes that queued none. Other processes' directives arrive
    /// through [`listen_directives`](Self::listen_directives) on PostgreSQL.
    pub fn directive_wakeups(&self) -> DirectiveWakeups {
        Wakeups(Source::Local(self.writes().subscribe_queued()))
    }

    /// Deletes events written before `before`, keeping the newest; returns how many went.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        on_db!(self, |conn, q| q::prune_events(conn, before).await.map_err(db_error))
    }

    async fn listen(&self, channel: &str) -> Result<Wakeups, StorageError> {
        let Database::Postgres(pool, _) = self else {
            unreachable!("only PostgreSQL listens");
        };
        let mut conn = Object::take(checkout_with(pool, None).await?);
        conn.batch_execute(&format!("LISTEN {channel}")).await?;
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let mut conn = conn;
            let mut stream = std::pin::pin!(conn.notifications_stream());
            while let Some(Ok(_)) = stream.next().await {
                if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                    break;
                }
            }
        });
        Ok(Wakeups(Source::Listen { rx, task }))
    }
}

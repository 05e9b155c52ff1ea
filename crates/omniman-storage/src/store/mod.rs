//! The core's storage ports (`omniman_core::ports`) on [`Database`], for both backends.
//!
//! Each port method converts its input to owned values, then runs its statements on a pooled
//! connection inside a task of its own: a Tokio task on PostgreSQL; on SQLite, a blocking
//! thread for a read and the writer's thread for a write (see `Home`). The task runs to completion even if the caller's future is dropped, so a
//! transaction is never abandoned half-way on a connection that goes back to the pool. The
//! statement counter of the caller's scope is carried into the task.
//!
//! Writes follow docs/architecture.md, "Concurrency": every `UPDATE` is conditional on what the service read
//! (`version` for sessions, `status` for orders, `status`/`attempts` for directives) and
//! reports whether it applied; nothing is locked while the service decides.

mod fixed;
#[macro_use]
mod queries;
mod pg;
pub(crate) mod rows;
mod sqlite;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolableConnection};
use omniman_core::channel::{Channel, ChannelSpec};
use omniman_core::commit::CommitPlan;
use omniman_core::directive::{Directive, DirectiveStatus, DirectiveUpdate, NewDirective};
use omniman_core::error::StoreError;
use omniman_core::idempotency::IdempotencyRecord;
use omniman_core::order::{NewEvent, Order, OrderEvent, TransitionPlan};
use omniman_core::page::{Page, PageRequest};
use omniman_core::ports::{
    ApiToken, ChannelStore, CommitWrite, DirectiveFilter, DirectiveQueue, IdempotencyStore, InsertSession, OrderFilter,
    OrderStore, OrderSummary, SessionFilter, SessionStore, StoreResult, TokenStore, WebhookStore,
};
use omniman_core::session::Session;
use omniman_core::webhook::{Delivery, NewDelivery, Webhook};

use self::rows::{
    ChannelRow, ChannelValues, IdempotencyValues, OrderRow, SessionRow, SessionValues, TokenValues, affected, db_error,
    directive_values, stored_order, stored_session, ts, violates,
};
use crate::counter::StatementCounter;
use crate::pool::{Database, SqliteWriter, Writes, checkout_watched, checkout_with, joined};
use crate::retry::{Retry, Watch};

/// How a commit transaction was refused (it rolled back).
#[derive(Debug)]
pub(crate) enum CommitAbort {
    Db(DieselError),
    SessionChanged,
    RefTaken,
    KeyTaken,
}

impl From<DieselError> for CommitAbort {
    fn from(e: DieselError) -> CommitAbort {
        CommitAbort::Db(e)
    }
}

/// Which existing idempotency record a write may replace.
#[derive(Clone, Copy, Debug)]
pub(crate) enum KeyRule {
    /// Any but a `done` one (`save_idempotency_record`: the key's owner records its outcome).
    UnlessDone,
    /// Only one that lets a commit claim the key (`omniman_core::idempotency::replaceable`).
    Claim,
}

/// How many times a statement that lost a race on an event `seq` is retried.
const SEQ_RETRIES: usize = 10;

/// Where a port call runs, once it has its connection.
#[derive(Clone, Copy)]
pub(crate) enum Home<'a> {
    /// A Tokio task (PostgreSQL: its statements are network round trips).
    Task,
    /// One of Tokio's blocking threads (a SQLite read), its statements on that thread as they
    /// come (`crate::pool::InPlace`): one hop between threads per call, where a hop per
    /// statement cost more than SQLite executing them (docs/storage.md, "How the ports are written").
    Blocking,
    /// The SQLite writer's thread, after the writes queued before it ([`SqliteWriter`]).
    Writer(&'a SqliteWriter),
}

/// Runs `f` on a connection of `pool` at `home` (see the module documentation); when `retry`
/// allows it and the connection turns out lost, once more on a fresh connection (see
/// `crate::retry`). `writes`: a write call's count, told when it ends (see [`Writes`]).
async fn run<C, R, F, Fut>(
    pool: &Pool<C>,
    home: Home<'_>,
    writes: Option<&Writes>,
    retry: Option<Retry>,
    f: F,
) -> StoreResult<R>
where
    C: PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>:
        deadpool::managed::Manager<Type = C, Error = diesel_async::pooled_connection::PoolError>,
    F: FnOnce(Object<C>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = StoreResult<R>> + Send + 'static,
    R: Send + 'static,
{
    let counter = StatementCounter::current();
    let watch = retry.map(|_| Arc::new(Watch::default()));
    let started = std::time::Instant::now();
    // A SQLite read waits for its connection here rather than on a blocking thread (a read
    // given up meanwhile has nothing to finish). Any other call takes its connection in its
    // task, so that once made it runs even if its caller gives up at once.
    let conn = match home {
        Home::Blocking => {
            // Boxed: a checkout that opens a connection is a large future, which would make
            // every port call's future as large (this function serves both backends).
            let checkout = Box::pin(checkout_watched(pool, counter.clone(), watch.clone()));
            Some(checkout.await.map_err(StoreError::from)?)
        }
        Home::Task | Home::Writer(_) => None,
    };
    let pool = pool.clone();
    let writes = writes.cloned();
    let call = async move {
        let result = async {
            let conn = match conn {
                Some(conn) => conn,
                None => checkout_watched(&pool, counter.clone(), watch.clone()).await.map_err(StoreError::from)?,
            };
            let again = f.clone();
            match f(conn).await {
                Err(_) if retry.zip(watch).is_some_and(|(retry, watch)| watch.may_retry(retry)) => {
                    // What lost one connection (a restart, a network failure) likely lost the
                    // other idle ones too: they go, and the call runs again on a new one.
                    drop(pool.retain(|_, metrics| metrics.created >= started));
                    again(checkout_with(&pool, counter).await.map_err(StoreError::from)?).await
                }
                result => result,
            }
        }
        .await;
        if let Some(writes) = &writes {
            writes.wrote();
        }
        result
    };
    // Each runs `call` to its end even if this future is dropped.
    let task = match home {
        Home::Task => tokio::spawn(call),
        Home::Blocking => {
            // The runtime's timers and sockets keep being driven by its own threads meanwhile,
            // so the pool's timeouts still work inside the call.
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || runtime.block_on(call))
        }
        Home::Writer(writer) => return writer.run(call).await.map_err(StoreError::from)?,
    };
    joined(task).await.unwrap_or_else(|e| Err(StoreError::Unavailable(format!("storage task stopped: {e}"))))
}

/// Runs `$body` with `$conn` (the backend's raw connection) and `$q` (the backend's query
/// module) on whichever backend `$db` is. `read $db`: a read, retried on a fresh connection
/// when its connection was lost; `tx $db`: a write in one transaction, retried when its
/// `BEGIN` failed so; `replayable $db`: a commit, retried whenever its connection was lost (see
/// `crate::retry`); plain `$db`: never retried.
macro_rules! on_db {
    (read $db:expr, |$conn:ident, $q:ident| $body:expr) => {
        on_db!(@ $db, Some($crate::retry::Retry::Read), |$conn, $q| $body)
    };
    (tx $db:expr, |$conn:ident, $q:ident| $body:expr) => {
        on_db!(@ $db, Some($crate::retry::Retry::BeforeBegin), |$conn, $q| $body)
    };
    (replayable $db:expr, |$conn:ident, $q:ident| $body:expr) => {
        on_db!(@ $db, Some($crate::retry::Retry::Replayable), |$conn, $q| $body)
    };
    ($db:expr, |$conn:ident, $q:ident| $body:expr) => {
        on_db!(@ $db, None, |$conn, $q| $body)
    };
    (@ $db:expr, $retry:expr, |$conn:ident, $q:ident| $body:expr) => {
        match $db {
            Database::Postgres(pool, writes) => {
                let retry: Option<$crate::retry::Retry> = $retry;
                let writes = (retry != Some($crate::retry::Retry::Read)).then_some(writes);
                run(pool, $crate::store::Home::Task, writes, retry, move |mut obj| async move {
                    #[allow(unused_imports)]
                    use self::pg as $q;
                    let $conn: &mut pg::Conn = &mut obj;
                    $body
                })
                .await
            }
            Database::Sqlite(pool, writer) => {
                let retry: Option<$crate::retry::Retry> = $retry;
                let (pool, home, writes) = if retry == Some($crate::retry::Retry::Read) {
                    (pool, $crate::store::Home::Blocking, None)
                } else {
                    (writer.pool(), $crate::store::Home::Writer(writer), Some(&writer.writes))
                };
                run(pool, home, writes, retry, move |mut obj| async move {
                    #[allow(unused_imports)]
                    use self::sqlite as $q;
                    let $conn: &mut sqlite::Conn = &mut obj;
                    $body
                })
                .await
            }
        }
    };
}

// Declared after `on_db!`, which they use.
mod events;
mod stock;

pub use self::events::{DIRECTIVES_CHANNEL, DirectiveWakeups, Wakeups};
pub use self::stock::StockLevel;

fn sessions(rows: Vec<(SessionRow, String)>) -> StoreResult<Vec<Session>> {
    rows.into_iter().map(|(row, code)| row.into_session(code)).collect()
}

fn directives(rows: Vec<rows::DirectiveRow>) -> StoreResult<Vec<Directive>> {
    rows.into_iter().map(rows::DirectiveRow::into_directive).collect()
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl ChannelStore for Database {
    async fn channel_by_code(&self, code: &str) -> StoreResult<Option<Channel>> {
        let code = code.to_owned();
        on_db!(read self, |conn, q| {
            q::channel_by_code(conn, &code).await.map_err(db_error)?.map(ChannelRow::into_channel).transpose()
        })
    }

    async fn list_channels(&self) -> StoreResult<Vec<Channel>> {
        on_db!(read self, |conn, q| {
            q::list_channels(conn).await.map_err(db_error)?.into_iter().map(ChannelRow::into_channel).collect()
        })
    }

    async fn upsert_channel(&self, spec: &ChannelSpec, now: DateTime<Utc>) -> StoreResult<Channel> {
        let values = ChannelValues::new(spec, now)?;
        on_db!(self, |conn, q| q::upsert_channel(conn, values).await.map_err(db_error)?.into_channel())
    }
}

impl SessionStore for Database {
    async fn load_session(&self, channel_code: &str, session_key: &str) -> StoreResult<Option<(Channel, Session)>> {
        let (channel_code, session_key) = (channel_code.to_owned(), session_key.to_owned());
        on_db!(read self, |conn, q| {
            let Some((channel, session)) =
                q::load_session(conn, &channel_code, &session_key).await.map_err(db_error)?
            else {
                return Ok(None);
            };
            let channel = channel.into_channel()?;
            let session = session.into_session(channel.code.clone())?;
            Ok(Some((channel, session)))
        })
    }

    async fn sessions_by_key(&self, session_key: &str) -> StoreResult<Vec<Session>> {
        let session_key = session_key.to_owned();
        on_db!(read self, |conn, q| sessions(q::sessions_by_key(conn, &session_key).await.map_err(db_error)?))
    }

    async fn open_session_by_handle(
        &self,
        channel_id: i64,
        handle_type: &str,
        handle_ref: &str,
    ) -> StoreResult<Option<Session>> {
        let (handle_type, handle_ref) = (handle_type.to_owned(), handle_ref.to_owned());
        on_db!(read self, |conn, q| {
            q::open_session_by_handle(conn, channel_id, &handle_type, &handle_ref)
                .await
                .map_err(db_error)?
                .map(|(row, code)| row.into_session(code))
                .transpose()
        })
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<InsertSession> {
        let session = session.clone();
        on_db!(self, |conn, q| {
            match q::insert_session(conn, SessionValues::new(&session)).await {
                Ok(id) => Ok(InsertSession::Inserted(stored_session(&session, id))),
                Err(e) if violates(&e, "sessions_channel_key_uniq", "sessions.session_key") => {
                    Ok(InsertSession::KeyTaken)
                }
                Err(e) if violates(&e, "sessions_open_handle_uniq", "sessions.handle_ref") => {
                    // Both constraints may be violated; like the reference store, report the key.
                    let key_taken = q::session_key_exists(conn, session.channel_id, &session.session_key)
                        .await
                        .map_err(db_error)?;
                    Ok(if key_taken { InsertSession::KeyTaken } else { InsertSession::HandleTaken })
                }
                Err(e) => Err(db_error(e)),
            }
        })
    }

    async fn update_session(
        &self,
        session: &Session,
        expected_version: i64,
        directives: &[NewDirective],
    ) -> StoreResult<bool> {
        let id = session.id;
        let values = SessionValues::new(session);
        let directives = directive_values(directives, session.updated_at);
        let queues = !directives.is_empty();
        let applied = on_db!(self, |conn, q| q::update_session(conn, id, expected_version, values, directives)
            .await
            .map_err(db_error))?;
        if applied && queues {
            self.writes().queued();
        }
        Ok(applied)
    }

    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> StoreResult<Page<Session>> {
        let (filter, page) = (filter.clone(), *page);
        let rows =
            on_db!(read self, |conn, q| sessions(q::list_sessions(conn, filter, page).await.map_err(db_error)?))?;
        Ok(Page::from_rows(rows, &page, |s| (s.opened_at, s.id)))
    }

    async fn abandon_idle_sessions(&self, idle_since: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<u64> {
        on_db!(self, |conn, q| Ok(affected(q::abandon_idle_sessions(conn, idle_since, now).await.map_err(db_error)?)))
    }
}

impl OrderStore for Database {
    async fn commit(&self, plan: &CommitPlan) -> StoreResult<CommitWrite> {
        let plan = Arc::new(plan.clone());
        let queues = !plan.directives.is_empty();
        let written = on_db!(replayable self, |conn, q| {
            match q::commit(conn, plan.clone()).await {
                Ok(id) => Ok(CommitWrite::Committed(stored_order(&plan.order, id))),
                Err(CommitAbort::SessionChanged) => Ok(CommitWrite::SessionChanged),
                Err(CommitAbort::KeyTaken) => Ok(CommitWrite::KeyTaken),
                Err(CommitAbort::RefTaken) => Ok(CommitWrite::RefTaken),
                Err(CommitAbort::Db(e)) => Err(db_error(e)),
            }
        })?;
        if queues && matches!(written, CommitWrite::Committed(_)) {
            self.writes().queued();
        }
        Ok(written)
    }

    async fn order_by_ref(&self, order_ref: &str) -> StoreResult<Option<(Channel, Order)>> {
        let order_ref = order_ref.to_owned();
        on_db!(read self, |conn, q| {
            let Some((channel, order)) = q::order_by_ref(conn, &order_ref).await.map_err(db_error)? else {
                return Ok(None);
            };
            let channel = channel.into_channel()?;
            let order = order.into_order(channel.code.clone())?;
            Ok(Some((channel, order)))
        })
    }

    async fn order_for_session(&self, channel_id: i64, session_key: &str) -> StoreResult<Option<Order>> {
        let session_key = session_key.to_owned();
        on_db!(read self, |conn, q| {
            q::order_for_session(conn, channel_id, &session_key)
                .await
                .map_err(db_error)?
                .map(|(row, code): (OrderRow, String)| row.into_order(code))
                .transpose()
        })
    }

    async fn transition(&self, plan: &TransitionPlan) -> StoreResult<bool> {
        let plan = plan.clone();
        on_db!(tx self, |conn, q| {
            let mut attempt = 0;
            loop {
                match q::transition(conn, plan.clone()).await {
                    Ok(applied) => return Ok(applied),
                    // A concurrent `append_event` took the next seq: take the one after.
                    Err(e)
                        if attempt < SEQ_RETRIES && violates(&e, "order_events_order_seq_uniq", "order_events.seq") =>
                    {
                        attempt += 1;
                    }
                    Err(e) => return Err(db_error(e)),
                }
            }
        })
    }

    async fn append_event(&self, order_id: i64, event: &NewEvent) -> StoreResult<OrderEvent> {
        let event = event.clone();
        on_db!(self, |conn, q| {
            let mut attempt = 0;
            loop {
                match q::append_event(conn, order_id, event.clone()).await {
                    Ok(seq) => {
                        return Ok(OrderEvent {
                            seq: i64::from(seq),
                            event_type: event.event_type,
                            actor: event.actor,
                            payload: event.payload,
                            created_at: ts(event.created_at),
                        });
                    }
                    Err(e)
                        if attempt < SEQ_RETRIES && violates(&e, "order_events_order_seq_uniq", "order_events.seq") =>
                    {
                        attempt += 1;
                    }
                    Err(e) => return Err(db_error(e)),
                }
            }
        })
    }

    async fn list_events(&self, order_id: i64) -> StoreResult<Vec<OrderEvent>> {
        on_db!(read self, |conn, q| {
            q::list_events(conn, order_id)
                .await
                .map_err(db_error)?
                .into_iter()
                .map(rows::EventRow::into_event)
                .collect()
        })
    }

    async fn list_orders(&self, filter: &OrderFilter, page: &PageRequest) -> StoreResult<Page<OrderSummary>> {
        let (filter, page) = (filter.clone(), *page);
        let rows = on_db!(read self, |conn, q| q::list_orders(conn, filter, page).await.map_err(db_error))?;
        let rows: Vec<OrderSummary> = rows.into_iter().map(OrderSummary::from).collect();
        Ok(Page::from_rows(rows, &page, |o| (o.created_at, o.id)))
    }

    async fn orders_after(&self, since: i64, limit_: usize) -> StoreResult<Vec<OrderSummary>> {
        let n = limit(limit_);
        let rows = on_db!(read self, |conn, q| q::orders_after(conn, since, n).await.map_err(db_error))?;
        Ok(rows.into_iter().map(OrderSummary::from).collect())
    }

    async fn max_order_id(&self) -> StoreResult<i64> {
        on_db!(read self, |conn, q| q::max_order_id(conn).await.map_err(db_error))
    }
}

impl DirectiveQueue for Database {
    async fn enqueue(&self, directives: &[NewDirective]) -> StoreResult<Vec<i64>> {
        let Some(first) = directives.first() else {
            return Ok(Vec::new());
        };
        // As the reference store: the batch is stamped with the first directive's availability.
        let values = directive_values(directives, first.available_at);
        let ids = on_db!(self, |conn, q| q::insert_directives(conn, values).await.map_err(db_error))?;
        self.writes().queued();
        Ok(ids)
    }

    async fn claim(&self, topics: Option<&[String]>, limit_: usize, now: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
        if limit_ == 0 {
            return Ok(Vec::new());
        }
        let (topics, n) = (topics.map(<[String]>::to_vec), limit(limit_));
        on_db!(self, |conn, q| directives(q::claim(conn, topics, n, now).await.map_err(db_error)?))
    }

    async fn finish(&self, updates: &[DirectiveUpdate], now: DateTime<Utc>) -> StoreResult<u64> {
        if updates.is_empty() {
            return Ok(0);
        }
        let updates = updates.to_vec();
        on_db!(self, |conn, q| Ok(affected(q::finish(conn, updates, now).await.map_err(db_error)?)))
    }

    async fn stuck_directives(&self, seen_before: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
        on_db!(read self, |conn, q| directives(q::stuck_directives(conn, seen_before).await.map_err(db_error)?))
    }

    async fn requeue(&self, update: &DirectiveUpdate, now: DateTime<Utc>) -> StoreResult<bool> {
        let update = update.clone();
        let requeued = on_db!(self, |conn, q| q::requeue(conn, update, now).await.map_err(db_error))?;
        if requeued {
            self.writes().queued();
        }
        Ok(requeued)
    }

    async fn directive(&self, id: i64) -> StoreResult<Option<Directive>> {
        on_db!(read self, |conn, q| {
            q::directive(conn, id).await.map_err(db_error)?.map(rows::DirectiveRow::into_directive).transpose()
        })
    }

    async fn list_directives(&self, filter: &DirectiveFilter, page: &PageRequest) -> StoreResult<Page<Directive>> {
        let (filter, page) = (filter.clone(), *page);
        let rows =
            on_db!(read self, |conn, q| directives(q::list_directives(conn, filter, page).await.map_err(db_error)?))?;
        Ok(Page::from_rows(rows, &page, |d| (d.created_at, d.id)))
    }

    async fn directive_counts(&self) -> StoreResult<Vec<(DirectiveStatus, i64)>> {
        on_db!(read self, |conn, q| {
            q::directive_counts(conn)
                .await
                .map_err(db_error)?
                .into_iter()
                .map(|(status, n)| {
                    DirectiveStatus::parse(&status)
                        .map(|s| (s, n))
                        .ok_or_else(|| StoreError::Corrupt(format!("directive status: {status}")))
                })
                .collect()
        })
    }
}

impl IdempotencyStore for Database {
    async fn idempotency_record(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        on_db!(read self, |conn, q| {
            q::idempotency_record(conn, &scope, &key)
                .await
                .map_err(db_error)?
                .map(rows::IdempotencyRow::into_record)
                .transpose()
        })
    }

    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> StoreResult<bool> {
        let values = IdempotencyValues::new(record);
        on_db!(
            self,
            |conn, q| Ok(q::upsert_idempotency(conn, values, KeyRule::UnlessDone).await.map_err(db_error)? > 0)
        )
    }

    async fn delete_expired_idempotency(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        on_db!(self, |conn, q| Ok(affected(q::delete_expired_idempotency(conn, now).await.map_err(db_error)?)))
    }
}

impl TokenStore for Database {
    async fn create_token(&self, token: &ApiToken) -> StoreResult<bool> {
        let values = TokenValues::new(token);
        on_db!(self, |conn, q| match q::create_token(conn, values).await {
            Ok(_) => Ok(true),
            Err(e) if violates(&e, "api_tokens_name_key", "api_tokens.name") => Ok(false),
            Err(e) => Err(db_error(e)),
        })
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let token_hash = token_hash.to_owned();
        on_db!(read self, |conn, q| {
            q::token_by_hash(conn, &token_hash).await.map_err(db_error)?.map(rows::TokenRow::into_token).transpose()
        })
    }

    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        on_db!(read self, |conn, q| {
            q::list_tokens(conn).await.map_err(db_error)?.into_iter().map(rows::TokenRow::into_token).collect()
        })
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let name = name.to_owned();
        on_db!(self, |conn, q| q::revoke_token(conn, &name, now).await.map_err(db_error))
    }
}

impl WebhookStore for Database {
    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<Webhook> {
        let values = rows::WebhookValues::new(webhook);
        on_db!(self, |conn, q| q::create_webhook(conn, values).await.map_err(db_error)?.into_webhook())
    }

    async fn webhook(&self, id: i64) -> StoreResult<Option<Webhook>> {
        on_db!(read self, |conn, q| {
            q::webhook(conn, id).await.map_err(db_error)?.map(rows::WebhookRow::into_webhook).transpose()
        })
    }

    async fn list_webhooks(&self, page: &PageRequest) -> StoreResult<Page<Webhook>> {
        let page = *page;
        let rows: Vec<Webhook> = on_db!(read self, |conn, q| {
            q::list_webhooks(conn, page).await.map_err(db_error)?.into_iter().map(rows::WebhookRow::into_webhook).collect()
        })?;
        Ok(Page::from_rows(rows, &page, |w| (w.created_at, w.id)))
    }

    async fn active_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        on_db!(read self, |conn, q| {
            q::active_webhooks(conn).await.map_err(db_error)?.into_iter().map(rows::WebhookRow::into_webhook).collect()
        })
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<bool> {
        let values = rows::WebhookValues::new(webhook);
        on_db!(self, |conn, q| q::update_webhook(conn, values).await.map_err(db_error))
    }

    async fn delete_webhook(&self, id: i64) -> StoreResult<bool> {
        on_db!(self, |conn, q| q::delete_webhook(conn, id).await.map_err(db_error))
    }

    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> StoreResult<Vec<i64>> {
        let values = rows::DeliveryValues::new(deliveries);
        let ids = on_db!(tx self, |conn, q| q::enqueue_deliveries(conn, values).await.map_err(db_error))?;
        if !ids.is_empty() {
            self.writes().queued();
        }
        Ok(ids)
    }

    async fn list_deliveries(&self, webhook_id: i64, page: &PageRequest) -> StoreResult<Page<Delivery>> {
        let page = *page;
        let rows: Vec<Delivery> = on_db!(read self, |conn, q| {
            q::list_deliveries(conn, webhook_id, page).await.map_err(db_error)?.into_iter().map(rows::into_delivery).collect()
        })?;
        Ok(Page::from_rows(rows, &page, |d| (d.created_at, d.id)))
    }

    async fn dispatch_position(&self) -> StoreResult<i64> {
        on_db!(read self, |conn, q| q::dispatch_position(conn).await.map_err(db_error))
    }

    async fn advance_dispatch(&self, from: i64, to: i64, deliveries: &[NewDelivery]) -> StoreResult<bool> {
        let values = rows::DeliveryValues::new(deliveries);
        let now = Utc::now();
        let advanced =
            on_db!(tx self, |conn, q| q::advance_dispatch(conn, from, to, values, now).await.map_err(db_error))?;
        if advanced && !deliveries.is_empty() {
            self.writes().queued();
        }
        Ok(advanced)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::test_support::TestDb;

    /// How many calls were inside at once, at most.
    #[derive(Clone, Default)]
    struct Overlap {
        inside: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Overlap {
        /// Stays inside for a while; says which thread it ran on.
        fn visit(&self) -> (Option<String>, std::thread::ThreadId) {
            let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            self.inside.fetch_sub(1, Ordering::SeqCst);
            (std::thread::current().name().map(str::to_owned), std::thread::current().id())
        }
    }

    /// On SQLite, writes run on the writer's thread one after another, reads side by side on
    /// other threads, and neither on the caller's (an async thread).
    #[tokio::test(flavor = "current_thread")]
    async fn sqlite_writes_run_on_the_writer_one_at_a_time_and_reads_beside_it() {
        let test_db = TestDb::sqlite().await;
        let db: &Database = &test_db;
        let caller = std::thread::current().id();

        let writes = Overlap::default();
        let calls = (0..8).map(|_| {
            let writes = writes.clone();
            async move { on_db!(db, |_conn, _q| Ok(writes.visit())) }
        });
        for ran in futures_util::future::join_all(calls).await {
            let (name, thread) = ran.unwrap();
            assert_eq!(name.as_deref(), Some("omniman-sqlite-writer"));
            assert_ne!(thread, caller);
        }
        assert_eq!(writes.most.load(Ordering::SeqCst), 1, "one write at a time");

        let reads = Overlap::default();
        let calls = (0..4).map(|_| {
            let reads = reads.clone();
            async move { on_db!(read db, |_conn, _q| Ok(reads.visit())) }
        });
        for ran in futures_util::future::join_all(calls).await {
            let (name, thread) = ran.unwrap();
            assert_ne!(name.as_deref(), Some("omniman-sqlite-writer"));
            assert_ne!(thread, caller);
        }
        assert!(reads.most.load(Ordering::SeqCst) > 1, "reads do not queue behind each other");
    }

    /// Writes queued behind a running one show in the pool's status as waiting, until they
    /// start.
    #[tokio::test(flavor = "current_thread")]
    async fn queued_sqlite_writes_show_as_waiting() {
        let test_db = TestDb::sqlite().await;
        let running = {
            let db: Database = test_db.db().clone();
            tokio::spawn(async move {
                on_db!(&db, |_conn, _q| {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                })
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let db: Database = test_db.db().clone();
                tokio::spawn(async move { on_db!(&db, |_conn, _q| Ok(())) })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(test_db.pool_status().waiting, 3, "three writes wait behind the running one");
        running.await.unwrap().unwrap();
        for write in queued {
            write.await.unwrap().unwrap();
        }
        assert_eq!(test_db.pool_status().waiting, 0);
    }

    /// A write that panics panics its caller; the writer goes on with the next write.
    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_sqlite_write_leaves_the_writer_running() {
        let test_db = TestDb::sqlite().await;
        let db: Database = test_db.db().clone();
        let panicking = tokio::spawn(async move {
            on_db!(&db, |_conn, _q| {
                assert!(!std::hint::black_box(true), "a write that panics");
                Ok(())
            })
        });
        assert!(panicking.await.unwrap_err().is_panic(), "the caller gets the panic");

        let db: &Database = &test_db;
        let thread = on_db!(db, |_conn, _q| Ok(std::thread::current().name().map(str::to_owned))).unwrap();
        assert_eq!(thread.as_deref(), Some("omniman-sqlite-writer"));
        let spec = omniman_core::channel::ChannelSpec::new("after-panic");
        db.upsert_channel(&spec, chrono::Utc::now()).await.expect("the writer still writes");
    }
}

//! Connection pools: [`Database`] holds a deadpool pool of PostgreSQL or SQLite connections.

use std::sync::Arc;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::Hook;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::config::{Backend, DatabaseUrl, SQLITE_BUSY_TIMEOUT, StorageConfig};
use crate::counter::StatementCounter;
use crate::error::StorageError;
use crate::retry::{Watch, Watched};

/// The async SQLite connection: Diesel's `SqliteConnection`, whose statements run on the thread
/// that awaits them ([`InPlace`]).
///
/// The store runs each of its calls on a thread of its own (a blocking thread for a read, the
/// [`SqliteWriter`] for a write), so that a call's statements cost no hop between threads
/// (docs/storage.md, "How the ports are written"). A connection taken with
/// [`Database::get_sqlite`] blocks the thread that runs its statements likewise: fine in a test
/// or a tool, not on a server's async threads.
pub type AsyncSqliteConnection = SyncConnectionWrapper<diesel::SqliteConnection, InPlace>;

/// Runs a SQLite connection's statements at once, on the calling thread (diesel-async's
/// [`SpawnBlocking`], which would otherwise send each statement to a blocking thread).
#[derive(Clone, Copy, Debug, Default)]
pub struct InPlace;

impl SpawnBlocking for InPlace {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        Box::pin(std::future::ready(Ok(task())))
    }

    fn get_runtime() -> InPlace {
        InPlace
    }
}

/// Runs `task` on `conn`'s SQLite connection on one of Tokio's blocking threads.
pub(crate) async fn sqlite_blocking<R>(
    mut conn: SqliteConn,
    task: impl FnOnce(&mut diesel::SqliteConnection) -> diesel::QueryResult<R> + Send + 'static,
) -> Result<R, StorageError>
where
    R: Send + 'static,
{
    let done = tokio::task::spawn_blocking(move || {
        // In place: the future is ready when made.
        futures_util::FutureExt::now_or_never(conn.spawn_blocking(task)).expect("SQLite statements run in place")
    });
    Ok(joined(done).await.map_err(|e| StorageError::Pool(format!("SQLite task stopped: {e}")))??)
}

/// The output of `task`, which runs to its end: a panic in it is resumed here, in its caller; a
/// task stopped otherwise (its runtime shutting down) is an error that says so.
pub(crate) async fn joined<T>(task: tokio::task::JoinHandle<T>) -> Result<T, String> {
    match task.await {
        Ok(output) => Ok(output),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(e.to_string()),
    }
}
/// A pool of PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;
/// A pool of SQLite connections.
pub type SqlitePool = Pool<AsyncSqliteConnection>;
/// A PostgreSQL connection checked out of a [`PgPool`] (returned to it on drop).
pub type PgConn = Object<AsyncPgConnection>;
/// A SQLite connection checked out of a [`SqlitePool`] (returned to it on drop).
pub type SqliteConn = Object<AsyncSqliteConnection>;

/// A handle on the database: a pool for one of the two backends. Cheap to clone.
#[derive(Clone)]
pub enum Database {
    /// PostgreSQL: the pool, and the count of this process's writes.
    Postgres(PgPool, Writes),
    /// SQLite: the readers' pool, and the thread that runs the writes one at a time.
    Sqlite(SqlitePool, SqliteWriter),
}

/// Counts the write calls of this process, so that readers of the event log in this process
/// wake up after each one (`Database::event_wakeups`), and the writes that queued directives,
/// so that this process's idle workers wake up after those only (`Database::directive_wakeups`).
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Writes {
    calls: Arc<tokio::sync::watch::Sender<u64>>,
    queued: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Writes {
    fn default() -> Writes {
        Writes {
            calls: Arc::new(tokio::sync::watch::Sender::new(0)),
            queued: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl Writes {
    /// Records that a write call ended (committed or not: a wake-up too many costs a read).
    pub(crate) fn wrote(&self) {
        self.calls.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Records that a write committed directives for the workers (new, or queued again).
    pub(crate) fn queued(&self) {
        self.queued.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A receiver that sees each write after this call.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.calls.subscribe()
    }

    /// A receiver that sees each write that queued directives after this call.
    pub(crate) fn subscribe_queued(&self) -> tokio::sync::watch::Receiver<u64> {
        self.queued.subscribe()
    }
}

impl std::fmt::Debug for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writes").field("calls", &*self.calls.borrow()).field("queued", &*self.queued.borrow()).finish()
    }
}

/// SQLite's writer: one thread of this process that runs its writes one after another, on a
/// connection of its own.
///
/// SQLite lets one connection write at a time; another that tries waits in SQLite's busy
/// handler, which sleeps (1, 2, 5, 10 … 100 ms) and tries again. Every write port call on
/// SQLite is therefore sent to this thread, which runs each to its end before it takes the
/// next: writers queue in a channel, not in the busy handler, and while writes are queued the
/// thread goes from one to the next without waiting to be woken. Reads run on pooled
/// connections of their own on Tokio's blocking threads (WAL: readers never wait for the
/// writer). The writer's connection keeps its page cache from one write to the next, since no
/// other connection of this process writes. Transactions stay `BEGIN IMMEDIATE`, and the busy
/// timeout still covers writers in other processes (the CLI).
///
/// The thread ends when the last handle on the database is dropped. It also counts the writes
/// that went through it ([`Writes`]).
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: std::sync::mpsc::Sender<WriteJob>,
    pool: SqlitePool,
    /// Whether `pool` is the writer's own (not the readers', as for `sqlite::memory:`).
    own_pool: bool,
    /// Writes sent and not yet started.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) writes: Writes,
}

/// One write call: its future, and the runtime whose timers and sockets it may use.
struct WriteJob {
    runtime: tokio::runtime::Handle,
    call: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl SqliteWriter {
    /// Starts the writer's thread, writing on connections of `pool` (which should hold one;
    /// `own_pool`: no reader uses it).
    fn start(pool: SqlitePool, own_pool: bool) -> Result<SqliteWriter, StorageError> {
        let (jobs, queue) = std::sync::mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("omniman-sqlite-writer".to_owned())
            .spawn(move || {
                for job in queue {
                    job.runtime.block_on(job.call);
                }
            })
            .map_err(|e| StorageError::Pool(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(SqliteWriter { jobs, pool, own_pool, queued: Arc::default(), writes: Writes::default() })
    }

    /// The pool the writer's connection comes from.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Writes sent to the writer and not yet started: how far behind it is.
    pub fn queued(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `call` on the writer's thread after the writes queued before it. It is queued at
    /// once and runs to its end even if the returned future is dropped. A panic in `call` is
    /// the caller's (resumed by the returned future); the writer goes on with the next write.
    pub(crate) fn run<R, F>(&self, call: F) -> impl std::future::Future<Output = Result<R, StorageError>> + use<R, F>
    where
        R: Send + 'static,
        F: std::future::Future<Output = R> + Send + 'static,
    {
        use futures_util::FutureExt;
        let (done, answer) = tokio::sync::oneshot::channel();
        let queued = Arc::clone(&self.queued);
        queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call = async move {
            queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let result = std::panic::AssertUnwindSafe(call).catch_unwind().await;
            // The caller may have gone; the write is done either way.
            let _ = done.send(result);
        };
        let job = WriteJob { runtime: tokio::runtime::Handle::current(), call: Box::pin(call) };
        // A failed send drops the job, and with it `done`: the answer below says so.
        if self.jobs.send(job).is_err() {
            self.queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        async move {
            match answer.await {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => Err(StorageError::Pool("the SQLite writer thread has stopped".to_owned())),
            }
        }
    }
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").finish_non_exhaustive()
    }
}

/// How a pool's connections are used right now (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// Connections open now (idle or checked out).
    pub open: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Callers waiting for a connection (on SQLite, writes queued for the writer too).
    pub waiting: usize,
}

impl PoolStatus {
    /// Connections checked out now.
    pub fn in_use(&self) -> usize {
        self.open.saturating_sub(self.idle)
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self {
            Database::Postgres(pool, _) => pool.status(),
            Database::Sqlite(pool, _) => pool.status(),
        };
        f.debug_struct("Database")
            .field("backend", &self.backend())
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

/// Statements run on every new SQLite connection. `busy_timeout` comes first so that the
/// switch to WAL waits for a concurrent new connection instead of failing.
pub fn sqlite_connection_pragmas() -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
        SQLITE_BUSY_TIMEOUT.as_millis()
    )
}

impl Database {
    /// This process's writes on the database (see [`Writes`]).
    pub(crate) fn writes(&self) -> &Writes {
        match self {
            Database::Postgres(_, writes) => writes,
            Database::Sqlite(_, writer) => &writer.writes,
        }
    }

    /// Open a pool for `config` and check that one connection can be made.
    ///
    /// SQLite connections get [`sqlite_connection_pragmas`]; PostgreSQL connections get the
    /// configured `statement_timeout`. Does not run migrations: see
    /// [`run_migrations`](crate::run_migrations).
    pub async fn connect(config: &StorageConfig) -> Result<Self, StorageError> {
        let url = config.url()?;
        let size = config.effective_pool_size(&url);
        let db = match &url {
            DatabaseUrl::Postgres(pg_url) => {
                Database::Postgres(build_pg_pool(pg_url.clone(), config, size)?, Writes::default())
            }
            DatabaseUrl::SqliteFile(path) => {
                let path = path
                    .to_str()
                    .ok_or_else(|| StorageError::InvalidUrl(format!("SQLite path is not UTF-8: {}", path.display())))?;
                let writer = SqliteWriter::start(build_sqlite_pool(path.to_owned(), config, 1)?, true)?;
                Database::Sqlite(build_sqlite_pool(path.to_owned(), config, size)?, writer)
            }
            DatabaseUrl::SqliteMemory => {
                // One database, on its one connection: the writer shares it with the readers.
                let pool = build_sqlite_pool(":memory:".to_owned(), config, 1)?;
                Database::Sqlite(pool.clone(), SqliteWriter::start(pool, false)?)
            }
        };
        // Fail now rather than on the first request.
        db.ping().await?;
        Ok(db)
    }

    /// The engine behind this handle.
    pub fn backend(&self) -> Backend {
        match self {
            Database::Postgres(..) => Backend::Postgres,
            Database::Sqlite(..) => Backend::Sqlite,
        }
    }

    /// How the pool's connections are used right now.
    ///
    /// ```no_run
    /// # async fn demo(db: &omniman_storage::Database) {
    /// let status = db.pool_status();
    /// assert!(status.in_use() <= status.max_size);
    /// # }
    /// ```
    ///
    /// On SQLite it counts the readers' pool and the writer's connection together, and the
    /// writes queued for the writer as waiting (see [`SqliteWriter`]).
    pub fn pool_status(&self) -> PoolStatus {
        let of = |status: deadpool::managed::Status| PoolStatus {
            max_size: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        };
        match self {
            Database::Postgres(pool, _) => of(pool.status()),
            Database::Sqlite(pool, writer) => {
                let readers = of(pool.status());
                let writer_pool = if writer.own_pool { of(writer.pool.status()) } else { PoolStatus::default() };
                PoolStatus {
                    max_size: readers.max_size + writer_pool.max_size,
                    open: readers.open + writer_pool.open,
                    idle: readers.idle + writer_pool.idle,
                    waiting: readers.waiting + writer.queued(),
                }
            }
        }
    }

    /// Check that the database answers a statement on a pooled connection (opened if the pool
    /// has none).
    pub async fn ping(&self) -> Result<(), StorageError> {
        use diesel_async::SimpleAsyncConnection;
        // A statement, not only a checkout: pooled connections are not checked when handed out.
        match self {
            Database::Postgres(pool, _) => checkout(pool).await?.batch_execute("SELECT 1").await?,
            Database::Sqlite(pool, _) => {
                sqlite_blocking(checkout(pool).await?, |conn| {
                    diesel::connection::SimpleConnection::batch_execute(conn, "SELECT 1")
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Check out a PostgreSQL connection (`None` on SQLite). It counts its statements into the
    /// current [`StatementCounter`] scope, if any.
    pub async fn get_pg(&self) -> Result<Option<PgConn>, StorageError> {
        match self {
            Database::Postgres(pool, _) => checkout(pool).await.map(Some),
            Database::Sqlite(..) => Ok(None),
        }
    }

    /// Check out a SQLite connection (`None` on PostgreSQL). It counts its statements into the
    /// current [`StatementCounter`] scope, if any.
    pub async fn get_sqlite(&self) -> Result<Option<SqliteConn>, StorageError> {
        match self {
            Database::Sqlite(pool, _) => checkout(pool).await.map(Some),
            Database::Postgres(..) => Ok(None),
        }
    }

    /// Close the pool: idle connections are closed now, checked-out ones when returned.
    pub fn close(&self) {
        match self {
            Database::Postgres(pool, _) => pool.close(),
            Database::Sqlite(pool, writer) => {
                pool.close();
                writer.pool.close();
            }
        }
    }
}

async fn checkout<C>(pool: &Pool<C>) -> Result<Object<C>, StorageError>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>:
        deadpool::managed::Manager<Type = C, Error = diesel_async::pooled_connection::PoolError>,
{
    checkout_with(pool, StatementCounter::current()).await
}

/// Checks out a connection that counts its statements into `counter` (if any).
pub(crate) async fn checkout_with<C>(
    pool: &Pool<C>,
    counter: Option<StatementCounter>,
) -> Result<Object<C>, StorageError>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>:
        deadpool::managed::Manager<Type = C, Error = diesel_async::pooled_connection::PoolError>,
{
    checkout_watched(pool, counter, None).await
}

/// Checks out a connection that counts its statements into `counter` and reports what happens
/// on it to `watch` (see `crate::retry`).
pub(crate) async fn checkout_watched<C>(
    pool: &Pool<C>,
    counter: Option<StatementCounter>,
    watch: Option<std::sync::Arc<Watch>>,
) -> Result<Object<C>, StorageError>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>:
        deadpool::managed::Manager<Type = C, Error = diesel_async::pooled_connection::PoolError>,
{
    let mut conn = pool.get().await?;
    if counter.is_some() || watch.is_some() {
        conn.set_instrumentation(Watched { counter: counter.map(|c| c.instrumentation()), watch });
    }
    Ok(conn)
}

/// Instrumentation that ignores everything (what a connection has outside a counter scope).
struct Silent;

impl Instrumentation for Silent {
    fn on_connection_event(&mut self, _event: InstrumentationEvent<'_>) {}
}

/// Before a connection is handed out again, drop the previous checkout's counter so that the
/// pool's own liveness check is not counted against it.
fn reset_instrumentation_hook<C>() -> Hook<AsyncDieselConnectionManager<C>>
where
    C: diesel_async::pooled_connection::PoolableConnection + Send + 'static,
    AsyncDieselConnectionManager<C>:
        deadpool::managed::Manager<Type = C, Error = diesel_async::pooled_connection::PoolError>,
{
    Hook::sync_fn(|conn: &mut C, _| {
        conn.set_instrumentation(Silent);
        Ok(())
    })
}

fn build_pg_pool(url: String, config: &StorageConfig, size: usize) -> Result<PgPool, StorageError> {
    let connect_timeout = config.connect_timeout;
    let statement_timeout = config.statement_timeout;
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    // `SELECT 1` before a pooled connection is reused: one extra round trip per checkout, in
    // exchange for never handing out a connection the server closed (restart, idle timeout).
    // Without it (the default), a connection known closed is still dropped here, and one lost
    // unnoticed fails its first statement: the call is retried where safe (`crate::retry`).
    manager_config.recycling_method =
        if config.check_on_checkout { RecyclingMethod::Verified } else { RecyclingMethod::Fast };
    manager_config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move {
            let mut conn =
                tokio::time::timeout(connect_timeout, AsyncPgConnection::establish(&url)).await.map_err(|_| {
                    diesel::ConnectionError::BadConnection(format!("timed out after {connect_timeout:?}"))
                })??;
            let setup = match statement_timeout {
                Some(timeout) => format!("SET TIME ZONE 'UTC'; SET statement_timeout = {}", timeout.as_millis().max(1)),
                None => "SET TIME ZONE 'UTC'".to_owned(),
            };
            conn.batch_execute(&setup).await.map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::new_with_config(url, manager_config);
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.wait_timeout))
        .create_timeout(Some(config.connect_timeout + Duration::from_secs(1)))
        .recycle_timeout(Some(config.connect_timeout))
        .pre_recycle(reset_instrumentation_hook())
        .build()
        .map_err(|e| StorageError::Pool(e.to_string()))
}

fn build_sqlite_pool(path: String, config: &StorageConfig, size: usize) -> Result<SqlitePool, StorageError> {
    let mut manager_config = ManagerConfig::<AsyncSqliteConnection>::default();
    // A local file cannot drop the connection; no liveness query needed.
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(|url| {
        let url = url.to_owned();
        Box::pin(async move {
            // Opening the file and switching it to WAL may wait for another connection: off
            // the async threads.
            let opened = tokio::task::spawn_blocking(move || {
                use diesel::Connection;
                use diesel::connection::SimpleConnection;
                let mut conn = diesel::SqliteConnection::establish(&url)?;
                conn.batch_execute(&sqlite_connection_pragmas())
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok::<_, diesel::ConnectionError>(conn)
            });
            let conn = opened.await.map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))??;
            Ok(AsyncSqliteConnection::with_runtime(conn, InPlace))
        })
    });
    let manager = AsyncDieselConnectionManager::new_with_config(path, manager_config);
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.wait_timeout))
        .create_timeout(Some(config.connect_timeout))
        .pre_recycle(reset_instrumentation_hook())
        .build()
        .map_err(|e| StorageError::Pool(e.to_string()))
}

//! Embedded schema migrations (`migrations/postgres`, `migrations/sqlite`).

use diesel::migration::MigrationVersion;
use diesel_async::SimpleAsyncConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::StorageError;
use crate::pool::{AsyncSqliteConnection, Database};

/// The PostgreSQL migrations, embedded at build time.
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// The SQLite migrations, embedded at build time.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Key of the PostgreSQL advisory lock held while migrating, so that several processes
/// starting at once apply each migration exactly once.
const PG_MIGRATION_LOCK: i64 = 0x006f_6d6e_696d_616e; // "omniman"

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn versions(applied: Vec<MigrationVersion<'_>>) -> Vec<String> {
    applied.into_iter().map(|v| v.to_string()).collect()
}

/// Apply every pending migration for the database's backend; returns the versions applied
/// (empty when the schema was up to date).
pub async fn run_migrations(db: &Database) -> Result<Vec<String>, StorageError> {
    with_harness(db, |harness| {
        harness
            .run_pending_migrations(match harness.backend() {
                HarnessBackend::Postgres => PG_MIGRATIONS,
                HarnessBackend::Sqlite => SQLITE_MIGRATIONS,
            })
            .map(versions)
    })
    .await
}

/// Revert every applied migration (drops the schema); returns the versions reverted.
/// For tests and `xtask db reset`.
pub async fn revert_all_migrations(db: &Database) -> Result<Vec<String>, StorageError> {
    with_harness(db, |harness| {
        harness
            .revert_all_migrations(match harness.backend() {
                HarnessBackend::Postgres => PG_MIGRATIONS,
                HarnessBackend::Sqlite => SQLITE_MIGRATIONS,
            })
            .map(versions)
    })
    .await
}

/// The versions of the migrations applied to the database, oldest first.
pub async fn applied_migrations(db: &Database) -> Result<Vec<String>, StorageError> {
    with_harness(db, |harness| {
        let mut applied = harness.applied_migrations().map(versions)?;
        applied.sort();
        Ok(applied)
    })
    .await
}

#[derive(Clone, Copy)]
enum HarnessBackend {
    Postgres,
    Sqlite,
}

/// A sync migration harness over either backend's connection.
enum Harness<'a> {
    Postgres(&'a mut AsyncConnectionWrapper<diesel_async::AsyncPgConnection>),
    Sqlite(&'a mut diesel::SqliteConnection),
}

impl Harness<'_> {
    fn backend(&self) -> HarnessBackend {
        match self {
            Harness::Postgres(_) => HarnessBackend::Postgres,
            Harness::Sqlite(_) => HarnessBackend::Sqlite,
        }
    }

    fn run_pending_migrations(&mut self, source: EmbeddedMigrations) -> Result<Vec<MigrationVersion<'_>>, BoxError> {
        match self {
            Harness::Postgres(conn) => conn.run_pending_migrations(source),
            Harness::Sqlite(conn) => conn.run_pending_migrations(source),
        }
    }

    fn revert_all_migrations(&mut self, source: EmbeddedMigrations) -> Result<Vec<MigrationVersion<'_>>, BoxError> {
        match self {
            Harness::Postgres(conn) => conn.revert_all_migrations(source),
            Harness::Sqlite(conn) => conn.revert_all_migrations(source),
        }
    }

    fn applied_migrations(&mut self) -> Result<Vec<MigrationVersion<'static>>, BoxError> {
        match self {
            Harness::Postgres(conn) => conn.applied_migrations(),
            Harness::Sqlite(conn) => conn.applied_migrations(),
        }
    }
}

/// Run `task` with a blocking migration harness, off the async threads.
///
/// PostgreSQL: a connection is taken out of the pool (and closed afterwards), its statement
/// timeout lifted, and a session advisory lock held for the duration. SQLite: the task runs
/// on a pooled connection's blocking thread.
async fn with_harness<F>(db: &Database, task: F) -> Result<Vec<String>, StorageError>
where
    F: FnOnce(&mut Harness<'_>) -> Result<Vec<String>, BoxError> + Send + 'static,
{
    match db {
        Database::Postgres(pool, _) => {
            let mut conn = Object::take(pool.get().await?);
            conn.batch_execute(&format!("SET statement_timeout = 0; SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                .await?;
            let (conn, result) = tokio::task::spawn_blocking(move || {
                let mut wrapper = AsyncConnectionWrapper::<diesel_async::AsyncPgConnection>::from(conn);
                let result = task(&mut Harness::Postgres(&mut wrapper)).map_err(|e| e.to_string());
                (wrapper.into_inner(), result)
            })
            .await
            .map_err(|e| StorageError::Migration(e.to_string()))?;
            let mut conn = conn;
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})")).await?;
            result.map_err(StorageError::Migration)
        }
        Database::Sqlite(pool, _) => {
            let conn: Object<AsyncSqliteConnection> = pool.get().await?;
            crate::pool::sqlite_blocking(conn, move |inner| {
                Ok(task(&mut Harness::Sqlite(inner)).map_err(|e| e.to_string()))
            })
            .await?
            .map_err(StorageError::Migration)
        }
    }
}

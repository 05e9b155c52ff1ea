//! Throw-away migrated databases for tests (feature `test-support`).
//!
//! ```no_run
//! # async fn demo() {
//! use omniman_storage::test_support::TestDb;
//! let Some(pg) = TestDb::postgres().await else { return }; // skipped: no PostgreSQL
//! let sqlite = TestDb::sqlite().await;
//! # let _ = (pg.db(), sqlite.db());
//! # }
//! ```
//!
//! PostgreSQL: `TestDb::postgres()` creates a uniquely named database (`omniman_test_<pid>_…`)
//! on the server of `OMNIMAN_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), migrates it, and drops it when the
//! `TestDb` is dropped. Databases left behind by test processes that no longer run are dropped
//! the first time a process asks for one. If the server cannot be reached, the test is
//! skipped with a loud message on stderr (`None` is returned), except under `CI=true`, where
//! it panics: CI must run every test.
//!
//! SQLite: `TestDb::sqlite()` uses a temporary file (WAL, like production), removed on drop.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio::sync::OnceCell;

use crate::config::StorageConfig;
use crate::migrations::run_migrations;
use crate::pool::Database;

/// Environment variable naming the PostgreSQL server (any database on it) used by tests.
pub const TEST_DATABASE_URL_ENV: &str = "OMNIMAN_TEST_DATABASE_URL";
/// Used when [`TEST_DATABASE_URL_ENV`] is not set.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Prefix of the databases `TestDb::postgres` creates.
pub const TEST_DATABASE_PREFIX: &str = "omniman_test_";

static SEQ: AtomicU64 = AtomicU64::new(0);
static STALE_CLEANUP: OnceCell<()> = OnceCell::const_new();

/// A migrated database that disappears when dropped.
#[derive(Debug)]
pub struct TestDb {
    db: Database,
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite { path: PathBuf },
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}_{}_{}", std::process::id(), nanos % 1_000_000_000_000, SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The server URL tests use (from [`TEST_DATABASE_URL_ENV`] or the default).
pub fn test_database_url() -> String {
    std::env::var(TEST_DATABASE_URL_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// Whether we run under CI (`CI=true` or `CI=1`).
pub fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `url` with its database name replaced by `name`.
pub fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

async fn admin_connection(admin_url: &str) -> Result<AsyncPgConnection, String> {
    match tokio::time::timeout(Duration::from_secs(5), AsyncPgConnection::establish(admin_url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out after 5s".to_owned()),
    }
}

#[derive(QueryableByName)]
struct DbName {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Drop `omniman_test_<pid>_…` databases whose process is gone (Linux: `/proc/<pid>`).
async fn drop_stale_databases(admin: &mut AsyncPgConnection) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(names) =
        diesel::sql_query(format!("SELECT datname FROM pg_database WHERE datname LIKE '{TEST_DATABASE_PREFIX}%'"))
            .load::<DbName>(admin)
            .await
    else {
        return;
    };
    for DbName { datname } in names {
        let Some(pid) = datname
            .strip_prefix(TEST_DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)")).await;
        }
    }
}

impl TestDb {
    /// A fresh migrated PostgreSQL database, or `None` (after a `SKIPPED` message on stderr)
    /// when no server is reachable outside CI.
    ///
    /// # Panics
    /// When the server is unreachable and `CI=true`, or when creating or migrating the
    /// database fails.
    pub async fn postgres() -> Option<TestDb> {
        Self::postgres_with(|config| config).await
    }

    /// Like [`postgres`](Self::postgres), with a chance to adjust the pool configuration.
    pub async fn postgres_with(configure: impl FnOnce(StorageConfig) -> StorageConfig) -> Option<TestDb> {
        let admin_url = test_database_url();
        let mut admin = match admin_connection(&admin_url).await {
            Ok(conn) => conn,
            Err(e) => {
                assert!(
                    !running_in_ci(),
                    "PostgreSQL unreachable at {admin_url} ({e}); CI=true requires it \
                     (set {TEST_DATABASE_URL_ENV})"
                );
                // Straight to the process's stderr: the test harness captures `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "*** SKIPPED: PostgreSQL unreachable at {admin_url} ({e}); \
                     set {TEST_DATABASE_URL_ENV} to run the PostgreSQL tests ***"
                );
                return None;
            }
        };
        STALE_CLEANUP.get_or_init(|| async { drop_stale_databases(&mut admin).await }).await;
        let name = format!("{TEST_DATABASE_PREFIX}{}", unique_suffix());
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        drop(admin);

        let url = with_database_name(&admin_url, &name);
        let cleanup = Cleanup::Postgres { admin_url, name: name.clone() };
        let config = configure(StorageConfig::new(url.clone()).with_pool_size(8));
        // From here on, a panic drops the half-made database through `Drop`.
        let db = match Database::connect(&config).await {
            Ok(db) => db,
            Err(e) => {
                cleanup.run();
                panic!("connecting to test database {name}: {e}");
            }
        };
        let test_db = TestDb { db, url, cleanup };
        run_migrations(&test_db.db).await.unwrap_or_else(|e| panic!("migrating test database {name}: {e}"));
        Some(test_db)
    }

    /// A fresh migrated SQLite database in a temporary file.
    ///
    /// # Panics
    /// When the file cannot be created or migrated.
    pub async fn sqlite() -> TestDb {
        Self::sqlite_with(|config| config).await
    }

    /// Like [`sqlite`](Self::sqlite), with a chance to adjust the pool configuration.
    pub async fn sqlite_with(configure: impl FnOnce(StorageConfig) -> StorageConfig) -> TestDb {
        let path = std::env::temp_dir().join(format!("omniman-test-{}.db", unique_suffix()));
        let url = format!("sqlite://{}", path.display());
        let config = configure(StorageConfig::new(url.clone()));
        let db = Database::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("opening test database {}: {e}", path.display()));
        let test_db = TestDb { db, url, cleanup: Cleanup::Sqlite { path } };
        run_migrations(&test_db.db).await.unwrap_or_else(|e| panic!("migrating test database {}: {e}", test_db.url));
        test_db
    }

    /// The pool.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The database URL (to open more pools on the same database).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl std::ops::Deref for TestDb {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.db.close();
        self.cleanup.run();
    }
}

impl Cleanup {
    /// Best-effort removal; runs on its own thread so it works inside or outside a runtime.
    fn run(&self) {
        match self {
            Cleanup::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                let admin_url = admin_url.clone();
                let name = name.clone();
                let joined = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    runtime.block_on(async {
                        let mut admin = admin_connection(&admin_url).await?;
                        admin
                            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .await
                            .map_err(|e| e.to_string())
                    })
                })
                .join();
                if let Ok(Err(e)) = joined {
                    eprintln!("warning: could not drop a test database: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database_name;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            with_database_name("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database_name("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(with_database_name("postgresql://h:5432", "t3"), "postgresql://h:5432/t3");
    }
}

//! Helpers shared by the integration tests.

// `allow`, not `expect`: each test binary uses a different subset of these helpers, so in
// some of them nothing is dead and an `expect` would be unfulfilled.
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, TimeDelta, Utc};
use omniman_core::testing::epoch;
use omniman_storage::StorageError;

/// `secs` seconds after the shared test epoch: the time helper of every test here.
pub fn t(secs: i64) -> DateTime<Utc> {
    epoch() + TimeDelta::seconds(secs)
}

/// A fixed instant with sub-second precision (microseconds: PostgreSQL's resolution).
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:30:00.123456Z").unwrap().with_timezone(&Utc)
}

/// The storage error a Diesel error maps to.
pub fn storage(e: diesel::result::Error) -> StorageError {
    StorageError::from(e)
}

/// Generates `mod $name { sqlite(), postgres() }`: the same body against a fresh SQLite file
/// and a fresh PostgreSQL database (skipped, loudly, when PostgreSQL is unreachable outside
/// CI). In the body, `$db` is the `&Database`, `$conn` a pooled connection of that backend,
/// `$s` the backend's schema module, and `checkout!()` checks out another connection.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, |$db:ident, $conn:ident, $s:ident| $body:block) => {
        mod $name {
            // The `allow`s below stay `allow`: whether a generated body uses the import, the
            // connection or the helper macro depends on the body, so `expect` would be
            // unfulfilled in some expansions.
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                #[allow(unused_imports)]
                use omniman_storage::schema::sqlite as $s;
                let test_db = omniman_storage::test_support::TestDb::sqlite().await;
                #[allow(unused_variables)]
                let $db: &omniman_storage::Database = &test_db;
                #[allow(unused_macros)]
                macro_rules! checkout {
                    () => {
                        test_db.get_sqlite().await.unwrap().unwrap()
                    };
                }
                #[allow(unused_mut, unused_variables)]
                let mut $conn = checkout!();
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                #[allow(unused_imports)]
                use omniman_storage::schema::pg as $s;
                let Some(test_db) = omniman_storage::test_support::TestDb::postgres().await else {
                    return;
                };
                #[allow(unused_variables)]
                let $db: &omniman_storage::Database = &test_db;
                #[allow(unused_macros)]
                macro_rules! checkout {
                    () => {
                        test_db.get_pg().await.unwrap().unwrap()
                    };
                }
                #[allow(unused_mut, unused_variables)]
                let mut $conn = checkout!();
                $body
            }
        }
    };
}

/// Generates `mod $name { sqlite(), postgres() }` calling `super::$name(&TestDb)` on a fresh
/// database of each backend (PostgreSQL skipped, loudly, when unreachable outside CI).
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let test_db = omniman_storage::test_support::TestDb::sqlite().await;
                super::$name(&test_db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(test_db) = omniman_storage::test_support::TestDb::postgres().await else { return };
                super::$name(&test_db).await;
            }
        }
    )*};
}

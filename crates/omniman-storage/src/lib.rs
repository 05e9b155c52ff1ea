//! Omniman's storage: one schema on PostgreSQL (production, several instances) and SQLite
//! (embedded, one instance), through Diesel, diesel-async and deadpool.
//!
//! * [`StorageConfig`] / [`DatabaseUrl`]: which database, how big a pool;
//! * [`Database`]: the pool (`Database::connect`), one variant per backend;
//! * [`run_migrations`]: the embedded migrations for the database's backend;
//! * [`schema`]: the Diesel tables, once per backend (`schema::pg`, `schema::sqlite`);
//! * the core's storage ports (`omniman_core::ports`) are implemented for [`Database`]:
//!   `Omniman::new(database, extensions)` runs on either backend;
//! * the built-in stock backend (`omniman_core::ext::StockBackend`) is implemented for
//!   [`Database`] too, with `set_stock_level` / `stock_levels` ([`StockLevel`]) for operators;
//! * [`StatementCounter`]: counts SQL statements per request (the query budget);
//! * `test_support::TestDb` (feature `test-support`): throw-away migrated databases.

pub mod config;
pub mod counter;
pub mod error;
pub mod migrations;
pub mod pool;
mod retry;
pub mod schema;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use config::{Backend, DatabaseUrl, StorageConfig};
pub use counter::StatementCounter;
pub use error::StorageError;
pub use migrations::{applied_migrations, revert_all_migrations, run_migrations};
pub use pool::{Database, PoolStatus, SqliteWriter, Writes};
pub use store::{DIRECTIVES_CHANNEL, DirectiveWakeups, StockLevel, Wakeups};

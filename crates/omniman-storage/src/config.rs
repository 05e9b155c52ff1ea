//! Storage configuration and database URL parsing.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::StorageError;

/// Default pool size on PostgreSQL.
pub const DEFAULT_PG_POOL_SIZE: usize = 16;
/// Default pool size on a SQLite file (WAL: many readers, one writer at a time).
pub const DEFAULT_SQLITE_POOL_SIZE: usize = 4;
/// SQLite's `busy_timeout`, set on every new connection.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL (production, several instances).
    Postgres,
    /// SQLite (embedded, one instance).
    Sqlite,
}

impl Backend {
    /// Lower-case name: `postgres` or `sqlite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`, passed to the driver unchanged.
    Postgres(String),
    /// A SQLite database file.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database (`sqlite::memory:` or `:memory:`). It lives as long
    /// as its only connection: the pool is limited to one connection.
    SqliteMemory,
}

impl DatabaseUrl {
    /// Parse a database URL.
    ///
    /// * `postgres://…`, `postgresql://…` → PostgreSQL;
    /// * `sqlite::memory:`, `sqlite://:memory:`, `:memory:` → in-memory SQLite;
    /// * `sqlite://path`, `sqlite:path` → SQLite file `path` (`sqlite:///abs/path` is
    ///   absolute); a `?query` suffix is ignored;
    /// * anything else without a scheme → a SQLite file path.
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StorageError::InvalidUrl("empty database URL".into()));
        }
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        if url == ":memory:" {
            return Ok(DatabaseUrl::SqliteMemory);
        }
        if lower.starts_with("sqlite:") {
            let rest = &url["sqlite:".len()..];
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let path = rest.split_once('?').map_or(rest, |(path, _)| path);
            return match path {
                "" => Err(StorageError::InvalidUrl(format!("SQLite URL without a path: {url}"))),
                ":memory:" => Ok(DatabaseUrl::SqliteMemory),
                path => Ok(DatabaseUrl::SqliteFile(PathBuf::from(path))),
            };
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(StorageError::InvalidUrl(format!(
                "unsupported database scheme `{scheme}` (use postgres://, postgresql:// or sqlite:)"
            )));
        }
        Ok(DatabaseUrl::SqliteFile(PathBuf::from(url)))
    }

    /// The engine this URL points at.
    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Postgres(_) => Backend::Postgres,
            DatabaseUrl::SqliteFile(_) | DatabaseUrl::SqliteMemory => Backend::Sqlite,
        }
    }
}

/// How to reach the database and how to size the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// See [`DatabaseUrl::parse`].
    pub database_url: String,
    /// Maximum number of pooled connections; `None` = [`DEFAULT_PG_POOL_SIZE`] on PostgreSQL,
    /// [`DEFAULT_SQLITE_POOL_SIZE`] on a SQLite file, always 1 for in-memory SQLite.
    pub pool_size: Option<usize>,
    /// Time allowed to open one connection.
    pub connect_timeout: Duration,
    /// Time a caller may wait for a free pooled connection.
    pub wait_timeout: Duration,
    /// PostgreSQL `statement_timeout` set on every connection (`None` = server default).
    /// Ignored on SQLite.
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL: run `SELECT 1` on a pooled connection before handing it out again (default
    /// `false`: that is one more round trip for every statement a request runs). Without it a
    /// connection the server dropped fails its first statement, and the pool discards it.
    /// Ignored on SQLite (a local file does not drop connections).
    pub check_on_checkout: bool,
}

impl StorageConfig {
    /// A configuration with the defaults: pool size per backend, 5 s to connect, 30 s to wait
    /// for a connection, the server's statement timeout, no check on checkout.
    pub fn new(database_url: impl Into<String>) -> Self {
        StorageConfig {
            database_url: database_url.into(),
            pool_size: None,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(30),
            statement_timeout: None,
            check_on_checkout: false,
        }
    }

    /// Set the pool size.
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = Some(size);
        self
    }

    /// Set how long a caller may wait for a free pooled connection.
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Set the PostgreSQL statement timeout.
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Parse [`Self::database_url`].
    pub fn url(&self) -> Result<DatabaseUrl, StorageError> {
        DatabaseUrl::parse(&self.database_url)
    }

    /// The engine the URL points at.
    pub fn backend(&self) -> Result<Backend, StorageError> {
        Ok(self.url()?.backend())
    }

    /// The pool size actually used for `url` (at least 1).
    pub fn effective_pool_size(&self, url: &DatabaseUrl) -> usize {
        match url {
            DatabaseUrl::SqliteMemory => 1,
            DatabaseUrl::Postgres(_) => self.pool_size.unwrap_or(DEFAULT_PG_POOL_SIZE).max(1),
            DatabaseUrl::SqliteFile(_) => self.pool_size.unwrap_or(DEFAULT_SQLITE_POOL_SIZE).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> DatabaseUrl {
        DatabaseUrl::parse(url).unwrap()
    }

    #[test]
    fn postgres_urls() {
        assert_eq!(parse("postgres://u@h:5432/db"), DatabaseUrl::Postgres("postgres://u@h:5432/db".into()));
        assert_eq!(parse("postgresql://h/db?sslmode=disable").backend(), Backend::Postgres);
        assert_eq!(parse("POSTGRES://h/db").backend(), Backend::Postgres);
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(parse("sqlite::memory:"), DatabaseUrl::SqliteMemory);
        assert_eq!(parse("sqlite://:memory:"), DatabaseUrl::SqliteMemory);
        assert_eq!(parse(":memory:"), DatabaseUrl::SqliteMemory);
        assert_eq!(parse("sqlite://omniman.db"), DatabaseUrl::SqliteFile("omniman.db".into()));
        assert_eq!(parse("sqlite:///var/lib/omniman.db"), DatabaseUrl::SqliteFile("/var/lib/omniman.db".into()));
        assert_eq!(parse("sqlite:data/omniman.db"), DatabaseUrl::SqliteFile("data/omniman.db".into()));
        assert_eq!(parse("sqlite://omniman.db?mode=rwc"), DatabaseUrl::SqliteFile("omniman.db".into()));
        assert_eq!(parse("./omniman.db"), DatabaseUrl::SqliteFile("./omniman.db".into()));
        assert_eq!(parse("/tmp/x.sqlite3"), DatabaseUrl::SqliteFile("/tmp/x.sqlite3".into()));
    }

    #[test]
    fn rejected_urls() {
        assert!(DatabaseUrl::parse("").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("mysql://root@localhost/db").is_err());
    }

    #[test]
    fn pool_sizes() {
        let cfg = StorageConfig::new("postgres://h/db");
        assert_eq!(cfg.effective_pool_size(&cfg.url().unwrap()), 16);
        let cfg = StorageConfig::new("sqlite://x.db");
        assert_eq!(cfg.effective_pool_size(&cfg.url().unwrap()), 4);
        let cfg = StorageConfig::new("sqlite::memory:").with_pool_size(8);
        assert_eq!(cfg.effective_pool_size(&cfg.url().unwrap()), 1);
        let cfg = StorageConfig::new("postgres://h/db").with_pool_size(0);
        assert_eq!(cfg.effective_pool_size(&cfg.url().unwrap()), 1);
    }
}

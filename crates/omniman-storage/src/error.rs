//! Storage errors.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// An error of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database URL could not be understood.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A connection could not be opened.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// No pooled connection became free in time, or the pool is closed.
    #[error("connection pool: {0}")]
    Pool(String),
    /// A statement failed.
    #[error("database error: {0}")]
    Query(#[from] DieselError),
    /// Applying the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl StorageError {
    /// Whether this is a unique-constraint violation (a concurrent writer got there first).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StorageError::Query(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)))
    }

    /// Whether this is a foreign-key violation.
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, StorageError::Query(DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)))
    }

    /// Whether this is a CHECK-constraint violation.
    pub fn is_check_violation(&self) -> bool {
        matches!(self, StorageError::Query(DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _)))
    }

    /// The name of the violated constraint, when the backend reports it (PostgreSQL does;
    /// SQLite only names the columns in the message).
    pub fn constraint_name(&self) -> Option<&str> {
        match self {
            StorageError::Query(DieselError::DatabaseError(_, info)) => info.constraint_name(),
            _ => None,
        }
    }
}

impl From<diesel::ConnectionError> for StorageError {
    fn from(e: diesel::ConnectionError) -> Self {
        StorageError::Connect(e.to_string())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for StorageError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        use deadpool::managed::PoolError;
        use diesel_async::pooled_connection::PoolError as ManagerError;
        match e {
            PoolError::Backend(ManagerError::ConnectionError(e)) => StorageError::Connect(e.to_string()),
            PoolError::Backend(ManagerError::QueryError(e)) => StorageError::Query(e),
            PoolError::Timeout(deadpool::managed::TimeoutType::Create) => {
                StorageError::Connect("timed out opening a connection".into())
            }
            PoolError::Timeout(deadpool::managed::TimeoutType::Wait) => {
                StorageError::Pool("timed out waiting for a free connection".into())
            }
            other => StorageError::Pool(other.to_string()),
        }
    }
}

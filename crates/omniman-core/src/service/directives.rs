//! Operator actions on the directive queue.

use serde_json::{Map, Value};

use super::{MAX_ATTEMPTS, Omniman};
use crate::directive::{Directive, DirectiveStatus, operator_retry};
use crate::error::{Code, DomainError, ErrorCode, StoreError, ctx};
use crate::ports::Store;

/// Why a directive cannot be retried.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RetryError {
    /// No directive has this id.
    #[error("directive {directive_id} not found")]
    NotFound {
        /// The id.
        directive_id: i64,
    },
    /// Only a `failed` directive goes back to the queue: a `queued` or `running` one will run
    /// anyway, and a `done` one would run its effect a second time.
    #[error("directive {directive_id} is {}, not failed", status.as_str())]
    NotFailed {
        /// The id.
        directive_id: i64,
        /// Its status.
        status: DirectiveStatus,
    },
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for RetryError {
    fn code(&self) -> ErrorCode<'_> {
        match self {
            RetryError::NotFound { .. } => Code::DirectiveNotFound.into(),
            RetryError::NotFailed { .. } => Code::DirectiveNotFailed.into(),
            RetryError::Store(e) => e.code(),
        }
    }

    fn context(&self) -> Map<String, Value> {
        match self {
            RetryError::NotFound { directive_id } => ctx([("directive_id", directive_id.to_string().into())]),
            RetryError::NotFailed { directive_id, status } => {
                ctx([("directive_id", directive_id.to_string().into()), ("status", status.as_str().into())])
            }
            RetryError::Store(e) => e.context(),
        }
    }
}

impl<S: Store> Omniman<S> {
    /// Puts a `failed` directive back in the queue, available now, for one more run.
    ///
    /// Its `attempts` are kept (as `omniman directives retry` keeps them): the count stays the
    /// directive's history, and the retry policy sees it exhausted, so a run that fails again
    /// goes straight back to `failed` instead of starting a new series of backed-off retries.
    /// `last_error` is kept until the next run replaces it.
    ///
    /// ```
    /// use omniman_core::memory::InMemoryStore;
    /// use omniman_core::service::RetryError;
    /// use omniman_core::prelude::*;
    ///
    /// # futures_executor::block_on(async {
    /// let hub = Omniman::new(InMemoryStore::new(), Extensions::default());
    /// assert!(matches!(hub.retry_directive(7).await, Err(RetryError::NotFound { directive_id: 7 })));
    /// # });
    /// ```
    pub async fn retry_directive(&self, id: i64) -> Result<Directive, RetryError> {
        until_written!(format!("directive {id}"), {
            let directive = self.store.directive(id).await?.ok_or(RetryError::NotFound { directive_id: id })?;
            if directive.status != DirectiveStatus::Failed {
                return Err(RetryError::NotFailed { directive_id: id, status: directive.status });
            }
            let now = self.clock.now();
            let update = operator_retry(&directive, false, now).expect("a failed directive may be retried");
            // Refused only when a worker claimed it since the read (someone else retried it).
            if !self.store.requeue(&update, now).await? {
                continue;
            }
            Some(Directive { status: update.status, available_at: update.available_at, updated_at: now, ..directive })
        })
    }
}

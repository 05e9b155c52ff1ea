//! The error vocabulary shared by every pipeline.
//!
//! Each pipeline has its own error enum (see [`crate::modify::ModifyError`] and friends). They all
//! implement [`DomainError`]: a stable code (docs/reference.md §11), a JSON context and an [`ErrorKind`] that adapters
//! map to their own status codes. The code → kind table lives here, once.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The family an error code belongs to; the HTTP adapter maps each to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is wrong (400).
    BadRequest,
    /// Something it names does not exist (404).
    NotFound,
    /// The state of things forbids it (409).
    Conflict,
    /// An `If-Match` precondition failed (412).
    PreconditionFailed,
    /// The server failed (500).
    Internal,
}

/// Codes that are not `400`; everything else (op errors, validator codes) is a bad request.
pub fn kind_of(code: &str) -> ErrorKind {
    match code {
        "not_found"
        | "session_not_found"
        | "order_not_found"
        | "channel_not_found"
        | "directive_not_found"
        | "issue_not_found"
        | "action_not_found" => ErrorKind::NotFound,
        "already_committed"
        | "already_abandoned"
        | "locked"
        | "missing_check"
        | "stale_check"
        | "hold_expired"
        | "blocking_issues"
        | "empty_session"
        | "in_progress"
        | "idempotency_conflict"
        | "stale_action"
        | "no_ops"
        | "no_resolver"
        | "invalid_transition"
        | "terminal_status"
        | "session_exists"
        | "channel_inactive" => ErrorKind::Conflict,
        "precondition_failed" => ErrorKind::PreconditionFailed,
        "internal_error" | "resolver_error" => ErrorKind::Internal,
        _ => ErrorKind::BadRequest,
    }
}

/// An error with a stable code, a human message (its `Display`) and a JSON context.
pub trait DomainError: std::error::Error {
    /// The stable code, e.g. `unknown_line_id`.
    fn code(&self) -> &str;
    /// Structured details; values keep their JSON types.
    fn context(&self) -> Map<String, Value>;
    /// The code's family.
    fn kind(&self) -> ErrorKind {
        kind_of(self.code())
    }
}

/// Field errors of a shape validation, keyed by path (`ops[1].line_id`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// Records one problem at `path`.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.entry(path.into()).or_default().push(message.into());
    }

    /// No problem recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A single-field error.
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> FieldErrors {
        let mut errors = FieldErrors::default();
        errors.add(path, message);
        errors
    }

    /// `Ok(())` when empty, else the errors.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// `{"fields": {...}}`, the context of a `validation_error`.
    pub fn to_context(&self) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx.insert("fields".into(), serde_json::to_value(&self.0).unwrap_or_default());
        ctx
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid request:")?;
        for (path, messages) in &self.0 {
            write!(f, " {path}: {};", messages.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// A coded refusal raised by an extension (validator, modifier, check, resolver).
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct Rejection {
    /// The extension's code (HTTP 400 unless it is one of the codes of docs/reference.md §11).
    pub code: String,
    /// Human message.
    pub message: String,
    /// Details.
    #[serde(default)]
    pub context: Map<String, Value>,
}

impl Rejection {
    /// A rejection without context.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Rejection {
        Rejection { code: code.into(), message: message.into(), context: Map::new() }
    }

    /// Adds one context entry.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Rejection {
        self.context.insert(key.to_owned(), value.into());
        self
    }
}

impl DomainError for Rejection {
    fn code(&self) -> &str {
        &self.code
    }
    fn context(&self) -> Map<String, Value> {
        self.context.clone()
    }
}

/// A failure of the storage behind the ports (not a domain refusal).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or timed out.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A compare-and-set kept losing to concurrent writers.
    #[error("too much contention on {0}; try again")]
    Contention(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other storage failure.
    #[error("storage error: {0}")]
    Other(String),
}

impl DomainError for StoreError {
    fn code(&self) -> &'static str {
        "internal_error"
    }
    fn context(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// Builds a context object from pairs.
pub(crate) fn ctx<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_spec_table() {
        assert_eq!(kind_of("unknown_line_id"), ErrorKind::BadRequest);
        assert_eq!(kind_of("my_validator_code"), ErrorKind::BadRequest);
        assert_eq!(kind_of("session_not_found"), ErrorKind::NotFound);
        assert_eq!(kind_of("locked"), ErrorKind::Conflict);
        assert_eq!(kind_of("precondition_failed"), ErrorKind::PreconditionFailed);
        assert_eq!(kind_of("resolver_error"), ErrorKind::Internal);
    }
}

//! Check write-back and issue resolution (docs/reference.md §7).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{Code, DomainError, ErrorCode, ErrorKind, Rejection, StoreError, ctx};
use crate::ids::IdGen;
use crate::modify::ModifyError;
use crate::session::{Session, SessionState};

/// Writes a check result into a copy of `session`, or `None` (no write) when the session is not
/// open or has moved past `expected_rev`.
///
/// `data.checks[code] = {rev, at, result}`; issues of `source = code` are replaced by `issues`
/// (each gets `source` and an `ISS-` id when it lacks them); `version` +1, `rev` unchanged.
pub fn write_check_result(
    session: &Session,
    expected_rev: i64,
    check_code: &str,
    result: Value,
    issues: Vec<Value>,
    now: DateTime<Utc>,
    ids: &mut dyn IdGen,
) -> Option<Session> {
    if session.state != SessionState::Open || session.rev != expected_rev {
        return None;
    }
    let mut next = session.clone();
    let checks = next.data.entry("checks").or_insert_with(|| Value::Object(Map::new()));
    if !checks.is_object() {
        *checks = Value::Object(Map::new());
    }
    if let Value::Object(checks) = checks {
        let mut entry = Map::new();
        entry.insert("rev".into(), expected_rev.into());
        entry.insert("at".into(), now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
        entry.insert("result".into(), result);
        checks.insert(check_code.to_owned(), Value::Object(entry));
    }
    let mut kept: Vec<Value> = session
        .issues()
        .iter()
        .filter(|i| i.get("source").and_then(Value::as_str) != Some(check_code))
        .cloned()
        .collect();
    for mut issue in issues {
        if let Value::Object(fields) = &mut issue {
            fields.entry("source").or_insert_with(|| check_code.into());
            if !fields.get("id").is_some_and(Value::is_string) {
                fields.insert("id".into(), ids.issue_id().into());
            }
        }
        kept.push(issue);
    }
    next.data.insert("issues".into(), Value::Array(kept));
    next.version += 1;
    next.updated_at = now;
    Some(next)
}

/// A refused resolve.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// A session-level refusal, or the modify the action ran was refused; keeps its code.
    #[error(transparent)]
    Session(#[from] ModifyError),
    /// No issue with that id.
    #[error("issue {issue_id} not found")]
    IssueNotFound {
        /// The id asked for.
        issue_id: String,
    },
    /// No resolver for the issue's source.
    #[error("no resolver for issues from '{issue_source}'")]
    NoResolver {
        /// The issue's source.
        issue_source: String,
    },
    /// The resolver refused with a code (`action_not_found`, `stale_action`, `no_ops`…).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The resolver failed without a code.
    #[error("resolver '{issue_source}' failed: {message}")]
    ResolverError {
        /// The issue's source.
        issue_source: String,
        /// The issue.
        issue_id: String,
        /// The action.
        action_id: String,
        /// What went wrong.
        message: String,
    },
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for ResolveError {
    fn code(&self) -> ErrorCode<'_> {
        match self {
            ResolveError::Session(e) => e.code(),
            ResolveError::IssueNotFound { .. } => Code::IssueNotFound.into(),
            ResolveError::NoResolver { .. } => Code::NoResolver.into(),
            ResolveError::Rejected(e) => e.code(),
            ResolveError::ResolverError { .. } => Code::ResolverError.into(),
            ResolveError::Store(e) => e.code(),
        }
    }

    fn context(&self) -> Map<String, Value> {
        match self {
            ResolveError::Session(e) => e.context(),
            ResolveError::IssueNotFound { issue_id } => ctx([("issue_id", issue_id.as_str().into())]),
            ResolveError::NoResolver { issue_source } => ctx([("source", issue_source.as_str().into())]),
            ResolveError::Rejected(e) => e.context(),
            ResolveError::ResolverError { issue_source, issue_id, action_id, .. } => ctx([
                ("source", issue_source.as_str().into()),
                ("issue_id", issue_id.as_str().into()),
                ("action_id", action_id.as_str().into()),
            ]),
            ResolveError::Store(e) => e.context(),
        }
    }

    // A rejection may carry a family of its own; the code alone would not tell it.
    fn kind(&self) -> ErrorKind {
        match self {
            ResolveError::Session(e) => e.kind(),
            ResolveError::Rejected(e) => e.kind(),
            _ => self.code().kind(),
        }
    }
}

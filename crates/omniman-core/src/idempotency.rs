//! Idempotency records and the decision for a repeated commit key (docs/reference.md §1.5, §6).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a key is remembered.
pub const DEFAULT_TTL: TimeDelta = TimeDelta::hours(24);

/// State of a record; a new record is `in_progress`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyStatus {
    /// A request with this key is running (or crashed; see `expires_at`).
    #[default]
    InProgress,
    /// Finished; the stored answer is replayed.
    Done,
    /// Failed; the key may be used again.
    Failed,
}

impl IdempotencyStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IdempotencyStatus::InProgress => "in_progress",
            IdempotencyStatus::Done => "done",
            IdempotencyStatus::Failed => "failed",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<IdempotencyStatus> {
        match s {
            "in_progress" => Some(IdempotencyStatus::InProgress),
            "done" => Some(IdempotencyStatus::Done),
            "failed" => Some(IdempotencyStatus::Failed),
            _ => None,
        }
    }
}

/// A remembered request and its answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// `commit:<channel_code>`.
    pub scope: String,
    /// The client's key (≤ 128).
    pub key: String,
    /// State.
    pub status: IdempotencyStatus,
    /// Status code of the stored answer.
    pub response_code: Option<u16>,
    /// The stored answer.
    pub response_body: Option<Value>,
    /// Fingerprint: the session the key was used for.
    pub session_key: Option<String>,
    /// When the record may be forgotten.
    pub expires_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The scope of commit keys on a channel.
pub fn commit_scope(channel_code: &str) -> String {
    ["commit:", channel_code].concat()
}

/// What to do with a request whose key may have been seen before.
#[derive(Clone, Debug, PartialEq)]
pub enum IdempotencyDecision {
    /// Run the request (no record, a failed one, or an orphaned `in_progress` one).
    Proceed,
    /// Answer with the stored code and body; run nothing.
    Replay {
        /// Stored status code.
        code: u16,
        /// Stored body.
        body: Value,
    },
    /// The key belongs to another session.
    Conflict {
        /// The session that used it.
        session_key: Option<String>,
    },
    /// Another request with this key is running.
    InProgress,
}

/// Applies the table of docs/reference.md §6.
///
/// ```
/// use omniman_core::idempotency::*;
/// let now = chrono::Utc::now();
/// assert_eq!(decide(None, "SESS-1", now), IdempotencyDecision::Proceed);
/// ```
pub fn decide(existing: Option<&IdempotencyRecord>, session_key: &str, now: DateTime<Utc>) -> IdempotencyDecision {
    let Some(record) = existing else {
        return IdempotencyDecision::Proceed;
    };
    let other_session = record.session_key.as_deref().is_some_and(|s| s != session_key);
    match record.status {
        IdempotencyStatus::Done | IdempotencyStatus::InProgress if other_session => {
            IdempotencyDecision::Conflict { session_key: record.session_key.clone() }
        }
        IdempotencyStatus::Done => IdempotencyDecision::Replay {
            code: record.response_code.unwrap_or(200),
            body: record.response_body.clone().unwrap_or(Value::Null),
        },
        IdempotencyStatus::InProgress if record.expires_at.is_none_or(|e| e > now) => IdempotencyDecision::InProgress,
        IdempotencyStatus::InProgress | IdempotencyStatus::Failed => IdempotencyDecision::Proceed,
    }
}

/// Whether a commit for `session_key` may write its record over `existing`: exactly when
/// [`decide`] lets the commit proceed (`failed`, or `in_progress` past its expiry and not another
/// session's). Every store's commit transaction claims the key by this rule, so a commit needs
/// no read of the key before it writes.
///
/// ```
/// use omniman_core::idempotency::{done_record, replaceable};
/// let now = chrono::Utc::now();
/// let done = done_record("commit:pos".into(), "k".into(), "S1", 201, serde_json::json!({}), now);
/// assert!(!replaceable(&done, "S1", now));
/// ```
pub fn replaceable(existing: &IdempotencyRecord, session_key: &str, now: DateTime<Utc>) -> bool {
    decide(Some(existing), session_key, now) == IdempotencyDecision::Proceed
}

/// A finished record to store with its answer.
pub fn done_record(
    scope: String,
    key: String,
    session_key: &str,
    code: u16,
    body: Value,
    now: DateTime<Utc>,
) -> IdempotencyRecord {
    IdempotencyRecord {
        scope,
        key,
        status: IdempotencyStatus::Done,
        response_code: Some(code),
        response_body: Some(body),
        session_key: Some(session_key.to_owned()),
        expires_at: Some(now + DEFAULT_TTL),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(status: IdempotencyStatus, session: &str, expires_in: Option<i64>) -> IdempotencyRecord {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        IdempotencyRecord {
            scope: "commit:pos".into(),
            key: "k".into(),
            status,
            response_code: Some(201),
            response_body: Some(json!({"order_ref": "ORD-1"})),
            session_key: Some(session.into()),
            expires_at: expires_in.map(|m| now + TimeDelta::minutes(m)),
            created_at: now,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn table_of_decisions() {
        use IdempotencyStatus::*;
        assert_eq!(decide(None, "S", now()), IdempotencyDecision::Proceed);
        assert_eq!(
            decide(Some(&record(Done, "S", Some(10))), "S", now()),
            IdempotencyDecision::Replay { code: 201, body: json!({"order_ref": "ORD-1"}) }
        );
        assert!(matches!(decide(Some(&record(Done, "T", Some(10))), "S", now()), IdempotencyDecision::Conflict { .. }));
        assert!(matches!(
            decide(Some(&record(InProgress, "T", Some(10))), "S", now()),
            IdempotencyDecision::Conflict { .. }
        ));
        assert_eq!(decide(Some(&record(InProgress, "S", Some(10))), "S", now()), IdempotencyDecision::InProgress);
        assert_eq!(decide(Some(&record(InProgress, "S", None)), "S", now()), IdempotencyDecision::InProgress);
        assert_eq!(decide(Some(&record(InProgress, "S", Some(-1))), "S", now()), IdempotencyDecision::Proceed);
        assert_eq!(decide(Some(&record(Failed, "S", Some(10))), "S", now()), IdempotencyDecision::Proceed);
    }
}

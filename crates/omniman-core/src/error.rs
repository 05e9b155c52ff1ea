//! The error vocabulary shared by every pipeline.
//!
//! Each pipeline has its own error enum (see [`crate::modify::ModifyError`] and friends). They all
//! implement [`DomainError`]: a stable [`Code`] (docs/api.md, "Errors"), a JSON context and an
//! [`ErrorKind`] that adapters map to their own status codes. Every code the project answers with
//! is a variant of [`Code`], and [`Code::kind`] is an exhaustive match: a new code cannot reach a
//! client before someone decides its family. Only extensions bring codes of their own, as the
//! string of a [`Rejection`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The family an error code belongs to; the HTTP adapter maps each to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is wrong (400).
    BadRequest,
    /// No credentials, or credentials nobody issued (401).
    Unauthenticated,
    /// The credentials do not allow it (403).
    Forbidden,
    /// Something it names does not exist (404).
    NotFound,
    /// The route exists but not with that method (405).
    MethodNotAllowed,
    /// The state of things forbids it (409).
    Conflict,
    /// The client did not send its request in time (408).
    RequestTimeout,
    /// An `If-Match` precondition failed (412).
    PreconditionFailed,
    /// The body is larger than allowed (413).
    PayloadTooLarge,
    /// The body is not JSON sent as JSON (415).
    UnsupportedMediaType,
    /// No representation the client accepts (406).
    NotAcceptable,
    /// Too many requests (429).
    RateLimited,
    /// The server failed (500).
    Internal,
    /// The server cannot answer now, e.g. the database did not in time; try again (503).
    Unavailable,
}

/// Declares [`Code`] with its wire strings once, so `ALL`, `as_str` and `parse` cannot disagree.
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $wire:literal,)*) => {
        /// Every error code the project answers with (docs/api.md, "Errors").
        ///
        /// The wire string ([`Code::as_str`]) is stable; [`Code::kind`] decides the family.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable wire string, e.g. `session_not_found`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $wire,)*
                }
            }

            /// The code with this wire string; `None` for a string no code has (an extension's own).
            pub fn parse(code: &str) -> Option<Code> {
                match code {
                    $($wire => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// A field of the request has the wrong shape (`context.fields` by path).
    ValidationError = "validation_error",
    /// The body is not JSON, not UTF-8, has numbers out of range or nests too deep.
    MalformedJson = "malformed_json",
    /// An op name this version does not know.
    UnsupportedOp = "unsupported_op",
    /// An op's `sku` is absent or empty.
    MissingSku = "missing_sku",
    /// A quantity is not positive, unparsable, too precise or too large.
    InvalidQty = "invalid_qty",
    /// External pricing and no price given.
    MissingUnitPriceQ = "missing_unit_price_q",
    /// No line with that id.
    UnknownLineId = "unknown_line_id",
    /// Merging a line into itself.
    InvalidMerge = "invalid_merge",
    /// Merging lines of different SKUs.
    SkuMismatch = "sku_mismatch",
    /// A `set_data` path the rules refuse.
    InvalidPath = "invalid_path",
    /// The session key exists in several channels and no `channel_code` was given.
    ChannelCodeRequired = "channel_code_required",
    /// The request names a channel that does not exist.
    UnknownChannel = "unknown_channel",
    /// A list cursor that is not ours.
    InvalidCursor = "invalid_cursor",
    /// A line total or the session total does not fit in a signed 64-bit number of quanta.
    InvalidAmount = "invalid_amount",
    /// No token, or a token nobody issued.
    Unauthenticated = "unauthenticated",
    /// The token's role or channels do not allow it.
    Forbidden = "forbidden",
    /// No such route.
    NotFound = "not_found",
    /// No such session.
    SessionNotFound = "session_not_found",
    /// No such order.
    OrderNotFound = "order_not_found",
    /// No such channel.
    ChannelNotFound = "channel_not_found",
    /// No such directive.
    DirectiveNotFound = "directive_not_found",
    /// No such unrevoked API token.
    TokenNotFound = "token_not_found",
    /// The server keeps no event log to stream (an in-memory store).
    EventsUnavailable = "events_unavailable",
    /// No such issue in the session.
    IssueNotFound = "issue_not_found",
    /// The issue offers no such action.
    ActionNotFound = "action_not_found",
    /// No such webhook subscription.
    WebhookNotFound = "webhook_not_found",
    /// The route does not take that method.
    MethodNotAllowed = "method_not_allowed",
    /// The session is already sealed into an order.
    AlreadyCommitted = "already_committed",
    /// The session was abandoned.
    AlreadyAbandoned = "already_abandoned",
    /// The channel's sessions cannot be edited here.
    Locked = "locked",
    /// A required check has no result.
    MissingCheck = "missing_check",
    /// A required check ran against an older rev.
    StaleCheck = "stale_check",
    /// A hold of a required check has lapsed.
    HoldExpired = "hold_expired",
    /// Blocking issues remain.
    BlockingIssues = "blocking_issues",
    /// The session has no lines.
    EmptySession = "empty_session",
    /// Another commit with this idempotency key is running.
    InProgress = "in_progress",
    /// The idempotency key was used for another session.
    IdempotencyConflict = "idempotency_conflict",
    /// The session changed since the action was offered.
    StaleAction = "stale_action",
    /// The action has nothing to apply.
    NoOps = "no_ops",
    /// No resolver for the issue's source.
    NoResolver = "no_resolver",
    /// The order flow does not allow that transition.
    InvalidTransition = "invalid_transition",
    /// The order is in a final status.
    TerminalStatus = "terminal_status",
    /// The client-chosen session key is taken.
    SessionExists = "session_exists",
    /// The channel does not accept new sessions.
    ChannelInactive = "channel_inactive",
    /// A channel with that code exists.
    ChannelExists = "channel_exists",
    /// An API token with that name exists.
    TokenExists = "token_exists",
    /// Only a failed directive can be retried.
    DirectiveNotFailed = "directive_not_failed",
    /// An `If-Match` precondition failed.
    PreconditionFailed = "precondition_failed",
    /// The body is larger than the limit.
    PayloadTooLarge = "payload_too_large",
    /// The body was not sent as `application/json`.
    UnsupportedMediaType = "unsupported_media_type",
    /// The `Accept-Encoding` header refuses every encoding the server can answer with.
    NotAcceptable = "not_acceptable",
    /// Too many requests for the token and route class.
    RateLimited = "rate_limited",
    /// The server failed; details are logged, never sent.
    InternalError = "internal_error",
    /// An issue resolver failed without a code.
    ResolverError = "resolver_error",
    /// The database did not answer in time (or cannot be reached); nothing was written.
    ServiceUnavailable = "service_unavailable",
    /// The request's body did not arrive within the body timeout.
    RequestTimeout = "request_timeout",
}

impl Code {
    /// The code's family. Exhaustive on purpose: a new code must be given one here.
    pub const fn kind(self) -> ErrorKind {
        match self {
            Code::ValidationError
            | Code::MalformedJson
            | Code::UnsupportedOp
            | Code::MissingSku
            | Code::InvalidQty
            | Code::MissingUnitPriceQ
            | Code::UnknownLineId
            | Code::InvalidMerge
            | Code::SkuMismatch
            | Code::InvalidPath
            | Code::ChannelCodeRequired
            | Code::UnknownChannel
            | Code::InvalidCursor
            | Code::InvalidAmount => ErrorKind::BadRequest,
            Code::Unauthenticated => ErrorKind::Unauthenticated,
            Code::Forbidden => ErrorKind::Forbidden,
            Code::NotFound
            | Code::SessionNotFound
            | Code::OrderNotFound
            | Code::ChannelNotFound
            | Code::DirectiveNotFound
            | Code::TokenNotFound
            | Code::EventsUnavailable
            | Code::IssueNotFound
            | Code::ActionNotFound
            | Code::WebhookNotFound => ErrorKind::NotFound,
            Code::MethodNotAllowed => ErrorKind::MethodNotAllowed,
            Code::AlreadyCommitted
            | Code::AlreadyAbandoned
            | Code::Locked
            | Code::MissingCheck
            | Code::StaleCheck
            | Code::HoldExpired
            | Code::BlockingIssues
            | Code::EmptySession
            | Code::InProgress
            | Code::IdempotencyConflict
            | Code::StaleAction
            | Code::NoOps
            | Code::NoResolver
            | Code::InvalidTransition
            | Code::TerminalStatus
            | Code::SessionExists
            | Code::ChannelInactive
            | Code::ChannelExists
            | Code::TokenExists
            | Code::DirectiveNotFailed => ErrorKind::Conflict,
            Code::PreconditionFailed => ErrorKind::PreconditionFailed,
            Code::PayloadTooLarge => ErrorKind::PayloadTooLarge,
            Code::UnsupportedMediaType => ErrorKind::UnsupportedMediaType,
            Code::NotAcceptable => ErrorKind::NotAcceptable,
            Code::RateLimited => ErrorKind::RateLimited,
            Code::InternalError | Code::ResolverError => ErrorKind::Internal,
            Code::ServiceUnavailable => ErrorKind::Unavailable,
            Code::RequestTimeout => ErrorKind::RequestTimeout,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A built-in code as a [`Rejection`]'s string: `Rejection::new(Code::StaleAction, "…")`.
impl From<Code> for String {
    fn from(code: Code) -> String {
        code.as_str().to_owned()
    }
}

/// The code an error reports: one of the project's [`Code`]s, or one an extension defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode<'a> {
    /// A code of the project.
    Known(Code),
    /// A code of an extension's own (a [`Rejection`]'s); it is a bad request.
    Custom(&'a str),
}

impl<'a> ErrorCode<'a> {
    /// Reads a code string: a project code when it is one (so an extension refusing with
    /// `stale_action` is a conflict, as docs/reference.md §8 says), else the extension's own.
    pub fn of(code: &'a str) -> ErrorCode<'a> {
        Code::parse(code).map_or(ErrorCode::Custom(code), ErrorCode::Known)
    }

    /// The wire string.
    pub fn as_str(self) -> &'a str {
        match self {
            ErrorCode::Known(code) => code.as_str(),
            ErrorCode::Custom(code) => code,
        }
    }

    /// The family: the code's, or [`ErrorKind::BadRequest`] for an extension's own code.
    pub fn kind(self) -> ErrorKind {
        match self {
            ErrorCode::Known(code) => code.kind(),
            ErrorCode::Custom(_) => ErrorKind::BadRequest,
        }
    }

    /// The project code, if it is one.
    pub fn known(self) -> Option<Code> {
        match self {
            ErrorCode::Known(code) => Some(code),
            ErrorCode::Custom(_) => None,
        }
    }
}

impl From<Code> for ErrorCode<'_> {
    fn from(code: Code) -> Self {
        ErrorCode::Known(code)
    }
}

impl PartialEq<Code> for ErrorCode<'_> {
    fn eq(&self, other: &Code) -> bool {
        *self == ErrorCode::Known(*other)
    }
}

impl fmt::Display for ErrorCode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code, a human message (its `Display`) and a JSON context.
pub trait DomainError: std::error::Error {
    /// The stable code: a [`Code`], unless an extension refused with one of its own.
    fn code(&self) -> ErrorCode<'_>;
    /// Structured details; values keep their JSON types.
    fn context(&self) -> Map<String, Value>;
    /// The code's family.
    fn kind(&self) -> ErrorKind {
        self.code().kind()
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

    /// Adds every problem of `other`, keeping its paths.
    pub fn merge(&mut self, other: FieldErrors) {
        for (path, messages) in other.0 {
            self.0.entry(path).or_default().extend(messages);
        }
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
    /// The extension's code: a bad request (400) unless it is one of the project's [`Code`]s
    /// (docs/reference.md §8), whose family it then takes.
    pub code: String,
    /// Human message.
    pub message: String,
    /// Details.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// The family the extension chose for its own code ([`Rejection::with_kind`]); `None` follows
    /// the default of [`ErrorCode::kind`]. Not serialised: it is the server's decision, not data.
    #[serde(skip)]
    pub kind: Option<ErrorKind>,
}

impl Rejection {
    /// A rejection without context.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Rejection {
        Rejection { code: code.into(), message: message.into(), context: Map::new(), kind: None }
    }

    /// Adds one context entry.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Rejection {
        self.context.insert(key.to_owned(), value.into());
        self
    }

    /// Gives the extension's own code a family other than a bad request (say, a conflict).
    pub fn with_kind(mut self, kind: ErrorKind) -> Rejection {
        self.kind = Some(kind);
        self
    }
}

impl DomainError for Rejection {
    fn code(&self) -> ErrorCode<'_> {
        ErrorCode::of(&self.code)
    }
    fn context(&self) -> Map<String, Value> {
        self.context.clone()
    }
    fn kind(&self) -> ErrorKind {
        self.kind.unwrap_or_else(|| self.code().kind())
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
    fn code(&self) -> ErrorCode<'_> {
        match self {
            StoreError::Unavailable(_) => Code::ServiceUnavailable.into(),
            _ => Code::InternalError.into(),
        }
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
    fn every_code_round_trips_through_its_wire_string() {
        for &code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code), "{code}");
            assert_eq!(ErrorCode::of(code.as_str()), code);
        }
        let mut wires: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        wires.sort_unstable();
        wires.dedup();
        assert_eq!(wires.len(), Code::ALL.len(), "two codes share a wire string");
    }

    #[test]
    fn an_extension_code_is_a_bad_request_unless_it_is_a_project_code() {
        assert_eq!(Code::parse("my_validator_code"), None);
        assert_eq!(Rejection::new("my_validator_code", "no").kind(), ErrorKind::BadRequest);
        assert_eq!(Rejection::new("my_validator_code", "no").code().as_str(), "my_validator_code");
        assert_eq!(Rejection::new("stale_action", "no").code(), Code::StaleAction);
        assert_eq!(Rejection::new("stale_action", "no").kind(), ErrorKind::Conflict);
        assert_eq!(Rejection::new("resolver_error", "no").kind(), ErrorKind::Internal);
        let own = Rejection::new("out_of_stock", "gone").with_kind(ErrorKind::Conflict);
        assert_eq!((own.code().as_str(), own.kind()), ("out_of_stock", ErrorKind::Conflict));
    }

    #[test]
    fn kinds_follow_the_api_table() {
        assert_eq!(Code::UnknownLineId.kind(), ErrorKind::BadRequest);
        assert_eq!(Code::SessionNotFound.kind(), ErrorKind::NotFound);
        assert_eq!(Code::Locked.kind(), ErrorKind::Conflict);
        assert_eq!(Code::PreconditionFailed.kind(), ErrorKind::PreconditionFailed);
        assert_eq!(Code::ResolverError.kind(), ErrorKind::Internal);
        assert_eq!(StoreError::Other("x".into()).code(), Code::InternalError);
        assert_eq!(StoreError::Unavailable("x".into()).code(), Code::ServiceUnavailable);
        assert_eq!(Code::ServiceUnavailable.kind(), ErrorKind::Unavailable);
    }
}

//! One error type for every failure the API reports.
//!
//! Every answer's status is the HTTP status of its code's [`ErrorKind`] ([`status_of`]), so the
//! code → family table lives in the core only ([`Code::kind`]). Domain errors come from the core
//! through [`DomainError`]; the failures that only exist at the HTTP layer (authentication,
//! transport, routing) have their own constructors, with codes from the same [`Code`] enum.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use omniman_core::error::{Code, DomainError, ErrorCode, ErrorKind, FieldErrors};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The body of every error response: `{"error": {"code", "message", "context"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `session_not_found`.
    #[schema(example = "session_not_found")]
    pub code: String,
    /// Human-readable message; wording is not part of the contract.
    pub message: String,
    /// Structured details; values keep their JSON types. `validation_error` carries
    /// `fields: {"path": ["problem", ...]}`.
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
}

/// An error answer: status, code, message, context and any extra headers.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    code: WireCode,
    message: String,
    context: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// An answer's code, owned: a project code, or the string of an extension's rejection.
#[derive(Clone, Debug, PartialEq, Eq)]
enum WireCode {
    Known(Code),
    Custom(String),
}

impl WireCode {
    fn borrow(&self) -> ErrorCode<'_> {
        match self {
            WireCode::Known(code) => ErrorCode::Known(*code),
            WireCode::Custom(code) => ErrorCode::Custom(code),
        }
    }
}

/// The HTTP status of an error family. Exhaustive on purpose: a new family needs a status here.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl ApiError {
    /// A coded error whose status follows the code's family (e.g. `channel_not_found` → 404).
    pub fn coded(code: Code, message: impl Into<String>, context: Map<String, Value>) -> ApiError {
        ApiError {
            status: status_of(code.kind()),
            code: WireCode::Known(code),
            message: message.into(),
            context,
            headers: Vec::new(),
        }
    }

    /// A coded error without context.
    fn bare(code: Code, message: impl Into<String>) -> ApiError {
        ApiError::coded(code, message, Map::new())
    }

    /// `validation_error` with `context.fields`.
    pub fn validation(fields: &FieldErrors) -> ApiError {
        ApiError::coded(Code::ValidationError, fields.to_string(), fields.to_context())
    }

    /// `validation_error` for a single field.
    pub fn field(path: &str, message: &str) -> ApiError {
        ApiError::validation(&FieldErrors::one(path, message))
    }

    /// 400 `malformed_json`: the body is not JSON (or not UTF-8).
    pub fn malformed_json(message: impl Into<String>, context: Map<String, Value>) -> ApiError {
        ApiError::coded(Code::MalformedJson, message, context)
    }

    /// 400 `invalid_cursor`.
    pub fn invalid_cursor() -> ApiError {
        ApiError::bare(Code::InvalidCursor, "the cursor is not valid for this list")
    }

    /// 401 `unauthenticated`, with `WWW-Authenticate: Bearer`.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::bare(Code::Unauthenticated, message)
            .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::bare(Code::Forbidden, message)
    }

    /// 404 `not_found`: no route.
    pub fn route_not_found(path: &str) -> ApiError {
        ApiError::bare(Code::NotFound, format!("no route for {path}")).with_context("path", path)
    }

    /// 405 `method_not_allowed`, keeping the `Allow` header.
    pub fn method_not_allowed(method: &str, allow: Option<HeaderValue>) -> ApiError {
        let mut err = ApiError::bare(Code::MethodNotAllowed, format!("method {method} is not allowed here"))
            .with_context("method", method);
        if let Some(allow) = allow {
            if let Ok(text) = allow.to_str() {
                let methods: Vec<Value> =
                    text.split(',').map(str::trim).filter(|m| !m.is_empty()).map(Value::from).collect();
                err = err.with_context("allowed_methods", methods);
            }
            err = err.header(header::ALLOW, allow);
        }
        err
    }

    /// 406 `not_acceptable`: `Accept-Encoding` refuses every encoding the server answers with
    /// (`identity;q=0` without another it supports).
    pub fn not_acceptable(accept_encoding: Option<&str>) -> ApiError {
        ApiError::bare(
            Code::NotAcceptable,
            "Accept-Encoding refuses every encoding this server answers with (br, gzip, deflate, identity)",
        )
        .with_context("accept_encoding", accept_encoding.map_or(Value::Null, Value::from))
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::bare(Code::PayloadTooLarge, format!("the body is larger than {limit} bytes"))
            .with_context("limit_bytes", limit)
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type(found: Option<&str>) -> ApiError {
        ApiError::bare(Code::UnsupportedMediaType, "the body must be JSON sent as Content-Type: application/json")
            .with_context("content_type", found.map_or(Value::Null, Value::from))
    }

    /// 429 `rate_limited`, with `Retry-After` (seconds).
    pub fn rate_limited(class: &str, retry_after_secs: u64) -> ApiError {
        ApiError::bare(Code::RateLimited, "too many requests; slow down")
            .with_context("route_class", class)
            .with_context("retry_after", retry_after_secs)
            .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    /// 500 `internal_error`; the detail is logged, never sent.
    pub fn internal(detail: &dyn fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::bare(Code::InternalError, "internal server error")
    }

    /// 503 `service_unavailable` with `Retry-After: 1`: the database did not answer in time (or
    /// cannot be reached) and nothing was written; the detail is logged, never sent.
    pub fn unavailable(detail: &dyn fmt::Display) -> ApiError {
        tracing::warn!(error = %detail, "service unavailable");
        ApiError::bare(Code::ServiceUnavailable, "the database did not answer in time; try again")
            .header(header::RETRY_AFTER, HeaderValue::from(1))
    }

    /// 408 `request_timeout`: the body did not arrive within `timeout`; the connection is closed.
    pub fn request_timeout(timeout: Duration) -> ApiError {
        let message = format!("the request body did not arrive within {} s", timeout.as_secs_f64());
        ApiError::bare(Code::RequestTimeout, message)
            .with_context("timeout_secs", timeout.as_secs_f64())
            .header(header::CONNECTION, HeaderValue::from_static("close"))
    }

    /// Adds a context entry.
    pub fn with_context(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.context.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode<'_> {
        self.code.borrow()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The context.
    pub fn context(&self) -> &Map<String, Value> {
        &self.context
    }

    /// The body as sent.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.borrow().as_str().to_owned(),
                message: self.message.clone(),
                context: self.context.clone(),
            },
        }
    }
}

impl<E: DomainError> From<E> for ApiError {
    fn from(err: E) -> ApiError {
        let code = err.code();
        if code == Code::InternalError {
            // Storage failures: log the detail, send nothing about the internals.
            return ApiError::internal(&err);
        }
        if code == Code::ServiceUnavailable {
            return ApiError::unavailable(&err);
        }
        ApiError {
            status: status_of(err.kind()),
            code: match code {
                ErrorCode::Known(code) => WireCode::Known(code),
                ErrorCode::Custom(code) => WireCode::Custom(code.to_owned()),
            },
            message: err.to_string(),
            context: err.context(),
            headers: Vec::new(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.status.as_u16(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            builder.insert_header((name.clone(), value.clone()));
        }
        builder.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use omniman_core::error::{Rejection, StoreError};
    use omniman_core::modify::ModifyError;

    use super::*;

    #[test]
    fn statuses_follow_the_core_kinds() {
        let err = ApiError::from(ModifyError::SessionNotFound { session_key: "S".into() });
        assert_eq!((err.status_code(), err.code()), (StatusCode::NOT_FOUND, Code::SessionNotFound.into()));
        assert_eq!(err.context()["session_key"], "S");
        let err = ApiError::from(Rejection::new("my_code", "no").with("n", 1));
        assert_eq!((err.status_code(), err.context()["n"].clone()), (StatusCode::BAD_REQUEST, Value::from(1)));
        assert_eq!(err.body().error.code, "my_code");
        let err = ApiError::from(Rejection::new("sold_out", "no").with_kind(ErrorKind::Conflict));
        assert_eq!((err.status_code(), err.code().as_str()), (StatusCode::CONFLICT, "sold_out"));
        assert_eq!(ApiError::coded(Code::ChannelNotFound, "x", Map::new()).status_code(), StatusCode::NOT_FOUND);
        assert_eq!(ApiError::coded(Code::Locked, "x", Map::new()).status_code(), StatusCode::CONFLICT);
    }

    #[test]
    fn storage_failures_are_500_without_details() {
        let err = ApiError::from(StoreError::Other("postgres://secret@db: syntax error".into()));
        assert_eq!((err.status_code(), err.code()), (StatusCode::INTERNAL_SERVER_ERROR, Code::InternalError.into()));
        assert!(!err.message().contains("secret"));
        assert!(err.context().is_empty());
    }

    #[test]
    fn an_unavailable_database_is_503_with_retry_after_without_details() {
        let err = ApiError::from(StoreError::Unavailable("postgres://secret@db: statement timeout".into()));
        assert_eq!((err.status_code(), err.code()), (StatusCode::SERVICE_UNAVAILABLE, Code::ServiceUnavailable.into()));
        assert!(!err.message().contains("secret"));
        let response = err.error_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
    }

    /// The `| HTTP | Codes |` table of docs/api.md, "Errors": status → the codes in backticks,
    /// leaving out parenthesised notes (they quote headers such as `Allow`).
    fn documented_statuses() -> BTreeMap<String, u16> {
        let doc = include_str!("../../../docs/api.md");
        let table = &doc[doc.find("| HTTP | Codes |").expect("docs/api.md has the error table")..];
        let mut codes = BTreeMap::new();
        for row in table.lines().skip(2).take_while(|line| line.starts_with('|')) {
            let (status, listed) = row.trim_matches('|').split_once('|').expect("two columns");
            let status: u16 = status.trim().parse().expect("a status");
            let mut depth = 0;
            let outside_notes: String = listed
                .chars()
                .filter(|&c| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0 && c != ')'
                })
                .collect();
            for code in outside_notes.split('`').skip(1).step_by(2) {
                assert!(codes.insert(code.to_owned(), status).is_none(), "{code} is listed twice");
            }
        }
        codes
    }

    #[test]
    fn every_code_has_the_status_docs_api_md_gives_it() {
        let documented = documented_statuses();
        for &code in Code::ALL {
            let status = status_of(code.kind()).as_u16();
            assert_eq!(documented.get(code.as_str()), Some(&status), "{code} answers {status}");
            assert_eq!(ApiError::coded(code, "x", Map::new()).status_code().as_u16(), status);
        }
        for name in documented.keys() {
            assert!(Code::parse(name).is_some(), "docs/api.md lists {name}, which is no Code");
        }
    }
}

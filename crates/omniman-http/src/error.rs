//! One error type for every failure the API reports.
//!
//! Domain errors come from the core through [`DomainError`]: their status is the HTTP status of
//! their [`ErrorKind`], so the code → family table lives in the core only
//! ([`omniman_core::error::kind_of`]). The few failures that only exist at the HTTP layer
//! (authentication, transport, routing) have their own constructors.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use omniman_core::error::{DomainError, ErrorKind, FieldErrors, kind_of};
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
    code: String,
    message: String,
    context: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The HTTP status of a domain error family.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error with an explicit status (HTTP-layer failures only).
    fn with_status(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, code: code.to_owned(), message: message.into(), context: Map::new(), headers: Vec::new() }
    }

    /// A coded error whose status follows the core's code table (e.g. `channel_not_found` → 404).
    pub fn coded(code: &str, message: impl Into<String>, context: Map<String, Value>) -> ApiError {
        ApiError { context, ..ApiError::with_status(status_of(kind_of(code)), code, message) }
    }

    /// `validation_error` with `context.fields`.
    pub fn validation(fields: &FieldErrors) -> ApiError {
        ApiError::coded("validation_error", fields.to_string(), fields.to_context())
    }

    /// `validation_error` for a single field.
    pub fn field(path: &str, message: &str) -> ApiError {
        ApiError::validation(&FieldErrors::one(path, message))
    }

    /// 400 `malformed_json`: the body is not JSON (or not UTF-8).
    pub fn malformed_json(message: impl Into<String>, context: Map<String, Value>) -> ApiError {
        ApiError::coded("malformed_json", message, context)
    }

    /// 400 `invalid_cursor`.
    pub fn invalid_cursor() -> ApiError {
        ApiError::coded("invalid_cursor", "the cursor is not valid for this list", Map::new())
    }

    /// 401 `unauthenticated`, with `WWW-Authenticate: Bearer`.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::with_status(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::with_status(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`: no route.
    pub fn route_not_found(path: &str) -> ApiError {
        ApiError::with_status(StatusCode::NOT_FOUND, "not_found", format!("no route for {path}"))
            .with_context("path", path)
    }

    /// 405 `method_not_allowed`, keeping the `Allow` header.
    pub fn method_not_allowed(method: &str, allow: Option<HeaderValue>) -> ApiError {
        let mut err = ApiError::with_status(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("method {method} is not allowed here"),
        )
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

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
        .with_context("limit_bytes", limit)
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type(found: Option<&str>) -> ApiError {
        ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON sent as Content-Type: application/json",
        )
        .with_context("content_type", found.map_or(Value::Null, Value::from))
    }

    /// 429 `rate_limited`, with `Retry-After` (seconds).
    pub fn rate_limited(class: &str, retry_after_secs: u64) -> ApiError {
        ApiError::with_status(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down")
            .with_context("route_class", class)
            .with_context("retry_after", retry_after_secs)
            .header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    /// 500 `internal_error`; the detail is logged, never sent.
    pub fn internal(detail: &dyn fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::coded("internal_error", "internal server error", Map::new())
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
    pub fn code(&self) -> &str {
        &self.code
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
                code: self.code.clone(),
                message: self.message.clone(),
                context: self.context.clone(),
            },
        }
    }
}

impl<E: DomainError> From<E> for ApiError {
    fn from(err: E) -> ApiError {
        let kind = err.kind();
        if kind == ErrorKind::Internal && err.code() == "internal_error" {
            // Storage failures: log the detail, send nothing about the internals.
            return ApiError::internal(&err);
        }
        ApiError {
            status: status_of(kind),
            code: err.code().to_owned(),
            message: err.to_string(),
            context: err.context(),
            headers: Vec::new(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status.as_u16(), self.message)
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
    use omniman_core::error::{Rejection, StoreError};
    use omniman_core::modify::ModifyError;

    use super::*;

    #[test]
    fn statuses_follow_the_core_kinds() {
        let err = ApiError::from(ModifyError::SessionNotFound { session_key: "S".into() });
        assert_eq!((err.status_code(), err.code()), (StatusCode::NOT_FOUND, "session_not_found"));
        assert_eq!(err.context()["session_key"], "S");
        let err = ApiError::from(Rejection::new("my_code", "no").with("n", 1));
        assert_eq!((err.status_code(), err.context()["n"].clone()), (StatusCode::BAD_REQUEST, Value::from(1)));
        assert_eq!(ApiError::coded("channel_not_found", "x", Map::new()).status_code(), StatusCode::NOT_FOUND);
        assert_eq!(ApiError::coded("locked", "x", Map::new()).status_code(), StatusCode::CONFLICT);
    }

    #[test]
    fn storage_failures_are_500_without_details() {
        let err = ApiError::from(StoreError::Unavailable("postgres://secret@db refused".into()));
        assert_eq!((err.status_code(), err.code()), (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"));
        assert!(!err.message().contains("secret"));
        assert!(err.context().is_empty());
    }
}

//! The adapter's settings.

use std::sync::Arc;
use std::time::Duration;

use omniman_core::context::Caller;
use omniman_core::ops::{DEFAULT_DATA_ROOTS, PathRules};

use crate::ratelimit::RateLimits;

/// Default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default maximum number of segments of a `set_data` path.
pub const DEFAULT_DATA_MAX_DEPTH: usize = 5;
/// Default threshold above which a request is logged as slow.
pub const DEFAULT_SLOW_REQUEST: Duration = Duration::from_secs(1);
/// Default time a client has to send a request's body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the HTTP layer.
///
/// ```
/// let config = omniman_http::HttpConfig::default();
/// assert_eq!(config.body_timeout, omniman_http::DEFAULT_BODY_TIMEOUT);
/// assert_eq!(config.body_limit, 1024 * 1024);
/// assert!(config.rate_limits.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes (larger → 413 `payload_too_large`).
    pub body_limit: usize,
    /// Roots API clients may write with `set_data`.
    pub data_roots: Vec<String>,
    /// Maximum number of segments of a `set_data` path written by API clients.
    pub data_max_depth: usize,
    /// Requests slower than this are logged at `warn`.
    pub slow_request: Duration,
    /// Time a client has to send a request's body once its headers arrived (past it: 408
    /// `request_timeout`, and the connection is closed).
    pub body_timeout: Duration,
    /// Server-wide default rate limits (none unless configured).
    pub rate_limits: RateLimits,
    /// The URL clients reach the API at (`https://orders.example.com`), for absolute `next` and
    /// `previous` links; `None`: the links are relative (`/api/sessions?cursor=…`). Never taken
    /// from the request's `Host` or forwarded headers.
    pub public_url: Option<String>,
    /// The key the operator console signs its cookies and form tokens with (`omniman serve
    /// --console-secret`). `None`: a random key drawn when the [`AppState`](crate::AppState) is
    /// built, so signing in holds for this process only; set it (the same on each) when several
    /// instances serve one console.
    pub console_secret: Option<ConsoleSecret>,
}

/// A secret the console derives its signing key from; never printed.
///
/// ```
/// let secret = omniman_http::ConsoleSecret::new("s3cret");
/// assert_eq!(format!("{secret:?}"), "ConsoleSecret(..)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleSecret(String);

impl ConsoleSecret {
    /// Wraps the secret text.
    pub fn new(secret: impl Into<String>) -> ConsoleSecret {
        ConsoleSecret(secret.into())
    }

    /// The secret's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for ConsoleSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleSecret(..)")
    }
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            data_roots: DEFAULT_DATA_ROOTS.iter().map(|s| (*s).to_owned()).collect(),
            data_max_depth: DEFAULT_DATA_MAX_DEPTH,
            slow_request: DEFAULT_SLOW_REQUEST,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            rate_limits: RateLimits::default(),
            public_url: None,
            console_secret: None,
        }
    }
}

impl HttpConfig {
    /// The `set_data` rules of API clients.
    pub fn path_rules(&self) -> PathRules {
        PathRules::External {
            allowed_roots: self.data_roots.iter().cloned().collect::<Arc<[String]>>(),
            max_depth: self.data_max_depth,
        }
    }

    /// The caller for a principal: its name is the actor of what it does.
    pub fn caller(&self, actor: &str) -> Caller {
        Caller { actor: actor.to_owned(), path_rules: self.path_rules() }
    }
}
